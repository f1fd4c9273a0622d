//! Player accounts: an embedded SQLite database (`<data_dir>/dgate.db`) of
//! users with argon2id password hashes, and the bearer tokens a login returns.
//!
//! Every write is one transaction, so an acknowledged change survives a crash.
//! Tokens are 256 random bits, shown to the client once and stored only as
//! their SHA-256. Everything here blocks (SQLite, and argon2 on purpose):
//! async callers use `spawn_blocking`.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::passwords::{dummy_hash, hash_password, verify_password};
use super::replica::UserRecord;
use super::shared::SharedAccounts;
use super::tokens::{self, is_shared_token};
use rusqlite::{Connection, OptionalExtension, params};
use sha2::{Digest, Sha256};

/// Password length limits, in bytes.
pub use dgate_proto::PASSWORD_BYTES;

/// The schema, one migration per version; `PRAGMA user_version` says how many ran.
const MIGRATIONS: &[&str] = &[
    // 1: users and tokens.
    "CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        email         TEXT,
        created_at    INTEGER NOT NULL,
        last_login    INTEGER,
        is_admin      INTEGER NOT NULL DEFAULT 0,
        is_banned     INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE tokens (
        token_hash TEXT PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX tokens_by_user ON tokens(user_id);",
    // 2: SSH public keys; a key belongs to one account.
    "CREATE TABLE public_keys (
        fingerprint TEXT PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        key         TEXT NOT NULL,
        comment     TEXT NOT NULL,
        added_at    INTEGER NOT NULL
    );
    CREATE INDEX public_keys_by_user ON public_keys(user_id);",
    // 3: a count of the account's credential changes (password, ban): live
    // sessions made under an older one end.
    "ALTER TABLE users ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;",
    // 4: a password hash carried over from dgamelaunch, a crypt(3) string
    // (`accounts::dgamelaunch` says which forms). Its account's password_hash
    // is '' (matches nothing) until the first login checks the password
    // against it, stores argon2id and clears it.
    "ALTER TABLE users ADD COLUMN legacy_hash TEXT;",
    // 5: a node's copy of a cluster's shared accounts (`accounts::shared`):
    // the store's revision of each row, the tokens revoked before they
    // expire, and the key that signs tokens.
    "ALTER TABLE users ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE revoked_tokens (
        token_hash TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    );
    CREATE TABLE settings (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );",
];

/// Keys one account may register.
pub const MAX_PUBLIC_KEYS: usize = 20;

/// An SSH public key registered to an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKeyInfo {
    /// `SHA256:...`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// `ssh-ed25519 AAAA...`, without the comment.
    pub key: String,
    pub comment: String,
    pub added_at: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("the username {0:?} is taken")]
    UsernameTaken(String),
    #[error("no user {0:?}")]
    NoSuchUser(String),
    /// Wrong name or password: deliberately the same error for both.
    #[error("wrong username or password")]
    BadCredentials,
    #[error("the account {0:?} is banned")]
    Banned(String),
    #[error("the token is unknown or has expired")]
    BadToken,
    #[error("account database: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("password hashing: {0}")]
    Hashing(String),
    #[error("account database file: {0}")]
    Io(String),
    #[error("no randomness available: {0}")]
    Random(String),
    #[error("that public key is already registered")]
    KeyTaken,
    #[error("an account has at most {MAX_PUBLIC_KEYS} public keys")]
    TooManyKeys,
    /// The cluster's shared store could not take a change now (a node cut
    /// off from most NATS servers; checks go on from the node's copy), or
    /// this node has not heard from it yet.
    #[error("{0}; try again later")]
    Unavailable(String),
}

/// A user as the rest of the server sees it (no hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: Option<String>,
    pub created_at: SystemTime,
    pub last_login: Option<SystemTime>,
    pub is_admin: bool,
    pub is_banned: bool,
    /// Bumped by every password change and ban: a live session logged in
    /// under an older generation ends.
    pub generation: i64,
}

/// An account carried over from another server with the password hash it
/// had there (see [`AccountStore::import_legacy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyAccount {
    pub username: String,
    pub email: Option<String>,
    /// A crypt(3) string (DES, `$1$`, `$5$`, `$6$`) that `pwhash` checks.
    pub legacy_hash: String,
    pub is_admin: bool,
    pub is_banned: bool,
}

/// A fresh login: the token to hand to the client, once.
#[derive(Debug, Clone)]
pub struct Login {
    pub token: String,
    pub user: User,
    pub expires_at: SystemTime,
}

/// The accounts: a single server's own, or, on a node of a cluster, its
/// copy of the shared ones (`shared` set), where every change goes to the
/// cluster's store and every check stays here.
pub struct AccountStore {
    db: Mutex<Connection>,
    token_lifetime: Duration,
    shared: Option<Arc<SharedAccounts>>,
}

impl std::fmt::Debug for AccountStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountStore").finish_non_exhaustive()
    }
}

/// Usernames: 2-20 characters of `[A-Za-z0-9_]`, not a generic name;
/// safe in paths, arguments and file names (games get them as `%u`).
pub fn check_username(name: &str) -> Result<(), String> {
    if !(2..=20).contains(&name.len()) {
        return Err(format!("{name:?} must be 2 to 20 characters long"));
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(format!(
            "{name:?} may contain only letters, digits and '_' (a game reads '-' and what follows as a role)"
        ));
    }
    if GENERIC_NAMES
        .iter()
        .any(|generic| name.eq_ignore_ascii_case(generic))
    {
        return Err(format!(
            "{name:?} is a name games treat as \"nobody in particular\"; pick another"
        ));
    }
    Ok(())
}

/// Names a game reads as no name at all (NetHack's `GENERICUSERS` asks
/// "Who are you?" for them) or as the system's own accounts.
const GENERIC_NAMES: &[&str] = &[
    "play",
    "player",
    "game",
    "games",
    "nethack",
    "nethacker",
    "crawl",
    "root",
    "admin",
    "administrator",
    "daemon",
    "nobody",
    "guest",
    "dgate",
    "dgl",
    "sysop",
    "operator",
    "wizard",
];

pub(super) fn check_password(password: &[u8]) -> Result<(), AccountError> {
    if PASSWORD_BYTES.contains(&password.len()) {
        Ok(())
    } else {
        Err(AccountError::Invalid {
            what: "password",
            why: format!(
                "must be {} to {} bytes long",
                PASSWORD_BYTES.start(),
                PASSWORD_BYTES.end()
            ),
        })
    }
}

/// An optional email address: at most 254 bytes, an `@`, no control characters.
pub(super) fn check_email(email: Option<&str>) -> Result<(), AccountError> {
    if email.is_some_and(|e| e.len() > 254 || e.chars().any(char::is_control) || !e.contains('@')) {
        return Err(AccountError::Invalid {
            what: "email",
            why: "not an email address".into(),
        });
    }
    Ok(())
}

pub(super) fn invalid_username(why: String) -> AccountError {
    AccountError::Invalid {
        what: "username",
        why,
    }
}

pub(super) fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

pub(super) fn from_unix(secs: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64)
}

pub(super) fn random_bytes<const N: usize>() -> Result<[u8; N], AccountError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| AccountError::Random(e.to_string()))?;
    Ok(bytes)
}

pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

const USER_COLUMNS: &str =
    "id, username, email, created_at, last_login, is_admin, is_banned, generation";

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        created_at: from_unix(row.get(3)?),
        last_login: row.get::<_, Option<i64>>(4)?.map(from_unix),
        is_admin: row.get(5)?,
        is_banned: row.get(6)?,
        generation: row.get(7)?,
    })
}

impl AccountStore {
    /// Opens (creating if needed) the database at `path` and applies any
    /// migrations it has not seen.
    /// The file holds password hashes: it is made readable by its owner only
    /// (SQLite gives its journal files the same mode).
    pub fn open(path: &Path, token_lifetime: Duration) -> Result<Self, AccountError> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)))
            .map_err(|e| AccountError::Io(format!("{}: {e}", path.display())))?;
        let connection = Connection::open(path)?;
        Self::init(connection, token_lifetime)
    }

    /// A node's copy of the cluster's accounts at `path` (see
    /// [`open`](Self::open)), changed through `shared`; it follows the
    /// store once [`SharedAccounts::follow`] is called.
    pub fn open_shared(
        path: &Path,
        token_lifetime: Duration,
        shared: Arc<SharedAccounts>,
    ) -> Result<Self, AccountError> {
        let mut store = Self::open(path, token_lifetime)?;
        store.shared = Some(shared);
        Ok(store)
    }

    /// An in-memory database, for tests.
    pub fn in_memory(token_lifetime: Duration) -> Result<Self, AccountError> {
        Self::init(Connection::open_in_memory()?, token_lifetime)
    }

    fn init(mut db: Connection, token_lifetime: Duration) -> Result<Self, AccountError> {
        db.busy_timeout(Duration::from_secs(5))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.pragma_update(None, "foreign_keys", true)?;
        let applied: usize = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            let tx = db.transaction()?;
            tx.execute_batch(migration)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        Ok(Self {
            db: Mutex::new(db),
            token_lifetime,
            shared: None,
        })
    }

    pub(super) fn db(&self) -> MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Creates an account. The username is unique ignoring case.
    pub fn register(
        &self,
        username: &str,
        password: &[u8],
        email: Option<&str>,
    ) -> Result<User, AccountError> {
        check_username(username).map_err(invalid_username)?;
        check_password(password)?;
        check_email(email)?;
        let hash = hash_password(password)?;
        if let Some(shared) = &self.shared {
            let record = UserRecord {
                id: shared.allocate_id()?,
                username: username.to_owned(),
                password_hash: hash,
                legacy_hash: None,
                email: email.map(str::to_owned),
                created_at: unix(SystemTime::now()),
                last_login: None,
                is_admin: false,
                is_banned: false,
                generation: 0,
                keys: Vec::new(),
            };
            if !shared.create(self, &record)? {
                return Err(AccountError::UsernameTaken(username.to_owned()));
            }
            return self.user_by_id(record.id);
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO users (username, password_hash, email, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![username, hash, email, unix(SystemTime::now())],
        );
        match inserted {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(AccountError::UsernameTaken(username.to_owned()));
            }
            other => other?,
        };
        let id = tx.last_insert_rowid();
        tx.commit()?;
        drop(db);
        self.user_by_id(id)
    }

    pub fn user(&self, username: &str) -> Result<User, AccountError> {
        self.db()
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE username = ?1"),
                [username],
                user_from_row,
            )
            .optional()?
            .ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))
    }

    pub(super) fn user_by_id(&self, id: i64) -> Result<User, AccountError> {
        self.db()
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
                [id],
                user_from_row,
            )
            .optional()?
            .ok_or_else(|| AccountError::NoSuchUser(format!("#{id}")))
    }

    pub fn list(&self) -> Result<Vec<User>, AccountError> {
        let db = self.db();
        let mut statement = db.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY id"))?;
        let users = statement
            .query_map([], user_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(users)
    }

    /// True on a single server, and on a node once its copy caught up with
    /// the cluster's store.
    pub fn is_synced(&self) -> bool {
        self.shared.as_ref().is_none_or(|s| s.is_synced())
    }

    /// Checks a password (in constant time, and as slowly for unknown names).
    /// An account imported with a legacy hash and no argon2id one is checked
    /// against the legacy hash (the password is hashed the legacy way and
    /// compared: the hash itself is no password); the first success replaces
    /// it with argon2id, so it is checked the legacy way only once.
    pub fn check_credentials(&self, username: &str, password: &[u8]) -> Result<User, AccountError> {
        let stored: Option<(i64, String, Option<String>)> = self
            .db()
            .query_row(
                "SELECT id, password_hash, legacy_hash FROM users WHERE username = ?1",
                [username],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((id, hash, legacy)) = stored else {
            verify_password(password, dummy_hash());
            return Err(AccountError::BadCredentials);
        };
        match legacy.filter(|legacy| hash.is_empty() && !legacy.is_empty()) {
            Some(legacy) => {
                if !pwhash::unix::verify(password, &legacy) {
                    // As long as any wrong password takes.
                    verify_password(password, dummy_hash());
                    return Err(AccountError::BadCredentials);
                }
                self.upgrade_legacy(id, &legacy, password)?;
            }
            None if !verify_password(password, &hash) => {
                return Err(AccountError::BadCredentials);
            }
            None => {}
        }
        let user = self.user_by_id(id)?;
        if user.is_banned {
            return Err(AccountError::Banned(user.username));
        }
        Ok(user)
    }

    /// Replaces the legacy hash `legacy` of account `id`, which `password`
    /// matched, with an argon2id hash of it. Not a new password: the
    /// generation, tokens and live sessions stay.
    fn upgrade_legacy(&self, id: i64, legacy: &str, password: &[u8]) -> Result<(), AccountError> {
        let hash = hash_password(password)?;
        if let Some(shared) = &self.shared {
            // The password was right: the login goes on meanwhile.
            shared.upgrade_legacy(&self.user_by_id(id)?.username, legacy, hash);
            return Ok(());
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        // A login that upgraded it meanwhile, or a new password, wins.
        tx.execute(
            "UPDATE users SET password_hash = ?1, legacy_hash = NULL
             WHERE id = ?2 AND password_hash = '' AND legacy_hash = ?3",
            params![hash, id, legacy],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Checks the password and issues a token.
    pub fn login(&self, username: &str, password: &[u8]) -> Result<Login, AccountError> {
        let user = self.check_credentials(username, password)?;
        if let Some(shared) = &self.shared {
            let (token, expires_at) = shared.issue_token(self, &user)?;
            shared.touch(&user.username);
            return Ok(Login {
                token,
                user,
                expires_at,
            });
        }
        let token = hex(&random_bytes::<32>()?);
        let now = SystemTime::now();
        let expires_at = now + self.token_lifetime;
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute("DELETE FROM tokens WHERE expires_at <= ?1", [unix(now)])?;
        tx.execute(
            "INSERT INTO tokens (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash(&token), user.id, unix(now), unix(expires_at)],
        )?;
        tx.execute(
            "UPDATE users SET last_login = ?1 WHERE id = ?2",
            params![unix(now), user.id],
        )?;
        tx.commit()?;
        drop(db);
        let user = self.user_by_id(user.id)?;
        Ok(Login {
            token,
            user,
            expires_at,
        })
    }

    /// The user a token belongs to, if it is valid and the user not banned.
    pub fn authenticate(&self, token: &str) -> Result<User, AccountError> {
        if self.shared.is_some() {
            // A single server's tokens are not valid in a cluster.
            if !is_shared_token(token) {
                return Err(AccountError::BadToken);
            }
            return tokens::check(self, token);
        }
        let user_id: Option<i64> = self
            .db()
            .query_row(
                "SELECT user_id FROM tokens WHERE token_hash = ?1 AND expires_at > ?2",
                params![token_hash(token), unix(SystemTime::now())],
                |r| r.get(0),
            )
            .optional()?;
        let user = self.user_by_id(user_id.ok_or(AccountError::BadToken)?)?;
        if user.is_banned {
            return Err(AccountError::Banned(user.username));
        }
        Ok(user)
    }

    /// Revokes one token.
    pub fn logout(&self, token: &str) -> Result<(), AccountError> {
        if let Some(shared) = &self.shared {
            if !is_shared_token(token) {
                return Err(AccountError::BadToken);
            }
            return shared.revoke(self, token);
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        let removed = tx.execute(
            "DELETE FROM tokens WHERE token_hash = ?1",
            [token_hash(token)],
        )?;
        tx.commit()?;
        if removed == 0 {
            Err(AccountError::BadToken)
        } else {
            Ok(())
        }
    }

    /// Sets a new password and revokes every token of the user.
    pub fn set_password(&self, username: &str, password: &[u8]) -> Result<(), AccountError> {
        check_password(password)?;
        let hash = hash_password(password)?;
        if let Some(shared) = &self.shared {
            shared.update(self, username, |r| {
                r.password_hash = hash.clone();
                r.legacy_hash = None;
                r.generation += 1;
                Ok(())
            })?;
            return Ok(());
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM users WHERE username = ?1",
                [username],
                |r| r.get(0),
            )
            .optional()?;
        let id = id.ok_or_else(|| AccountError::NoSuchUser(username.to_owned()))?;
        tx.execute(
            "UPDATE users SET password_hash = ?1, legacy_hash = NULL, generation = generation + 1
             WHERE id = ?2",
            params![hash, id],
        )?;
        tx.execute("DELETE FROM tokens WHERE user_id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// Each of `ids`' credential generation and whether it is banned (ids
    /// with no account are left out: deleted accounts end their sessions too).
    pub fn standing(&self, ids: &[i64]) -> Result<Vec<(i64, i64, bool)>, AccountError> {
        let db = self.db();
        let mut statement =
            db.prepare_cached("SELECT generation, is_banned FROM users WHERE id = ?1")?;
        let mut standing = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some((generation, banned)) = statement
                .query_row([id], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, bool>(1)?)))
                .optional()?
            {
                standing.push((id, generation, banned));
            }
        }
        Ok(standing)
    }

    /// A consistent copy of the whole database at `to` (a new file, 0600),
    /// taken while the server may be using it (`VACUUM INTO`).
    pub fn backup(&self, to: &Path) -> Result<(), AccountError> {
        use std::os::unix::fs::OpenOptionsExt;
        // Made empty and 0600 first: the copy is never readable by others.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(to)
            .map_err(|e| {
                AccountError::Io(match e.kind() {
                    std::io::ErrorKind::AlreadyExists => {
                        format!("{} exists already: back up to a new file", to.display())
                    }
                    _ => format!("{}: {e}", to.display()),
                })
            })?;
        let target = to.to_string_lossy().into_owned();
        self.db().execute("VACUUM INTO ?1", params![target])?;
        Ok(())
    }

    /// Renames an account (to a valid, free name); its tokens stay valid.
    /// Files games keep under the old name (homes, saves) are not moved.
    pub fn rename(&self, username: &str, new_name: &str) -> Result<User, AccountError> {
        check_username(new_name).map_err(invalid_username)?;
        if let Some(shared) = &self.shared {
            shared.rename(self, username, new_name)?;
            return self.user(new_name);
        }
        let changed = self.db().execute(
            "UPDATE users SET username = ?1 WHERE username = ?2",
            params![new_name, username],
        );
        match changed {
            Ok(0) => Err(AccountError::NoSuchUser(username.to_owned())),
            Ok(_) => self.user(new_name),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(AccountError::UsernameTaken(new_name.to_owned()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Bans or unbans; a ban also revokes every token of the user.
    pub fn set_banned(&self, username: &str, banned: bool) -> Result<(), AccountError> {
        self.set_flag(username, "is_banned", banned)
    }

    pub fn set_admin(&self, username: &str, admin: bool) -> Result<(), AccountError> {
        self.set_flag(username, "is_admin", admin)
    }

    fn set_flag(
        &self,
        username: &str,
        column: &'static str,
        value: bool,
    ) -> Result<(), AccountError> {
        if let Some(shared) = &self.shared {
            shared.update(self, username, |r| {
                match column {
                    "is_banned" => {
                        r.is_banned = value;
                        // As below: a ban ends every token and session.
                        r.generation += i64::from(value);
                    }
                    _ => r.is_admin = value,
                }
                Ok(())
            })?;
            return Ok(());
        }
        let mut db = self.db();
        let tx = db.transaction()?;
        let changed = tx.execute(
            &format!("UPDATE users SET {column} = ?1 WHERE username = ?2"),
            params![value, username],
        )?;
        if changed == 0 {
            return Err(AccountError::NoSuchUser(username.to_owned()));
        }
        if column == "is_banned" && value {
            tx.execute(
                "UPDATE users SET generation = generation + 1 WHERE username = ?1",
                [username],
            )?;
            tx.execute(
                "DELETE FROM tokens WHERE user_id = (SELECT id FROM users WHERE username = ?1)",
                [username],
            )?;
        }
        tx.commit()?;
        Ok(())
    }
}

mod import;
mod keys;

pub use import::NodeImport;

#[cfg(test)]
mod tests;
