//! The `dgate-server` and `dgate` binaries as a user runs them.

use crate::common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::{Child, Command, Stdio};

use common::*;
use dgate_proto::pb;
use dgate_term::listing::SessionList;

/// A `dgate-server` process on free loopback ports.
struct ServerProcess {
    child: Child,
    grpc: SocketAddr,
    http: SocketAddr,
    ssh: SocketAddr,
    data: tempfile::TempDir,
}

impl ServerProcess {
    fn start() -> Self {
        Self::start_with("")
    }

    /// With `extra_session_management` added under `session_management:`.
    fn start_with(extra_session_management: &str) -> Self {
        Self::start_in(
            tempfile::tempdir().expect("data dir"),
            extra_session_management,
        )
    }

    /// In `data` (a restart keeps the same data: accounts, host key, recordings).
    fn start_in(data: tempfile::TempDir, extra_session_management: &str) -> Self {
        let config = data.path().join("dgate.yaml");
        std::fs::write(
            &config,
            format!(
                "games:\n  - id: test\n    name: Test game\n    short_name: TEST\n    binary: {{ path: {:?} }}\n\
                 \x20 - id: stubborn\n    name: Stubborn\n    short_name: STUB\n    binary: {{ path: {:?}, args: [\"--ignore-hup\"] }}\n\
                 session_management:\n  ttyrec: {{ directory: {:?} }}\n{extra_session_management}",
                testgame_path(),
                testgame_path(),
                data.path().join("ttyrec"),
            ),
        )
        .expect("write config");
        let mut child = Command::new(workspace_binary("dgate-server"))
            .args(["--config", &config.to_string_lossy()])
            .args([
                "--grpc-listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
                "--ssh-listen",
                "127.0.0.1:0",
            ])
            .args(["--data-dir", &data.path().join("data").to_string_lossy()])
            .stderr(Stdio::piped())
            .spawn()
            .expect("run dgate-server");
        // The server logs its bound addresses once it listens.
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let line = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("listening"))
            .expect("the server says where it listens");
        let line = strip_ansi(&line);
        let addr = |key: &str| -> SocketAddr {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(key))
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| panic!("no {key} in {line:?}"))
        };
        let (grpc, http, ssh) = (addr("grpc="), addr("http="), addr("ssh="));
        // Keep draining the log so the server never blocks on it.
        std::thread::spawn(move || lines.for_each(drop));
        Self {
            child,
            grpc,
            http,
            ssh,
            data,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.grpc)
    }

    /// SIGTERM, waits, and hands back the data directory.
    fn stop_keeping_data(mut self) -> tempfile::TempDir {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        self.child.wait().expect("wait");
        std::mem::replace(
            &mut self.data,
            tempfile::tempdir().expect("placeholder dir"),
        )
    }

    /// SIGTERM, then the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        self.child.wait().expect("wait")
    }
}

impl Drop for ServerProcess {
    /// A failed test must not leave a server running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The log line without colour codes (should a terminal-detection ever differ).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The line of a listing that names `name`.
fn row_of<'a>(listing: &'a str, name: &str) -> &'a str {
    listing
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("{name} is not listed:\n{listing}"))
}

fn dgate(server: &str, args: &[&str]) -> std::process::Output {
    Command::new(workspace_binary("dgate"))
        .args(["--server", server])
        .args(args)
        .output()
        .expect("run dgate")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_games_show_what_the_server_has() {
    let server = ServerProcess::start();
    let url = server.url();

    let out = dgate(&url, &["list"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "No games in progress."
    );

    let mut client = pb::game_service_client::GameServiceClient::connect(url.clone())
        .await
        .expect("connect");
    let session = start_game_at(&url, "olga", "test", Some((100, 30))).await;
    // A logged-in spectator is listed by name (an anonymous one as Anonymous).
    let pat = account(&url, "pat").await;
    let mut spectator = Viewer::spectator_with(&mut client, &session.id, Some(&pat))
        .await
        .expect("spectator");
    spectator.step().await.expect("snapshot");

    let out = dgate(&url, &["list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let row = table
        .lines()
        .find(|l| l.contains("olga"))
        .unwrap_or_else(|| panic!("no row for olga:\n{table}"));
    for column in [session.id.as_str(), "TEST", "100x30", "1"] {
        assert!(row.contains(column), "{column:?} missing from {row:?}");
    }
    assert!(
        table.contains("USERNAME") && table.contains("WATCHERS"),
        "{table}"
    );

    // `--json` is exactly the HTTP API's JSON (idle time aside, which ticks).
    let out = dgate(&url, &["list", "--json"]);
    let mut from_cli: SessionList =
        serde_json::from_slice(&out.stdout).expect("dgate list --json is JSON");
    let (status, body) = http_get(server.http, "/sessions");
    assert_eq!(status, 200);
    let mut from_http: SessionList = serde_json::from_str(&body).expect("GET /sessions is JSON");
    for s in from_cli
        .sessions
        .iter_mut()
        .chain(from_http.sessions.iter_mut())
    {
        s.idle_seconds = 0;
    }
    assert_eq!(from_cli, from_http);
    let listed = &from_http.sessions[0];
    assert_eq!(
        (listed.username.as_str(), listed.game_id.as_str()),
        ("olga", "test")
    );
    assert_eq!((listed.terminal.cols, listed.terminal.rows), (100, 30));
    assert_eq!(listed.spectator_count, 1);
    assert_eq!(listed.spectators[0].username, "pat");
    assert!(listed.is_active);

    let out = dgate(&url, &["games", "--json"]);
    let games: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(games["games"][0]["id"], "test");
    assert_eq!(games["games"][0]["available"], true);

    let (status, body) = http_get(server.http, "/healthz");
    assert_eq!(status, 200, "{body}");
    let (status, _) = http_get(server.http, "/no/such/thing");
    assert_eq!(status, 404);

    // SIGTERM: the game is hung up, every stream told, and the server exits 0.
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    spectator.read_to_end().await.expect("stream ends");
    assert!(
        matches!(spectator.seen.last(), Some(Seen::Exit(_))),
        "{:?}",
        spectator.seen.last()
    );
}

#[test]
fn an_unreachable_server_is_one_line_and_exit_code_1() {
    let out = dgate("http://127.0.0.1:9", &["list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot reach the dgate server at http://127.0.0.1:9"),
        "{stderr}"
    );
    let out = dgate("not a url", &["games"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn the_server_prints_its_default_config_and_names_bad_keys() {
    let out = Command::new(workspace_binary("dgate-server"))
        .arg("default-config")
        .output()
        .expect("run");
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(printed, include_str!("../../../configs/dgate.yaml"));

    let dir = tempfile::tempdir().expect("dir");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "server:\n  grpc_listen: \"127.0.0.1:1\"\n  htp_listen: \"127.0.0.1:2\"\n",
    )
    .expect("write");
    let out = Command::new(workspace_binary("dgate-server"))
        .args(["--config", &bad.to_string_lossy(), "check-config"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("htp_listen") && stderr.contains("line 3"),
        "{stderr}"
    );
}

/// Operators manage accounts with `dgate-server user ...`, straight on the
/// database file, which only its owner can read.
#[test]
fn operators_manage_accounts_from_the_command_line() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let user = |args: &[&str], stdin: &str| {
        let mut command = Command::new(workspace_binary("dgate-server"));
        command
            .args(["--data-dir", &data.to_string_lossy(), "user"])
            .args(args);
        run_with_stdin(command, stdin)
    };
    let out = user(
        &["add", "root_op", "--admin", "--password-stdin"],
        "a long password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = user(
        &["add", "Root_Op", "--password-stdin"],
        "another password\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("taken"));
    let out = user(
        &["add", "bad name!", "--password-stdin"],
        "a long password\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid username"));
    let out = user(&["add", "shorty", "--password-stdin"], "short\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("8 to 1024 bytes"));

    assert!(user(&["ban", "root_op"], "").status.success());
    let listing = String::from_utf8_lossy(&user(&["list"], "").stdout).into_owned();
    let row = row_of(&listing, "root_op");
    assert!(row.contains("admin,banned"), "{row}");
    assert!(
        !listing.contains("shorty"),
        "a refused account was not created"
    );
    assert!(user(&["unban", "root_op"], "").status.success());
    assert!(
        user(&["set-admin", "root_op", "--off"], "")
            .status
            .success()
    );
    assert!(
        user(
            &["passwd", "root_op", "--password-stdin"],
            "a newer password\n"
        )
        .status
        .success()
    );
    assert_eq!(user(&["ban", "nobody"], "").status.code(), Some(1));
    let listing = String::from_utf8_lossy(&user(&["list"], "").stdout).into_owned();
    let row = row_of(&listing, "root_op");
    assert!(!row.contains("admin") && !row.contains("banned"), "{row}");

    // An account made before names were checked as they are now (a game
    // would read `alice-val` as alice playing a Valkyrie): listed as
    // needing a rename, and renamed.
    let out = user(
        &["add", "alice_old", "--password-stdin"],
        "a long password\n",
    );
    assert!(out.status.success());
    rusqlite::Connection::open(data.join("dgate.db"))
        .expect("the database")
        .execute(
            "UPDATE users SET username = 'alice-val' WHERE username = 'alice_old'",
            [],
        )
        .expect("an old name");
    let listing = String::from_utf8_lossy(&user(&["list"], "").stdout).into_owned();
    assert!(
        row_of(&listing, "alice-val").contains("rename"),
        "{listing}"
    );
    let out = user(&["rename", "alice-val", "root_op"], "");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("taken"),
        "{out:?}"
    );
    let out = user(&["rename", "alice-val", "player"], "");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid username"),
        "{out:?}"
    );
    let out = user(&["rename", "alice-val", "alice_v"], "");
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("renamed alice-val to alice_v"));
    let listing = String::from_utf8_lossy(&user(&["list"], "").stdout).into_owned();
    assert!(!row_of(&listing, "alice_v").contains("rename"), "{listing}");

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("dgate.db"))
        .expect("db")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// `dgate register`, `whoami`, `passwd`, `logout` and `login` as a script runs
/// them; the token file is the user's alone.
#[test]
fn the_client_registers_logs_in_and_out() {
    let server = ServerProcess::start();
    let url = server.url();
    let config = tempfile::tempdir().expect("config dir");
    let dgate_as = |args: &[&str], stdin: &str| {
        let mut command = Command::new(workspace_binary("dgate"));
        command
            .args(["--server", &url])
            .args(args)
            .env("XDG_CONFIG_HOME", config.path());
        run_with_stdin(command, stdin)
    };
    let text = |out: &std::process::Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };

    let out = dgate_as(&["whoami"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("not logged in"), "{}", text(&out));

    let out = dgate_as(
        &["register", "--username", "zoe", "--password-stdin"],
        "zoe's password\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = dgate_as(&["whoami"], "");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "zoe");
    let tokens = config.path().join("dgate/tokens.json");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&tokens)
            .expect("token file")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );

    let out = dgate_as(
        &["passwd", "--password-stdin"],
        "zoe's password\nzoe's new password\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        dgate_as(&["whoami"], "").status.success(),
        "passwd logs in again"
    );
    let out = dgate_as(&["logout"], "");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(dgate_as(&["whoami"], "").status.code(), Some(1));

    let out = dgate_as(
        &["login", "--username", "zoe", "--password-stdin"],
        "zoe's password\n",
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "the old password no longer works"
    );
    assert!(
        text(&out).contains("wrong username or password"),
        "{}",
        text(&out)
    );
    let out = dgate_as(
        &["login", "--username", "zoe", "--password-stdin"],
        "zoe's new password\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        String::from_utf8_lossy(&dgate_as(&["whoami"], "").stdout).trim(),
        "zoe"
    );
    drop(server);
}

/// A server killed outright leaves each recording as a plain ttyrec that
/// readers (ours and `ttyplay`) can play to the last frame written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_leaves_a_readable_plain_recording() {
    let mut server = ServerProcess::start();
    let url = server.url();
    let mut client = pb::game_service_client::GameServiceClient::connect(url.clone())
        .await
        .expect("connect");
    let game = start_game_at(&url, "kurt", "test", None).await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"fff").await;
    player.wait_for_text("frame 000003").await.expect("frames");
    let screen = player.screen.screen().contents();
    let dir = server.data.path().join("ttyrec/kurt/test");
    // The screen a plain recording replays to (empty until there is one).
    let replay = || {
        let plain = std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "ttyrec"))?;
        let bytes = std::fs::read(&plain).ok()?;
        let records = dgate_term::ttyrec::Reader::new(&bytes[..])
            .read_all()
            .expect("readable to the end");
        let mut replayed =
            dgate_term::ScreenModel::new(dgate_server::config::TermSize::new(80, 24));
        for record in &records {
            replayed.process(&record.data);
        }
        Some((plain, replayed.screen().contents()))
    };
    // The recorder writes on its own thread: the kill comes once the last
    // frame is in the file (on a starved machine that can take a moment).
    eventually("the recorder to write the last frame", || {
        replay().is_some_and(|(_, replayed)| replayed == screen)
    })
    .await;

    server.child.kill().expect("SIGKILL the server");
    server.child.wait().expect("reaped");

    let (plain, replayed) = replay().expect("a plain .ttyrec");
    assert_eq!(replayed, screen);
    if let Ok(out) = Command::new("ttyplay").arg("-n").arg(&plain).output() {
        assert!(out.status.success());
        let mut played = dgate_term::ScreenModel::new(dgate_server::config::TermSize::new(80, 24));
        played.process(&out.stdout);
        assert_eq!(
            played.screen().contents(),
            screen,
            "ttyplay plays what we wrote"
        );
    }
}

/// A second SIGTERM ends the server at once, even while a game that ignores
/// SIGHUP holds up the graceful shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_forces_the_exit() {
    let mut server = ServerProcess::start_with("  shutdown_grace: \"10m\"\n");
    let url = server.url();
    let mut client = pb::game_service_client::GameServiceClient::connect(url.clone())
        .await
        .expect("connect");
    let game = start_game_at(&url, "ivy", "stubborn", None).await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let pid = nix::unistd::Pid::from_raw(server.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("first SIGTERM");
    // The first signal tells the viewers; the stubborn game ignores its SIGHUP.
    while !player.seen.contains(&Seen::ServerShutdown) {
        assert!(
            player.step().await.expect("stream"),
            "the stream ended early"
        );
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("second SIGTERM");
    let status = server.child.wait().expect("exit");
    assert_eq!(
        status.code(),
        Some(130),
        "forced exit, not a 10-minute wait"
    );
}

/// The ed25519 host key `ssh-keyscan` reads from `addr`.
fn host_key(addr: SocketAddr) -> String {
    let out = Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &addr.port().to_string(), "127.0.0.1"])
        .output()
        .expect("ssh-keyscan (apt-get install openssh-client)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .find(|l| l.contains("ssh-ed25519"))
        .unwrap_or_else(|| {
            panic!(
                "no host key from ssh-keyscan: {text:?} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
        .split_whitespace()
        .skip(1)
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn the_ssh_host_key_is_made_once_kept_private_and_the_same_after_a_restart() {
    let server = ServerProcess::start();
    let key_file = server.data.path().join("data/ssh_host_ed25519_key");
    let mode = std::fs::metadata(&key_file)
        .expect("host key file")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the host key is readable by its owner only");
    let first = host_key(server.ssh);
    assert!(first.starts_with("ssh-ed25519 "), "{first}");
    let data = server.stop_keeping_data();
    let again = ServerProcess::start_in(data, "");
    assert_eq!(
        host_key(again.ssh),
        first,
        "a restart keeps the fingerprint"
    );
}
