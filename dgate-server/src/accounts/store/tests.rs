//! The account store against a real SQLite database.

use super::*;

fn store() -> AccountStore {
    AccountStore::in_memory(Duration::from_secs(3600)).expect("store")
}

#[test]
fn register_login_authenticate_logout() {
    let s = store();
    let user = s
        .register("Alice", b"correct horse", None)
        .expect("register");
    assert_eq!(user.username, "Alice");
    let login = s
        .login("alice", b"correct horse")
        .expect("login ignores case of the name");
    assert_eq!(login.token.len(), 64, "256 bits, hex");
    assert_eq!(s.authenticate(&login.token).expect("valid").id, user.id);
    assert!(s.user("Alice").expect("user").last_login.is_some());
    s.logout(&login.token).expect("logout");
    assert!(matches!(
        s.authenticate(&login.token),
        Err(AccountError::BadToken)
    ));
    assert!(matches!(
        s.logout(&login.token),
        Err(AccountError::BadToken)
    ));
}

#[test]
fn usernames_are_unique_ignoring_case() {
    let s = store();
    s.register("bob", b"password1", None).expect("first");
    assert!(matches!(
        s.register("BOB", b"password2", None),
        Err(AccountError::UsernameTaken(_))
    ));
    assert_eq!(s.list().expect("list").len(), 1);
}

#[test]
fn hostile_usernames_and_passwords_change_nothing() {
    let s = store();
    for name in [
        "x",
        "a'; DROP TABLE users; --",
        "ünïcode",
        "tab\tname",
        "nul\0name",
        "-dash",
        &"n".repeat(21),
    ] {
        assert!(
            matches!(
                s.register(name, b"password1", None),
                Err(AccountError::Invalid { .. })
            ),
            "{name:?}"
        );
    }
    assert!(matches!(
        s.register("carol", b"short", None),
        Err(AccountError::Invalid { .. })
    ));
    assert!(matches!(
        s.register("carol", &vec![b'p'; 1025], None),
        Err(AccountError::Invalid { .. })
    ));
    assert!(s.list().expect("list").is_empty());
    // Any bytes within the limits are a password, `:` and NUL included.
    s.register("carol", b"a:b\0c:d:e", None)
        .expect("odd but valid password");
    s.login("carol", b"a:b\0c:d:e").expect("login");
    assert!(matches!(
        s.login("carol", b"a:b"),
        Err(AccountError::BadCredentials)
    ));
}

#[test]
fn wrong_passwords_unknown_users_and_stored_hashes_are_refused_alike() {
    let s = store();
    s.register("dave", b"hunter2hunter2", None)
        .expect("register");
    let hash: String = s
        .db()
        .query_row("SELECT password_hash FROM users", [], |r| r.get(0))
        .expect("hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    for (name, password) in [
        ("dave", b"wrong".as_slice()),
        ("nobody", b"hunter2hunter2"),
        ("dave", hash.as_bytes()),
    ] {
        assert!(
            matches!(s.login(name, password), Err(AccountError::BadCredentials)),
            "{name}"
        );
    }
}

fn legacy(username: &str, legacy_hash: &str) -> LegacyAccount {
    LegacyAccount {
        username: username.into(),
        email: None,
        legacy_hash: legacy_hash.into(),
        is_admin: false,
        is_banned: false,
    }
}

/// The stored argon2id hash and legacy hash of `username`.
fn hashes(s: &AccountStore, username: &str) -> (String, Option<String>) {
    s.db()
        .query_row(
            "SELECT password_hash, legacy_hash FROM users WHERE username = ?1",
            [username],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("hashes")
}

#[test]
#[allow(deprecated)] // pwhash keeps DES and MD5 for old hashes only, which these are.
fn legacy_hashes_log_in_once_and_become_argon2id() {
    use pwhash::HashSetup;
    let salted = |salt| HashSetup {
        salt: Some(salt),
        rounds: None,
    };
    let kinds = [
        (
            "des",
            b"old pass".as_slice(),
            pwhash::unix_crypt::hash_with("ab", "old pass"),
        ),
        (
            "md5",
            b"md5 pass",
            pwhash::md5_crypt::hash_with(salted("saltsalt"), "md5 pass"),
        ),
        (
            "sha256",
            b"sha256 pass",
            pwhash::sha256_crypt::hash_with(
                HashSetup {
                    salt: Some("saltsaltsalt"),
                    rounds: Some(6000),
                },
                "sha256 pass",
            ),
        ),
        (
            "sha512",
            b"sha512 pass",
            pwhash::sha512_crypt::hash("sha512 pass"),
        ),
    ];
    let s = store();
    for (name, password, hash) in kinds {
        let hash = hash.expect("a legacy hash");
        assert_eq!(
            s.import_legacy(&[legacy(name, &hash)]).expect("import"),
            [true]
        );
        for wrong in [hash.as_bytes(), b"wrong password", b""] {
            assert!(
                matches!(s.login(name, wrong), Err(AccountError::BadCredentials)),
                "{name}: {wrong:?}"
            );
        }
        assert_eq!(
            hashes(&s, name),
            (String::new(), Some(hash.clone())),
            "{name}: a failed login changes nothing"
        );
        let login = s.login(name, password).expect("the old password");
        assert_eq!(login.user.username, name);
        let (argon, legacy_hash) = hashes(&s, name);
        assert!(argon.starts_with("$argon2id$"), "{name}: {argon}");
        assert_eq!(legacy_hash, None, "{name}: the legacy hash is gone");
        s.login(name, password)
            .expect("the same password, now argon2id");
        assert!(matches!(
            s.login(name, hash.as_bytes()),
            Err(AccountError::BadCredentials)
        ));
        assert_eq!(
            s.user(name).expect("user").generation,
            0,
            "not a new password: live sessions stay"
        );
    }
}

#[test]
#[allow(deprecated)]
fn imported_accounts_keep_their_standing_and_never_replace_one() {
    let s = store();
    s.register("Hana", b"password1", None).expect("register");
    let des = pwhash::unix_crypt::hash_with("xy", "legacy1").expect("des");
    let banned = LegacyAccount {
        is_banned: true,
        ..legacy("ivan", &des)
    };
    let admin = LegacyAccount {
        is_admin: true,
        email: Some("jo@example.org".into()),
        ..legacy("jo", &des)
    };
    let added = s
        .import_legacy(&[legacy("hana", &des), banned, admin])
        .expect("import");
    assert_eq!(added, [false, true, true], "hana is already here as Hana");
    s.login("Hana", b"password1")
        .expect("the account already here is untouched");
    assert!(matches!(
        s.login("ivan", b"legacy1"),
        Err(AccountError::Banned(_))
    ));
    let jo = s.user("jo").expect("jo");
    assert!(jo.is_admin);
    assert_eq!(jo.email.as_deref(), Some("jo@example.org"));
    // A new password set by an operator replaces the legacy one.
    s.set_password("jo", b"brand new password").expect("passwd");
    assert!(hashes(&s, "jo").1.is_none());
    assert!(matches!(
        s.login("jo", b"legacy1"),
        Err(AccountError::BadCredentials)
    ));
    s.login("jo", b"brand new password").expect("new password");
    assert!(matches!(
        s.import_legacy(&[legacy("bad name", &des)]),
        Err(AccountError::Invalid { .. })
    ));
    assert_eq!(s.list().expect("list").len(), 3);
}

#[test]
fn tokens_expire() {
    let s = AccountStore::in_memory(Duration::ZERO).expect("store");
    s.register("erin", b"password1", None).expect("register");
    let login = s.login("erin", b"password1").expect("login");
    assert!(matches!(
        s.authenticate(&login.token),
        Err(AccountError::BadToken)
    ));
}

#[test]
fn operators_ban_promote_and_reset() {
    let s = store();
    s.register("fay", b"password1", None).expect("register");
    let login = s.login("fay", b"password1").expect("login");
    s.set_banned("fay", true).expect("ban");
    assert!(
        matches!(s.authenticate(&login.token), Err(AccountError::BadToken)),
        "a ban revokes tokens"
    );
    assert!(matches!(
        s.login("fay", b"password1"),
        Err(AccountError::Banned(_))
    ));
    s.set_banned("fay", false).expect("unban");
    s.set_admin("fay", true).expect("admin");
    assert!(s.user("fay").expect("user").is_admin);
    let login = s.login("fay", b"password1").expect("login");
    s.set_password("fay", b"new password").expect("passwd");
    assert!(
        matches!(s.authenticate(&login.token), Err(AccountError::BadToken)),
        "a new password revokes tokens"
    );
    s.login("fay", b"new password").expect("new password works");
    assert!(matches!(
        s.set_admin("ghost", true),
        Err(AccountError::NoSuchUser(_))
    ));
}

#[test]
fn the_database_survives_reopening() {
    let dir = tempfile_dir();
    let path = dir.join("dgate.db");
    let token = {
        let s = AccountStore::open(&path, Duration::from_secs(60)).expect("open");
        s.register("gus", b"password1", Some("gus@example.org"))
            .expect("register");
        s.login("gus", b"password1").expect("login").token
    };
    let s = AccountStore::open(&path, Duration::from_secs(60)).expect("reopen");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path)
        .expect("db file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the database holds password hashes");
    assert_eq!(
        s.authenticate(&token).expect("token survives").username,
        "gus"
    );
    assert_eq!(
        s.user("gus").expect("user").email.as_deref(),
        Some("gus@example.org")
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dgate-accounts-{}-{}",
        std::process::id(),
        hex(&random_bytes::<4>().expect("random"))
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
