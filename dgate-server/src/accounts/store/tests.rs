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
