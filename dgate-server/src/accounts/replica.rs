//! A node's copy of the cluster's accounts: the rows of its own SQLite file
//! (`dgate-cluster.db`) written from the shared store's records
//! ([`UserRecord`]), so that checking a password, a token or an SSH key
//! never waits on the network and goes on while the node is cut off.
//!
//! Records arrive twice, in any order: once when this node wrote them and
//! once from the store's watch. Each carries the store's revision, and a
//! row is only ever replaced by a later one, so applying them again or late
//! changes nothing.

use std::collections::HashSet;
use std::time::SystemTime;

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};

use super::store::{
    AccountError, AccountStore, MAX_PUBLIC_KEYS, check_email, check_username, unix,
};

/// An account as the shared store keeps it (JSON, one key per account).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserRecord {
    /// The same on every node, handed out by the store's counter; 32 bits,
    /// as the games protocol has them.
    pub id: i64,
    pub username: String,
    /// argon2id; empty while only `legacy_hash` is known.
    #[serde(default)]
    pub password_hash: String,
    #[serde(default)]
    pub legacy_hash: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    pub created_at: i64,
    #[serde(default)]
    pub last_login: Option<i64>,
    #[serde(default)]
    pub is_admin: bool,
    #[serde(default)]
    pub is_banned: bool,
    #[serde(default)]
    pub generation: i64,
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
}

/// An SSH public key inside its account's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    pub fingerprint: String,
    pub key: String,
    pub comment: String,
    pub added_at: i64,
}

impl UserRecord {
    /// Decodes a record from the store, checking what a hostile or broken
    /// writer could get wrong: a record that fails is skipped, never applied.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let record: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        check_username(&record.username)?;
        check_email(record.email.as_deref()).map_err(|e| e.to_string())?;
        if !(1..=i64::from(i32::MAX)).contains(&record.id) {
            return Err(format!("id {} is not a positive 32-bit number", record.id));
        }
        if record.password_hash.len() > 512
            || record.legacy_hash.as_ref().is_some_and(|h| h.len() > 512)
        {
            return Err("a password hash longer than 512 bytes".into());
        }
        if record.keys.len() > MAX_PUBLIC_KEYS {
            return Err(format!("{} keys", record.keys.len()));
        }
        if record
            .keys
            .iter()
            .any(|k| k.fingerprint.len() > 128 || k.key.len() > 16 * 1024 || k.comment.len() > 400)
        {
            return Err("an oversize key".into());
        }
        Ok(record)
    }

    pub fn encode(&self) -> bytes::Bytes {
        // Plain data: serialising it cannot fail.
        serde_json::to_vec(self).unwrap_or_default().into()
    }
}

/// A change the store reported, to apply to the copy.
#[derive(Debug)]
pub enum Change {
    /// The account's record at `revision`.
    User(UserRecord, u64),
    /// The name `username` freed at `revision` (a rename).
    Gone(String, u64),
    /// A token revoked until `expires_at` (unix seconds).
    Revoked(String, i64),
    /// The key that signs tokens, hex.
    TokenKey(String),
}

/// Applies `changes` in one transaction.
pub fn apply(store: &AccountStore, changes: &[Change]) -> Result<(), AccountError> {
    let mut db = store.db();
    let tx = db.transaction()?;
    for change in changes {
        match change {
            Change::User(record, revision) => apply_user(&tx, record, *revision)?,
            Change::Gone(username, revision) => {
                tx.execute(
                    "DELETE FROM users WHERE username = ?1 AND revision < ?2",
                    params![username, *revision as i64],
                )?;
            }
            Change::Revoked(hash, expires_at) => {
                tx.execute(
                    "INSERT OR REPLACE INTO revoked_tokens (token_hash, expires_at) VALUES (?1, ?2)",
                    params![hash, expires_at],
                )?;
            }
            Change::TokenKey(hex) => {
                tx.execute(
                    "INSERT OR REPLACE INTO settings (name, value) VALUES ('token_key', ?1)",
                    [hex],
                )?;
            }
        }
    }
    tx.execute(
        "DELETE FROM revoked_tokens WHERE expires_at <= ?1",
        [unix(SystemTime::now())],
    )?;
    tx.commit()?;
    Ok(())
}

fn apply_user(tx: &Transaction<'_>, r: &UserRecord, revision: u64) -> Result<(), AccountError> {
    let revision = revision as i64;
    // A name held here by another account under an older revision was
    // freed in the store meanwhile (renamed away, then taken again).
    tx.execute(
        "DELETE FROM users WHERE username = ?1 AND id != ?2 AND revision < ?3",
        params![r.username, r.id, revision],
    )?;
    let written = tx.execute(
        "INSERT INTO users (id, username, password_hash, legacy_hash, email, created_at,
                            last_login, is_admin, is_banned, generation, revision)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
         ON CONFLICT (id) DO UPDATE SET
            username = excluded.username, password_hash = excluded.password_hash,
            legacy_hash = excluded.legacy_hash, email = excluded.email,
            created_at = excluded.created_at, last_login = excluded.last_login,
            is_admin = excluded.is_admin, is_banned = excluded.is_banned,
            generation = excluded.generation, revision = excluded.revision
         WHERE excluded.revision > users.revision",
        params![
            r.id,
            r.username,
            r.password_hash,
            r.legacy_hash,
            r.email,
            r.created_at,
            r.last_login,
            r.is_admin,
            r.is_banned,
            r.generation,
            revision
        ],
    );
    let written = match written {
        Ok(n) => n,
        // The name is held here by a later record: this one is stale.
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            0
        }
        Err(e) => return Err(e.into()),
    };
    if written == 0 {
        return Ok(());
    }
    tx.execute("DELETE FROM public_keys WHERE user_id = ?1", [r.id])?;
    for key in &r.keys {
        tx.execute(
            "INSERT OR REPLACE INTO public_keys (fingerprint, user_id, key, comment, added_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![key.fingerprint, r.id, key.key, key.comment, key.added_at],
        )?;
    }
    Ok(())
}

/// After a full read of the store: forgets the accounts it no longer has
/// (deleted while this node was away).
pub fn keep_only(store: &AccountStore, ids: &HashSet<i64>) -> Result<usize, AccountError> {
    let mut db = store.db();
    let tx = db.transaction()?;
    let present: Vec<i64> = {
        let mut statement = tx.prepare("SELECT id FROM users")?;
        let rows = statement.query_map([], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let mut removed = 0;
    for id in present.into_iter().filter(|id| !ids.contains(id)) {
        removed += tx.execute("DELETE FROM users WHERE id = ?1", [id])?;
    }
    tx.commit()?;
    Ok(removed)
}

/// The copy's record of `username` (any case), keys included.
pub fn record(store: &AccountStore, username: &str) -> Result<Option<UserRecord>, AccountError> {
    let db = store.db();
    let record = db
        .query_row(
            "SELECT id, username, password_hash, legacy_hash, email, created_at, last_login,
                    is_admin, is_banned, generation
             FROM users WHERE username = ?1",
            [username],
            record_from_row,
        )
        .optional()?;
    let Some(mut record) = record else {
        return Ok(None);
    };
    record.keys = keys_of(&db, record.id)?;
    Ok(Some(record))
}

/// Every account of a database with its hashes and keys: what
/// `dgate-server import node` carries into a cluster.
pub fn all_records(store: &AccountStore) -> Result<Vec<UserRecord>, AccountError> {
    let db = store.db();
    let mut statement = db.prepare(
        "SELECT id, username, password_hash, legacy_hash, email, created_at, last_login,
                is_admin, is_banned, generation
         FROM users ORDER BY id",
    )?;
    let mut records = statement
        .query_map([], record_from_row)?
        .collect::<Result<Vec<_>, _>>()?;
    for record in &mut records {
        record.keys = keys_of(&db, record.id)?;
    }
    Ok(records)
}

fn record_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        username: row.get(1)?,
        password_hash: row.get(2)?,
        legacy_hash: row.get(3)?,
        email: row.get(4)?,
        created_at: row.get(5)?,
        last_login: row.get(6)?,
        is_admin: row.get(7)?,
        is_banned: row.get(8)?,
        generation: row.get(9)?,
        keys: Vec::new(),
    })
}

fn keys_of(db: &rusqlite::Connection, id: i64) -> Result<Vec<KeyRecord>, AccountError> {
    let mut statement = db.prepare_cached(
        "SELECT fingerprint, key, comment, added_at FROM public_keys
         WHERE user_id = ?1 ORDER BY added_at, fingerprint",
    )?;
    let keys = statement
        .query_map([id], |r| {
            Ok(KeyRecord {
                fingerprint: r.get(0)?,
                key: r.get(1)?,
                comment: r.get(2)?,
                added_at: r.get(3)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(keys)
}

/// Whether a token (by its SHA-256) was revoked.
pub fn is_revoked(store: &AccountStore, hash: &str) -> Result<bool, AccountError> {
    Ok(store
        .db()
        .query_row(
            "SELECT 1 FROM revoked_tokens WHERE token_hash = ?1",
            [hash],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Whether some account of the copy lists `fingerprint`.
pub fn key_is_listed(store: &AccountStore, fingerprint: &str) -> Result<bool, AccountError> {
    Ok(store
        .db()
        .query_row(
            "SELECT 1 FROM public_keys WHERE fingerprint = ?1",
            [fingerprint],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// The key that signs tokens, as last heard from the store.
pub fn token_key(store: &AccountStore) -> Result<Option<String>, AccountError> {
    Ok(store
        .db()
        .query_row(
            "SELECT value FROM settings WHERE name = 'token_key'",
            [],
            |r| r.get(0),
        )
        .optional()?)
}

#[cfg(test)]
impl UserRecord {
    /// An account `name` (`id`, at `generation`) with no password, for tests.
    pub fn for_tests(id: i64, name: &str, generation: i64) -> Self {
        Self {
            id,
            username: name.into(),
            password_hash: String::new(),
            legacy_hash: None,
            email: None,
            created_at: 0,
            last_login: None,
            is_admin: false,
            is_banned: false,
            generation,
            keys: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn record(id: i64, name: &str, generation: i64) -> UserRecord {
        UserRecord {
            keys: vec![KeyRecord {
                fingerprint: format!("SHA256:{name}"),
                key: "ssh-ed25519 AAAA".into(),
                comment: String::new(),
                added_at: 0,
            }],
            ..UserRecord::for_tests(id, name, generation)
        }
    }

    #[test]
    fn records_apply_once_in_revision_order_whatever_order_they_come_in() {
        let store = AccountStore::in_memory(Duration::from_secs(60)).expect("store");
        apply(&store, &[Change::User(record(1, "alice", 2), 20)]).expect("apply");
        // An older revision arriving late (the watch behind a write) changes nothing.
        apply(&store, &[Change::User(record(1, "alice", 1), 10)]).expect("apply");
        assert_eq!(store.user("alice").expect("alice").generation, 2);
        // Applying the same again changes nothing either.
        apply(&store, &[Change::User(record(1, "alice", 2), 20)]).expect("apply");
        assert_eq!(store.list().expect("list").len(), 1);

        // A rename: the record under its new name, then the old name freed.
        apply(
            &store,
            &[
                Change::User(record(1, "alicia", 2), 30),
                Change::Gone("alice".into(), 31),
            ],
        )
        .expect("rename");
        assert!(store.user("alice").is_err());
        assert_eq!(store.user("alicia").expect("renamed").id, 1);
        assert_eq!(store.public_keys("alicia").expect("keys").len(), 1);
        // The freed name taken by someone else; a stale record of the old
        // holder cannot take it back.
        apply(&store, &[Change::User(record(2, "Alice", 0), 40)]).expect("apply");
        apply(&store, &[Change::User(record(1, "alice", 2), 25)]).expect("stale");
        assert_eq!(store.user("alice").expect("the new alice").id, 2);
        assert_eq!(store.user("alicia").expect("still").id, 1);

        // After a full read, what the store no longer has goes.
        let removed = keep_only(&store, &HashSet::from([2])).expect("keep");
        assert_eq!(removed, 1);
        assert!(store.user("alicia").is_err());
        assert_eq!(all_records(&store).expect("all").len(), 1);
    }

    #[test]
    fn malformed_records_are_refused() {
        let good = record(5, "bob", 0);
        assert_eq!(UserRecord::decode(&good.encode()).expect("good"), good);
        let mut bad_name = good.clone();
        bad_name.username = "../etc".into();
        let mut bad_id = good.clone();
        bad_id.id = i64::from(i32::MAX) + 1;
        let mut many_keys = good.clone();
        many_keys.keys = vec![good.keys[0].clone(); MAX_PUBLIC_KEYS + 1];
        for bad in [bad_name, bad_id, many_keys] {
            assert!(UserRecord::decode(&bad.encode()).is_err(), "{bad:?}");
        }
        for garbage in [&b""[..], b"null", b"{}", b"{\"id\": 1}", &[0xff, 0xfe][..]] {
            assert!(UserRecord::decode(garbage).is_err());
        }
        let unknown = br#"{"id":1,"username":"bob","created_at":0,"is_root":true}"#;
        assert!(UserRecord::decode(unknown).is_err());
    }
}
