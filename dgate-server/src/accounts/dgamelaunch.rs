//! Accounts from dgamelaunch: reads its `dglusers` table (an SQLite file,
//! opened read-only), decides which rows dgate can take and why not, and
//! adds them to the account store with the crypt(3) hashes they had there.
//! The store checks such a hash at the account's first login and replaces it
//! with argon2id ([`AccountStore::check_credentials`]).
//!
//! This module owns what dgamelaunch's rows mean: its account flags, the
//! hash forms dgate accepts (traditional DES, `$1$` MD5, `$5$` SHA-256 and
//! `$6$` SHA-512 crypt, what `pwhash` checks), and the report an operator
//! reads. Nothing read from the file is trusted: any column may be NULL, of
//! the wrong type or not UTF-8, and such a row is reported and skipped.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::store::{AccountError, AccountStore, LegacyAccount, check_email, check_username};

/// dgamelaunch's account flags (`dgl_acct_flag` in dgamelaunch.h).
const ADMIN: i64 = 0x01;
/// Banned: may not log in.
const LOGIN_LOCK: i64 = 0x02;
/// May not change the password (dgate has no such lock).
const PASSWD_LOCK: i64 = 0x04;
/// May not change the email address (dgate has no such lock).
const EMAIL_LOCK: i64 = 0x08;

/// `rounds=` above this makes every login of the account slow (SHA-crypt's
/// default is 5,000; 1,000,000 takes about a second).
const MAX_ROUNDS: u32 = 1_000_000;

/// Why there is nothing to import.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read dgamelaunch's database {path}: {why}")]
    Unreadable { path: String, why: String },
    #[error("{path} is not an SQLite database")]
    NotSqlite { path: String },
    #[error("{path} has no dglusers table: not a dgamelaunch database")]
    NoTable { path: String },
    #[error("reading dglusers in {path}: {error}")]
    Read {
        path: String,
        error: rusqlite::Error,
    },
    #[error(transparent)]
    Account(#[from] AccountError),
}

/// What an import did, row by row. A row is named by its id in dglusers
/// (its rowid, which dgamelaunch's `id INTEGER PRIMARY KEY` is).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportReport {
    /// Rows read from dglusers.
    pub rows: usize,
    /// Accounts added, in row order.
    pub imported: Vec<Imported>,
    /// Accounts dgate has already (same name ignoring case): left untouched.
    pub already_here: Vec<AlreadyHere>,
    /// Rows dgate cannot take, and why.
    pub refused: Vec<Refused>,
    /// Rows with a column missing or of the wrong type.
    pub malformed: Vec<Malformed>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    pub row: i64,
    pub username: String,
    pub is_admin: bool,
    pub is_banned: bool,
    pub has_email: bool,
    /// What dgate did not carry over (a lock it has no equivalent of, an
    /// email address it would not accept).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlreadyHere {
    pub row: i64,
    pub username: String,
    /// The account's name in dgate, when its case differs.
    pub here_as: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub row: i64,
    /// The name as dglusers has it, quoted and escaped, cut when long.
    pub shown: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed {
    pub row: i64,
    pub why: String,
}

/// A dgamelaunch database, open read-only, with a `dglusers` table.
#[derive(Debug)]
pub struct Source {
    db: Connection,
    path: String,
}

impl Source {
    /// Opens `path` read-only and checks that it is SQLite with a dglusers table.
    pub fn open(path: &Path) -> Result<Self, ImportError> {
        let shown = path.display().to_string();
        let unreadable = |why: String| ImportError::Unreadable {
            path: shown.clone(),
            why,
        };
        let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
        if !meta.is_file() {
            return Err(unreadable("not a file".into()));
        }
        let db = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| unreadable(e.to_string()))?;
        let tables: Result<i64, _> = db.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'dglusers'",
            [],
            |r| r.get(0),
        );
        match tables {
            Ok(0) => Err(ImportError::NoTable { path: shown }),
            Ok(_) => Ok(Self { db, path: shown }),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::NotADatabase =>
            {
                Err(ImportError::NotSqlite { path: shown })
            }
            Err(e) => Err(unreadable(e.to_string())),
        }
    }

    /// Adds every account dgate can take and has not got yet, in one
    /// transaction; running it again changes nothing.
    pub fn import_into(&self, store: &AccountStore) -> Result<ImportReport, ImportError> {
        let read = |error| ImportError::Read {
            path: self.path.clone(),
            error,
        };
        let mut statement = self
            .db
            .prepare("SELECT rowid, username, email, password, flags FROM dglusers ORDER BY rowid")
            .map_err(read)?;
        let mut rows = statement.query([]).map_err(read)?;
        let mut report = ImportReport::default();
        let mut candidates: Vec<(Imported, LegacyAccount)> = Vec::new();
        // Lower-case name -> the row that has it.
        let mut seen: HashMap<String, i64> = HashMap::new();
        while let Some(row) = rows.next().map_err(read)? {
            report.rows += 1;
            let id: i64 = row.get(0).map_err(read)?;
            let columns = [1, 2, 3, 4].map(|i| row.get_ref(i));
            let [username, email, password, flags] = columns;
            let parsed = Row::parse(
                username.map_err(read)?,
                email.map_err(read)?,
                password.map_err(read)?,
                flags.map_err(read)?,
            );
            let row = match parsed {
                Ok(row) => row,
                Err(why) => {
                    report.malformed.push(Malformed { row: id, why });
                    continue;
                }
            };
            let refuse = |reason: String| Refused {
                row: id,
                shown: shown_name(row.username),
                reason,
            };
            if let Err(reason) = username_problem(row.username) {
                report.refused.push(refuse(reason));
                continue;
            }
            if let Some(first) = seen.get(&row.username.to_ascii_lowercase()) {
                report.refused.push(refuse(format!(
                    "the same name, ignoring case, as row {first}"
                )));
                continue;
            }
            if let Err(reason) = hash_kind(row.password) {
                report.refused.push(refuse(reason));
                continue;
            }
            seen.insert(row.username.to_ascii_lowercase(), id);
            candidates.push(row.account(id));
        }
        let accounts: Vec<LegacyAccount> = candidates.iter().map(|(_, a)| a.clone()).collect();
        let added = store.import_legacy(&accounts)?;
        for ((imported, _), added) in candidates.into_iter().zip(added) {
            if added {
                report.imported.push(imported);
                continue;
            }
            let here_as = store
                .user(&imported.username)
                .ok()
                .map(|user| user.username)
                .filter(|name| *name != imported.username);
            report.already_here.push(AlreadyHere {
                row: imported.row,
                username: imported.username,
                here_as,
            });
        }
        Ok(report)
    }
}

/// One dglusers row whose columns have the types dgamelaunch writes.
struct Row<'a> {
    username: &'a str,
    email: Option<&'a str>,
    password: &'a str,
    flags: i64,
}

impl<'a> Row<'a> {
    /// The row, or every column that is wrong with it.
    fn parse(
        username: ValueRef<'a>,
        email: ValueRef<'a>,
        password: ValueRef<'a>,
        flags: ValueRef<'a>,
    ) -> Result<Self, String> {
        let mut problems = Vec::new();
        let mut required = |value, column| match text(value, column) {
            Ok(Some(text)) => Some(text),
            Ok(None) => {
                problems.push(format!("{column} is NULL"));
                None
            }
            Err(why) => {
                problems.push(why);
                None
            }
        };
        let username = required(username, "username");
        let password = required(password, "password");
        let email = text(email, "email").unwrap_or_else(|why| {
            problems.push(why);
            None
        });
        let flags = match flags {
            ValueRef::Integer(flags) => Some(flags),
            ValueRef::Null => {
                problems.push("flags is NULL".into());
                None
            }
            other => {
                problems.push(format!("flags is {}, not an integer", type_name(other)));
                None
            }
        };
        match (username, password, flags) {
            (Some(username), Some(password), Some(flags)) if problems.is_empty() => Ok(Self {
                username,
                email,
                password,
                flags,
            }),
            _ => Err(problems.join("; ")),
        }
    }

    /// What the report says of the account, and what the store is given.
    fn account(&self, row: i64) -> (Imported, LegacyAccount) {
        let mut notes = Vec::new();
        let email = self.email.filter(|e| !e.is_empty());
        let email = match check_email(email) {
            Ok(()) => email,
            Err(_) => {
                notes.push(format!(
                    "email {} dropped: not an email address",
                    shown_name(email.unwrap_or_default())
                ));
                None
            }
        };
        if self.flags & PASSWD_LOCK != 0 {
            notes.push(
                "its password was locked (flag 4); dgate has no such lock: it may change it".into(),
            );
        }
        if self.flags & EMAIL_LOCK != 0 {
            notes.push("its email was locked (flag 8); dgate has no such lock".into());
        }
        let other = self.flags & !(ADMIN | LOGIN_LOCK | PASSWD_LOCK | EMAIL_LOCK);
        if other != 0 {
            notes.push(format!(
                "flags {other:#x} are not dgamelaunch's (WebTiles' holds?); not carried over"
            ));
        }
        let is_admin = self.flags & ADMIN != 0;
        let is_banned = self.flags & LOGIN_LOCK != 0;
        (
            Imported {
                row,
                username: self.username.to_owned(),
                is_admin,
                is_banned,
                has_email: email.is_some(),
                notes,
            },
            LegacyAccount {
                username: self.username.to_owned(),
                email: email.map(str::to_owned),
                legacy_hash: self.password.to_owned(),
                is_admin,
                is_banned,
            },
        )
    }
}

/// A text column: `None` for NULL, an error for another type or bad UTF-8.
fn text<'a>(value: ValueRef<'a>, column: &str) -> Result<Option<&'a str>, String> {
    match value {
        ValueRef::Null => Ok(None),
        ValueRef::Text(bytes) => std::str::from_utf8(bytes)
            .map(Some)
            .map_err(|_| format!("{column} is not UTF-8 text")),
        other => Err(format!("{column} is {}, not text", type_name(other))),
    }
}

fn type_name(value: ValueRef<'_>) -> &'static str {
    match value {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real number",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}

/// A name for the report: quoted, control characters escaped, cut at 40
/// characters.
fn shown_name(name: &str) -> String {
    let count = name.chars().count();
    if count <= 40 {
        format!("{name:?}")
    } else {
        let start: String = name.chars().take(40).collect();
        format!("{start:?}... ({count} characters)")
    }
}

/// Why dgate cannot take `name` (without repeating a long name).
fn username_problem(name: &str) -> Result<(), String> {
    if name.chars().count() > 40 {
        return Err("must be 2 to 20 characters long".into());
    }
    check_username(name)
}

/// The crypt(3) forms dgate checks, as `pwhash` computes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashKind {
    /// Traditional DES: two characters of salt, eleven of hash (only the
    /// password's first 8 bytes count); what dgamelaunch's `crypt(pw, pw)` makes.
    Des,
    /// `$1$salt$hash`
    Md5,
    /// `$5$[rounds=N$]salt$hash`
    Sha256,
    /// `$6$[rounds=N$]salt$hash`
    Sha512,
}

/// Which of the four forms `hash` is, or why it is none of them (without
/// repeating the hash). Strict: `pwhash` is given only well-formed strings.
pub fn hash_kind(hash: &str) -> Result<HashKind, String> {
    const FORMS: &str = "DES, $1$, $5$ or $6$ crypt(3)";
    let crypt64 = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    if hash.is_empty() {
        return Err("it has no password hash (empty)".into());
    }
    if !hash.starts_with('$') {
        return if hash.len() == 13 && crypt64(hash) {
            Ok(HashKind::Des)
        } else {
            Err(format!(
                "its password hash is not {FORMS} (a DES hash is 13 characters of [./0-9A-Za-z])"
            ))
        };
    }
    let mut parts = hash[1..].split('$');
    let id = parts.next().unwrap_or_default();
    let (kind, salt_max, hash_len) = match id {
        "1" => (HashKind::Md5, 8, 22),
        "5" => (HashKind::Sha256, 16, 43),
        "6" => (HashKind::Sha512, 16, 86),
        other => {
            let other = if (1..=8).contains(&other.len()) && crypt64(other) {
                format!("${other}$ hashes")
            } else {
                "its hash".to_owned()
            };
            return Err(format!("{other}: not {FORMS}"));
        }
    };
    let mut rest: Vec<&str> = parts.collect();
    if kind != HashKind::Md5
        && let Some(rounds) = rest.first().and_then(|p| p.strip_prefix("rounds="))
    {
        match rounds.parse::<u32>() {
            Ok(n) if n.to_string() == rounds && (1000..=MAX_ROUNDS).contains(&n) => {}
            _ => {
                return Err(format!(
                    "${id}$ with rounds={rounds:.12}: dgate takes 1000 to {MAX_ROUNDS} rounds"
                ));
            }
        }
        rest.remove(0);
    }
    match rest.as_slice() {
        [salt, digest]
            if (1..=salt_max).contains(&salt.len())
                && crypt64(salt)
                && digest.len() == hash_len
                && crypt64(digest) =>
        {
            Ok(kind)
        }
        _ => Err(format!(
            "a malformed ${id}$ hash (wants a salt of 1 to {salt_max} and a hash of {hash_len} characters of [./0-9A-Za-z])"
        )),
    }
}

impl fmt::Display for ImportReport {
    /// Plain lines for an operator: the counts, then every account and row
    /// that needs a look.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count =
            |which: fn(&Imported) -> bool| self.imported.iter().filter(|i| which(i)).count();
        writeln!(
            f,
            "imported {} account{} ({} admin, {} banned, {} with an email)",
            self.imported.len(),
            if self.imported.len() == 1 { "" } else { "s" },
            count(|i| i.is_admin),
            count(|i| i.is_banned),
            count(|i| i.has_email),
        )?;
        for imported in &self.imported {
            for note in &imported.notes {
                writeln!(f, "note: {}: {note}", imported.username)?;
            }
        }
        for here in &self.already_here {
            match &here.here_as {
                Some(name) => writeln!(f, "already here: {} (as {name})", here.username)?,
                None => writeln!(f, "already here: {}", here.username)?,
            }
        }
        for refused in &self.refused {
            writeln!(
                f,
                "refused {} (row {}): {}",
                refused.shown, refused.row, refused.reason
            )?;
        }
        for malformed in &self.malformed {
            writeln!(f, "row {}: malformed: {}", malformed.row, malformed.why)?;
        }
        writeln!(
            f,
            "{} rows read: {} imported, {} already here, {} refused, {} malformed",
            self.rows,
            self.imported.len(),
            self.already_here.len(),
            self.refused.len(),
            self.malformed.len()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_four_forms_are_recognised_and_nothing_else() {
        let des = "abJnggxhB/yWI";
        let md5 = "$1$saltsalt$37SS0fv0WxVowJIO.9PQN.";
        let sha256 = "$5$saltsaltsalt$bemDmZcJzgsHGlyb8fFWD4UuYUOoGspRGwRf/raAiJ0";
        let sha512 = format!("$6$rounds=6000$saltsalt${}", "a".repeat(86));
        assert_eq!(hash_kind(des), Ok(HashKind::Des));
        assert_eq!(hash_kind(md5), Ok(HashKind::Md5));
        assert_eq!(hash_kind(sha256), Ok(HashKind::Sha256));
        assert_eq!(hash_kind(&sha512), Ok(HashKind::Sha512));
        for bad in [
            "",
            "abJnggxhB/yW",
            "ab!nggxhB/yWI",
            "$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe",
            "$y$j9T$salt$hash",
            "$1$$37SS0fv0WxVowJIO.9PQN.",
            "$1$saltsalt$37SS0fv0WxVowJIO.9PQN",
            "$1$rounds=5000$salt$37SS0fv0WxVowJIO.9PQN.",
            "$5$rounds=05000$saltsaltsalt$bemDmZcJzgsHGlyb8fFWD4UuYUOoGspRGwRf/raAiJ0",
            "$5$rounds=999999999$saltsaltsalt$bemDmZcJzgsHGlyb8fFWD4UuYUOoGspRGwRf/raAiJ0",
            "$5$rounds=$saltsaltsalt$bemDmZcJzgsHGlyb8fFWD4UuYUOoGspRGwRf/raAiJ0",
            "$5$sa\u{1}t$bemDmZcJzgsHGlyb8fFWD4UuYUOoGspRGwRf/raAiJ0",
            "$6$salt$short",
            "$6$",
            "$",
        ] {
            assert!(hash_kind(bad).is_err(), "{bad:?}");
        }
        let refused = hash_kind("$2y$05$bvIG6Nmid91Mu9RcmmWZfO5HJIMCT8riNW0hEp8f6/FuA2/mHZFpe")
            .expect_err("bcrypt");
        assert!(refused.starts_with("$2y$ hashes"), "{refused}");
        assert!(
            !refused.contains("bvIG6N"),
            "the hash is not repeated: {refused}"
        );
    }

    #[test]
    fn rows_of_any_shape_are_imported_refused_or_reported() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("dgamelaunch.db");
        let db = Connection::open(&path).expect("create");
        db.execute_batch(
            "CREATE TABLE dglusers (id INTEGER PRIMARY KEY, username TEXT, email TEXT,
                                    env TEXT, password TEXT, flags INTEGER);
             INSERT INTO dglusers VALUES (1, 'alice', 'alice@example.org', '', 'abJnggxhB/yWI', 1);
             INSERT INTO dglusers VALUES (2, 'bob', 'none', '', 'abJnggxhB/yWI', 6);
             INSERT INTO dglusers VALUES (3, NULL, NULL, '', x'3132', 0);
             INSERT INTO dglusers VALUES (4, 'bad name!', NULL, '', 'abJnggxhB/yWI', 0);
             INSERT INTO dglusers VALUES (5, 'ALICE', NULL, '', 'abJnggxhB/yWI', 0);
             INSERT INTO dglusers VALUES (6, 'carol', NULL, '', '$2y$05$x', 0);
             INSERT INTO dglusers VALUES (7, CAST(x'ff' AS TEXT), NULL, '', 'abJnggxhB/yWI', 'x');
             INSERT INTO dglusers VALUES (8, 'dave', NULL, '', 'abJnggxhB/yWI', NULL);",
        )
        .expect("fixture");
        drop(db);
        let store = AccountStore::in_memory(Duration::from_secs(60)).expect("store");
        let source = Source::open(&path).expect("open");
        let report = source.import_into(&store).expect("import");
        let names: Vec<_> = report.imported.iter().map(|i| &i.username[..]).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert!(report.imported[0].is_admin && report.imported[0].has_email);
        assert!(report.imported[1].is_banned && !report.imported[1].has_email);
        assert_eq!(report.imported[1].notes.len(), 2, "{report}");
        let refused: Vec<_> = report.refused.iter().map(|r| r.row).collect();
        assert_eq!(refused, [4, 5, 6]);
        let malformed: Vec<_> = report.malformed.iter().map(|m| m.row).collect();
        assert_eq!(malformed, [3, 7, 8]);
        assert_eq!(
            report.malformed[0].why,
            "username is NULL; password is a blob, not text"
        );
        assert_eq!(
            report.malformed[1].why,
            "username is not UTF-8 text; flags is text, not an integer"
        );
        let text = report.to_string();
        assert!(
            text.starts_with("imported 2 accounts (1 admin, 1 banned, 1 with an email)\n"),
            "{text}"
        );
        assert!(
            text.contains("row 3: malformed: username is NULL"),
            "{text}"
        );
        assert!(text.contains("refused \"bad name!\" (row 4): "), "{text}");

        let again = source.import_into(&store).expect("again");
        assert!(again.imported.is_empty());
        let here: Vec<_> = again.already_here.iter().map(|h| &h.username[..]).collect();
        assert_eq!(here, ["alice", "bob"]);
        assert_eq!(store.list().expect("list").len(), 2);
    }

    #[test]
    fn files_that_are_not_dgamelaunch_databases_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("missing.db");
        let e = Source::open(&missing).expect_err("missing");
        assert!(matches!(e, ImportError::Unreadable { .. }), "{e}");
        let text = dir.path().join("text.db");
        std::fs::write(&text, "not a database at all, just some text\n".repeat(40)).expect("write");
        let e = Source::open(&text).expect_err("text");
        assert!(matches!(e, ImportError::NotSqlite { .. }), "{e}");
        let other = dir.path().join("other.db");
        Connection::open(&other)
            .and_then(|db| db.execute_batch("CREATE TABLE t (x);"))
            .expect("other");
        let e = Source::open(&other).expect_err("no table");
        assert!(e.to_string().contains("no dglusers table"), "{e}");
    }
}
