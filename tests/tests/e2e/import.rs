//! `dgate-server import dgamelaunch`: a dgamelaunch `dglusers` database with
//! password hashes made by a tool nobody here wrote (Debian's `mkpasswd`),
//! imported by the real binary while a server runs on the same data
//! directory, then logged into through that server over gRPC.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use dgate_proto::auth as auth_pb;
use dgate_proto::auth::auth_service_client::AuthServiceClient;
use tonic::Code;

/// `mkpasswd -m METHOD [-R ROUNDS] PASSWORD [SALT]` (Debian's whois package).
fn mkpasswd(method: &str, rounds: Option<u32>, password: &str, salt: Option<&str>) -> String {
    let mut command = Command::new("mkpasswd");
    command.args(["-m", method]);
    if let Some(rounds) = rounds {
        command.args(["-R", &rounds.to_string()]);
    }
    command.arg(password).args(salt);
    let out = command
        .output()
        .expect("run mkpasswd (apt-get install whois)");
    assert!(
        out.status.success(),
        "mkpasswd -m {method}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("a hash")
        .trim()
        .to_owned()
}

/// `dgate-server --data-dir DATA import dgamelaunch --db DB`.
fn import(data: &Path, db: &Path) -> Output {
    Command::new(workspace_binary("dgate-server"))
        .arg("--data-dir")
        .arg(data)
        .args(["import", "dgamelaunch", "--db"])
        .arg(db)
        .output()
        .expect("run dgate-server import dgamelaunch")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every row of dgate's users table, every column as text.
fn users_table(data: &Path) -> Vec<Vec<Option<String>>> {
    let db = rusqlite::Connection::open(data.join("dgate.db")).expect("open dgate.db");
    let mut statement = db
        .prepare("SELECT * FROM users ORDER BY id")
        .expect("select users");
    let columns = statement.column_count();
    statement
        .query_map([], |row| {
            (0..columns)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Null => None,
                        value => Some(format!("{value:?}")),
                    })
                })
                .collect()
        })
        .expect("query users")
        .collect::<Result<_, _>>()
        .expect("rows")
}

/// `username`'s argon2id hash and legacy hash in dgate.db.
fn hashes(data: &Path, username: &str) -> (String, Option<String>) {
    rusqlite::Connection::open(data.join("dgate.db"))
        .expect("open dgate.db")
        .query_row(
            "SELECT password_hash, legacy_hash FROM users WHERE username = ?1",
            [username],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the account's hashes")
}

fn login(username: &str, password: &[u8]) -> auth_pb::LoginRequest {
    auth_pb::LoginRequest {
        username: username.into(),
        password: password.to_vec().into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dgamelaunch_accounts_log_in_with_their_old_passwords_once_imported() {
    let server = start_server(|_| {}).await;
    let data = server.data_dir.path().to_owned();
    server.account("native").await;

    // dgamelaunch's own schema; DES made the way dgamelaunch makes it,
    // crypt(password, password).
    let old = tempfile::tempdir().expect("dir");
    let dgl = old.path().join("dgamelaunch.db");
    let kinds = [
        (
            "des_user",
            "despass1",
            mkpasswd("des", None, "despass1", Some("de")),
        ),
        // Shorter than dgate asks of a new password: dgamelaunch allowed it.
        ("md5_user", "md5pw", mkpasswd("md5", None, "md5pw", None)),
        (
            "sha256_user",
            "sha256 password",
            mkpasswd("sha-256", None, "sha256 password", None),
        ),
        (
            "sha512_user",
            "sha512 password",
            mkpasswd("sha-512", Some(10_000), "sha512 password", None),
        ),
    ];
    assert!(kinds[3].2.starts_with("$6$rounds=10000$"), "{}", kinds[3].2);
    let banned_hash = mkpasswd("sha-512", None, "banned password", None);
    let bcrypt = mkpasswd("bcrypt", None, "bcrypt password", None);
    let long_name = "n".repeat(300);
    {
        let db = rusqlite::Connection::open(&dgl).expect("create dglusers");
        db.execute_batch(
            "CREATE TABLE dglusers (id INTEGER PRIMARY KEY, username TEXT, email TEXT,
                                    env TEXT, password TEXT, flags INTEGER);",
        )
        .expect("schema");
        let add = |id: i64,
                   name: Option<&str>,
                   email: &str,
                   password: &dyn rusqlite::ToSql,
                   flags: &dyn rusqlite::ToSql| {
            db.execute(
                "INSERT INTO dglusers VALUES (?1, ?2, ?3, '', ?4, ?5)",
                rusqlite::params![id, name, email, password, flags],
            )
            .expect("insert");
        };
        add(1, Some("des_user"), "des@example.org", &kinds[0].2, &0);
        add(2, Some("md5_user"), "", &kinds[1].2, &1);
        add(3, Some("sha256_user"), "", &kinds[2].2, &0);
        add(4, Some("sha512_user"), "", &kinds[3].2, &4);
        add(5, Some("banned_user"), "", &banned_hash, &2);
        add(6, Some("bad name"), "", &kinds[0].2, &0);
        add(7, Some("ctl\x1b[2Jname"), "", &kinds[0].2, &0);
        add(8, Some(&long_name), "", &kinds[0].2, &0);
        add(9, None, "", &12345, &0);
        add(10, Some("blobby"), "", &vec![0xde_u8, 0xad], &0);
        add(11, Some("flagged"), "", &kinds[0].2, &"admin");
        add(12, Some("bcrypt_user"), "", &bcrypt, &0);
    }

    let first = stdout(&import(&data, &dgl));
    for line in [
        "imported 5 accounts (1 admin, 1 banned, 1 with an email)\n",
        "note: sha512_user: its password was locked (flag 4)",
        "refused \"bad name\" (row 6): ",
        "refused \"ctl\\u{1b}[2Jname\" (row 7): ",
        "(row 8): must be 2 to 20 characters long\n",
        "row 9: malformed: username is NULL\n",
        "row 10: malformed: password is a blob, not text\n",
        "row 11: malformed: flags is text, not an integer\n",
        "refused \"bcrypt_user\" (row 12): $2b$ hashes: not DES, $1$, $5$ or $6$",
        "12 rows read: 5 imported, 0 already here, 4 refused, 3 malformed\n",
    ] {
        assert!(first.contains(line), "{line:?} in\n{first}");
    }
    assert!(!first.contains(&long_name), "a long name is cut:\n{first}");
    assert!(!first.contains('\x1b'), "control characters are escaped");
    for (name, _, hash) in &kinds {
        assert_eq!(hashes(&data, name), (String::new(), Some(hash.clone())));
    }

    // Again: everything imported is already here, and nothing changes.
    let before = users_table(&data);
    assert_eq!(before.len(), 6, "native and the five imported");
    let second = stdout(&import(&data, &dgl));
    for name in [
        "des_user",
        "md5_user",
        "sha256_user",
        "sha512_user",
        "banned_user",
    ] {
        assert!(
            second.contains(&format!("already here: {name}\n")),
            "{name} in\n{second}"
        );
    }
    assert!(second.starts_with("imported 0 accounts"), "{second}");
    assert_eq!(
        users_table(&data),
        before,
        "a second import changes nothing"
    );

    let mut auth = AuthServiceClient::connect(server.url())
        .await
        .expect("connect");
    let native_wrong = auth
        .login(login("native", b"not the password"))
        .await
        .expect_err("wrong password");
    for (name, password, hash) in &kinds {
        // dgamelaunch's pass-the-hash: the stored string is not a password.
        let status = auth
            .login(login(name, hash.as_bytes()))
            .await
            .expect_err("the hash itself");
        assert_eq!(
            (status.code(), status.message()),
            (native_wrong.code(), native_wrong.message()),
            "{name}: refused like any wrong password"
        );
        let reply = auth
            .login(login(name, password.as_bytes()))
            .await
            .unwrap_or_else(|e| panic!("{name} logs in with its old password: {e:?}"))
            .into_inner();
        let user = reply.user.expect("user");
        assert_eq!(user.username, *name);
        assert_eq!(user.is_admin, *name == "md5_user", "{name}");
        let (argon, legacy) = hashes(&data, name);
        assert!(argon.starts_with("$argon2id$"), "{name}: {argon}");
        assert_eq!(legacy, None, "{name}: the old hash is gone");
        auth.login(login(name, password.as_bytes()))
            .await
            .expect("and again, against argon2id");
        assert_eq!(
            auth.login(login(name, hash.as_bytes()))
                .await
                .expect_err("the old hash is still no password")
                .code(),
            Code::Unauthenticated
        );
    }
    let des_email = auth
        .login(login("des_user", b"despass1"))
        .await
        .expect("login")
        .into_inner()
        .user
        .expect("user")
        .email;
    assert_eq!(des_email, "des@example.org");
    assert_eq!(
        status_code(auth.login(login("banned_user", b"banned password")).await),
        Code::PermissionDenied,
        "dgamelaunch's login lock is a ban"
    );
    server.shutdown().await;
}

/// A file that is missing, not SQLite, or not dgamelaunch's: exit 1 with one
/// line that says which.
#[test]
fn the_import_names_a_file_it_cannot_use() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a database, only text\n".repeat(100)).expect("write");
    let other = dir.path().join("other.db");
    rusqlite::Connection::open(&other)
        .and_then(|db| db.execute_batch("CREATE TABLE users (name TEXT);"))
        .expect("another database");
    for (path, says) in [
        (
            dir.path().join("missing.db"),
            "cannot read dgamelaunch's database",
        ),
        (text, "is not an SQLite database"),
        (other, "has no dglusers table"),
    ] {
        let out = import(&data, &path);
        assert_eq!(out.status.code(), Some(1), "{}", path.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(says) && stderr.contains(&path.display().to_string()),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    assert!(
        !data.join("dgate.db").exists(),
        "a file it cannot use creates no account database"
    );
}
