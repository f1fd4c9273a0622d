//! What operators of dgamelaunch servers rely on: per-player rc files made
//! from a template, in-progress files bots read, the status file, and
//! online backups of the accounts.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::ssh::{Login, SshTerminal};
use common::*;
use dgate_proto::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_players_rc_file_is_made_from_the_template_once_and_given_to_the_game() {
    let templates = tempfile::tempdir().expect("tempdir");
    let template = templates.path().join("nethackrc");
    std::fs::write(&template, "OPTIONS=color,showexp\n").expect("template");
    std::fs::set_permissions(&template, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let server = start_server(|c| {
        let mut game = testgame("rc", &["--dump-env", "%d/games/%u/env"]);
        game.rc_file = Some("%d/rcfiles/%g/%u.rc".into());
        game.rc_template = Some(template.clone());
        game.environment
            .insert("NETHACKOPTIONS".into(), "@%r".into());
        c.games.push(game);
    })
    .await;
    let data = server.data_dir.path().to_owned();
    let rc = data.join("rcfiles/rc/rhoda.rc");
    let mut client = server.client().await;
    let game = server.start_game("rhoda", "rc").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;

    assert_eq!(
        std::fs::read_to_string(&rc).expect("the rc file was made"),
        "OPTIONS=color,showexp\n"
    );
    let meta = std::fs::metadata(&rc).expect("rc");
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    if std::fs::metadata("/proc/self").expect("/proc").uid() == 0 {
        let games = nix::unistd::User::from_name("games")
            .expect("lookup")
            .expect("a games user");
        assert_eq!(meta.uid(), games.uid.as_raw(), "the game's account owns it");
    }
    let env = std::fs::read_to_string(data.join("games/rhoda/env")).expect("env");
    assert!(
        env.lines()
            .any(|l| l == format!("NETHACKOPTIONS=@{}", rc.display())),
        "{env}"
    );

    // The player's own changes are kept: the template is copied once.
    std::fs::write(&rc, "OPTIONS=!color\n").expect("edit");
    client
        .stop_game_session(authed(
            pb::StopGameSessionRequest {
                session_id: game.id.clone(),
                reason: "again".into(),
                force: false,
            },
            &game.token,
        ))
        .await
        .expect("stop");
    player.read_to_end().await.expect("the game ends");
    let again = server.start_game("rhoda", "rc").await;
    let mut player = Viewer::player(&mut client, &again).await.expect("player");
    player.ready().await;
    assert_eq!(
        std::fs::read_to_string(&rc).expect("rc"),
        "OPTIONS=!color\n"
    );
    server.shutdown().await;
}

/// Whether another process (as a bot would) finds `path` write-locked with
/// `fcntl`, dgamelaunch's way: Python's `lockf` takes the same POSIX lock.
fn locked_by_another_process(path: &std::path::Path) -> bool {
    let tried = std::process::Command::new("python3")
        .args([
            "-c",
            "import fcntl, sys\nf = open(sys.argv[1], 'a')\n\
             try:\n    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\nexcept OSError:\n    sys.exit(3)",
        ])
        .arg(path)
        .status()
        .expect("run python3");
    tried.code() == Some(3)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_progress_files_and_the_status_file_follow_the_game() {
    let mut inprogress = std::path::PathBuf::new();
    let server = start_server(|c| {
        inprogress = c.data_dir.join("inprogress-test");
        let game = c
            .games
            .iter_mut()
            .find(|g| g.id == "test")
            .expect("the test game");
        game.inprogress_dir = Some(inprogress.clone());
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("ines", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let pid = server
        .manager
        .get(&game.id)
        .expect("session")
        .pid()
        .expect("pid");

    let files: Vec<_> = std::fs::read_dir(&inprogress)
        .expect("the directory was made")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let file = files[0].clone();
    let name = file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    // ines:YYYY-MM-DD.HH:MM:SS.ttyrec
    let stamp = name
        .strip_prefix("ines:")
        .and_then(|n| n.strip_suffix(".ttyrec"))
        .expect("dgamelaunch's name");
    assert_eq!(stamp.len(), 19, "{name}");
    assert_eq!(
        (&stamp[4..5], &stamp[10..11], &stamp[13..14]),
        ("-", ".", ":"),
        "{name}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        format!("{pid}\n24\n80\n")
    );
    assert!(
        locked_by_another_process(&file),
        "locked while the game runs"
    );

    // A resize is written; the status file lists the game.
    player.send_resize(100, 30).await;
    player.send(b"s").await;
    player.wait_for_text("SIZE 100x30").await.expect("resized");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        format!("{pid}\n30\n100\n")
    );
    let addr = server.http_addr;
    let (status, body) = tokio::task::spawn_blocking(move || http_get(addr, "/status.txt"))
        .await
        .expect("GET");
    assert_eq!(status, 200);
    let line = body.lines().next().expect("one line");
    let fields: Vec<&str> = line.split('#').collect();
    assert_eq!(
        (fields[0], fields[1], fields[2], fields[3], fields[5]),
        ("ines", "test", "", "100x30", "0"),
        "{line}"
    );
    assert!(fields[4].parse::<u64>().is_ok(), "{line}");

    // The game ends: the file is gone.
    player.send(b"q").await;
    player.read_to_end().await.expect("the game ends");
    assert!(!file.exists(), "removed at the end");
    server.shutdown().await;
}

/// `dgate-server backup PATH` copies the account database while the
/// server runs: a new 0600 file with every account in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_are_backed_up_while_the_server_runs() {
    let server = start_server(|_| {}).await;
    server.account("bea").await;
    let data = server.data_dir.path().to_owned();
    let copy = data.join("backup.db");
    let run = |copy: &std::path::Path| {
        std::process::Command::new(workspace_binary("dgate-server"))
            .arg("--data-dir")
            .arg(&data)
            .arg("backup")
            .arg(copy)
            .output()
            .expect("run dgate-server backup")
    };
    let out = run(&copy);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&copy).expect("copy").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let db = rusqlite::Connection::open(&copy).expect("open the copy");
    let names: i64 = db
        .query_row(
            "SELECT count(*) FROM users WHERE username = 'bea'",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(names, 1);
    // Never over an existing file.
    let again = run(&copy);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    server.shutdown().await;
}

/// `GET path` with `extra` headers: the status, the response's head, its body.
fn get_with(addr: std::net::SocketAddr, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = Vec::new();
    socket.read_to_end(&mut response).expect("response");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_lowercase(), response[split + 4..].to_vec())
}

/// A game's published files: the xlogfile whole and from an offset with
/// `Range` (as tournament sites fetch it), a directory as links, and
/// nothing outside the published roots.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_files_are_served_read_only_with_ranges() {
    let server = start_server(|c| {
        let game = c
            .games
            .iter_mut()
            .find(|g| g.id == "test")
            .expect("the test game");
        game.published
            .insert("xlogfile".into(), "%d/pub/%g/xlogfile".into());
        game.published.insert("dumps".into(), "pub/%g/dumps".into());
    })
    .await;
    let data = server.data_dir.path().to_owned();
    let xlog = "version=3.6.6:points=12:name=ada\nversion=3.6.6:points=99:name=bob\n";
    std::fs::create_dir_all(data.join("pub/test/dumps/old")).expect("dirs");
    std::fs::write(data.join("pub/test/xlogfile"), xlog).expect("xlogfile");
    std::fs::write(data.join("pub/test/dumps/ada.txt"), "ada's dump <b>\n").expect("dump");
    std::fs::write(data.join("dgate-secret.txt"), "not published").expect("secret");
    let addr = server.http_addr;
    tokio::task::spawn_blocking(move || {
        let (status, head, body) = get_with(addr, "/files/test/xlogfile", "");
        assert_eq!(status, 200, "{head}");
        assert_eq!(body, xlog.as_bytes());
        assert!(head.contains("accept-ranges: bytes"), "{head}");
        assert!(head.contains("content-type: text/plain"), "{head}");
        // From the second line on, as a tournament site resumes.
        let offset = xlog.find('\n').expect("a line") + 1;
        let (status, head, body) = get_with(
            addr,
            "/files/test/xlogfile",
            &format!("Range: bytes={offset}-\r\n"),
        );
        assert_eq!(status, 206, "{head}");
        assert_eq!(body, &xlog.as_bytes()[offset..]);
        assert!(
            head.contains(&format!(
                "content-range: bytes {offset}-{}/{}",
                xlog.len() - 1,
                xlog.len()
            )),
            "{head}"
        );
        let (status, _, body) = get_with(addr, "/files/test/xlogfile", "Range: bytes=-4\r\n");
        assert_eq!((status, body.as_slice()), (206, &b"bob\n"[..]));
        let (status, head, _) = get_with(
            addr,
            "/files/test/xlogfile",
            &format!("Range: bytes={}-\r\n", xlog.len()),
        );
        assert_eq!(status, 416, "{head}");
        // A directory: links, names escaped.
        let (status, _, body) = get_with(addr, "/files/test/dumps", "");
        let page = String::from_utf8_lossy(&body);
        assert_eq!(status, 200);
        assert!(
            page.contains("href=\"/files/test/dumps/ada.txt\""),
            "{page}"
        );
        assert!(page.contains(">old/<"), "{page}");
        let (status, _, body) = get_with(addr, "/files/test/dumps/ada.txt", "");
        assert_eq!((status, body.as_slice()), (200, &b"ada's dump <b>\n"[..]));
        // Nothing else: unknown games and names, and no way out of a root.
        for path in [
            "/files/nogame/xlogfile",
            "/files/test/nothing",
            "/files/test/dumps/../../../dgate-secret.txt",
            "/files/test/dumps/%2e%2e/%2e%2e/%2e%2e/dgate-secret.txt",
            "/files/test/dumps/old/../../../../dgate.db",
        ] {
            let (status, _, body) = get_with(addr, path, "");
            assert_eq!(status, 404, "{path}: {}", String::from_utf8_lossy(&body));
        }
    })
    .await
    .expect("the HTTP checks");
    server.shutdown().await;
}

/// What games write about themselves (dgamelaunch's `weight|text`, DCSS's
/// `.where`) reaches every listing: `GET /sessions`, `/status.txt`,
/// `dgate list --json` and the SSH watch menu, sorted by its weight, and
/// follows the file as the game rewrites it. A hostile file shows nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extra_info_from_the_games_files_reaches_every_listing() {
    let server = start_server(|c| {
        let mut nethack_like = testgame("xi", &[]);
        nethack_like.extra_info_file = Some("%d/extrainfo/%u.extrainfo".into());
        c.games.push(nethack_like);
        let mut crawl_like = testgame("dc", &[]);
        crawl_like.short_name = "DCSS".into();
        crawl_like.where_file = Some("%d/where/%u.where".into());
        c.games.push(crawl_like);
    })
    .await;
    let data = server.data_dir.path().to_owned();
    std::fs::create_dir_all(data.join("extrainfo")).expect("dir");
    std::fs::create_dir_all(data.join("where")).expect("dir");
    let extra = data.join("extrainfo/valkyrie.extrainfo");
    std::fs::write(&extra, "112|Dlvl:12 Val-Hum-Fem\n").expect("extra info");
    std::fs::write(
        data.join("where/minotaur.where"),
        "name=minotaur:race=Minotaur:cls=Fighter:char=MiFi:xl=3:place=D::4:absdepth=4:\
         turn=1234:status=active\n",
    )
    .expect("where");
    let valkyrie = server.start_game("valkyrie", "xi").await;
    let minotaur = server.start_game("minotaur", "dc").await;
    let plain = server.start_game("plainuser", "test").await;

    let listed = |path: &str| http_get(server.http_addr, path).1;
    let sessions: serde_json::Value =
        serde_json::from_str(&listed("/sessions")).expect("GET /sessions is JSON");
    let extra_of = |sessions: &serde_json::Value, id: &str| -> String {
        sessions["sessions"]
            .as_array()
            .expect("sessions")
            .iter()
            .find(|s| s["id"] == id)
            .map(|s| s["extra_info"].as_str().unwrap_or("<missing>").to_owned())
            .expect("listed")
    };
    assert_eq!(extra_of(&sessions, &valkyrie.id), "Dlvl:12 Val-Hum-Fem");
    assert_eq!(extra_of(&sessions, &minotaur.id), "L3 MiFi, D:4");
    assert_eq!(extra_of(&sessions, &plain.id), "");

    let status = listed("/status.txt");
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("valkyrie#xi#Dlvl:12 Val-Hum-Fem#")),
        "{status}"
    );
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("minotaur#dc#L3 MiFi, D:4#")),
        "{status}"
    );

    // The client's JSON is the same, through gRPC.
    let out = std::process::Command::new(workspace_binary("dgate"))
        .args(["--server", &server.url(), "list", "--json"])
        .output()
        .expect("run dgate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let from_cli: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(extra_of(&from_cli, &valkyrie.id), "Dlvl:12 Val-Hum-Fem");
    assert_eq!(extra_of(&from_cli, &minotaur.id), "L3 MiFi, D:4");

    // The SSH watch menu, 120 columns: its own column, sortable by weight.
    let mut watcher = SshTerminal::connect(server.ssh_addr, "guest", Login::None, (120, 30))
        .await
        .expect("ssh");
    watcher.wait_for("=>").await;
    watcher.send(b"w").await;
    watcher.wait_for("Extra info").await;
    watcher.wait_for("Dlvl:12 Val-Hum-Fem").await;
    watcher.wait_for("L3 MiFi, D:4").await;
    // From start time, `.` three times sorts by the games' weights, highest
    // first: the minotaur's 3004 (level 3, depth 4), the valkyrie's 112,
    // then games without any.
    for _ in 0..3 {
        watcher.send(b".").await;
    }
    watcher.wait_for("sorted by extra info").await;
    let screen = watcher.contents();
    let row = |name: &str| screen.lines().position(|l| l.contains(name)).expect(name);
    assert!(row("minotaur") < row("valkyrie"), "{screen}");
    assert!(row("valkyrie") < row("plainuser"), "{screen}");

    // The game writes a new line: listings follow within two seconds.
    std::fs::write(&extra, "113|Dlvl:13 Val-Hum-Fem\n").expect("extra info");
    watcher.wait_for("Dlvl:13 Val-Hum-Fem").await;
    // A hostile line (escapes, a title change) shows nothing at all.
    std::fs::write(&extra, "9|\x1b]0;owned\x07\x1b[2JDlvl:1\n").expect("extra info");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let sessions: serde_json::Value = serde_json::from_str(&listed("/sessions")).expect("JSON");
        if extra_of(&sessions, &valkyrie.id).is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the hostile line is still shown"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    server.shutdown().await;
}

/// Hooks as dgamelaunch's commands: at registration a directory and a
/// file for the player (the game's account's, as what the game writes);
/// at game start a variable for the game and a program run as the game
/// runs; at game end another program and an unlink. A hook with a missing
/// source is a config error naming its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_run_at_registration_game_start_and_game_end() {
    use dgate_server::game::hooks::HookAction;
    let templates = tempfile::tempdir().expect("tempdir");
    let template = templates.path().join("notes");
    std::fs::write(&template, "welcome\n").expect("template");
    std::fs::set_permissions(&template, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let template_path = template.display().to_string();
    let server = start_server(|c| {
        let mut game = testgame("hooked", &["--dump-env", "%d/games/%u/env"]);
        game.hooks.register = vec![
            HookAction::Mkdir("%d/userdata/%u".into()),
            HookAction::CopyIfMissing(template_path.clone(), "%d/userdata/%u/notes".into()),
        ];
        game.hooks.game_start = vec![
            HookAction::Setenv("DGL_TEST".into(), "%u-started".into()),
            HookAction::Exec(vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo start $DGL_TEST >> %d/userdata/%u/log".into(),
            ]),
        ];
        game.hooks.game_end = vec![
            HookAction::Exec(vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo end >> %d/userdata/%u/log".into(),
            ]),
            HookAction::Unlink("%d/userdata/%u/notes".into()),
        ];
        c.games.push(game);
    })
    .await;
    let data = server.data_dir.path().to_owned();
    let userdata = data.join("userdata/hana");
    server.account("hana").await;
    let made = wait_until(|| userdata.join("notes").exists()).await;
    assert!(
        made,
        "the register hooks made the player's directory and file"
    );
    assert_eq!(
        std::fs::read_to_string(userdata.join("notes")).expect("notes"),
        "welcome\n"
    );
    if std::fs::metadata("/proc/self").expect("/proc").uid() == 0 {
        let games = nix::unistd::User::from_name("games")
            .expect("lookup")
            .expect("a games user");
        let owner = std::fs::metadata(&userdata).expect("dir").uid();
        assert_eq!(owner, games.uid.as_raw(), "the game's account owns it");
    }

    let mut client = server.client().await;
    let game = server.start_game("hana", "hooked").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let env = std::fs::read_to_string(data.join("games/hana/env")).expect("env");
    assert!(env.lines().any(|l| l == "DGL_TEST=hana-started"), "{env}");
    // The exec ran as the game would (its account could write there).
    assert_eq!(
        std::fs::read_to_string(userdata.join("log")).expect("log"),
        "start hana-started\n"
    );
    stop_game(&mut client, &game).await;
    player.read_to_end().await.expect("the game ends");
    let ended = wait_until(|| !userdata.join("notes").exists()).await;
    assert!(ended, "the game_end hooks ran");
    assert_eq!(
        std::fs::read_to_string(userdata.join("log")).expect("log"),
        "start hana-started\nend\n"
    );
    server.shutdown().await;

    let yaml = "games:\n  - id: x\n    name: X\n    short_name: X\n    binary: { path: /bin/true }\n    \
                hooks:\n      game_start:\n        - copy: [/nonexistent/template, \"%d/x\"]\n";
    let err = dgate_server::Config::from_yaml(yaml, "bad.yaml")
        .expect_err("a missing source")
        .to_string();
    assert!(
        err.contains("games[0].hooks.game_start[0]: copy: no such file /nonexistent/template")
            && err.contains("(line 8)"),
        "{err}"
    );
}

/// Polls `done` for up to five seconds.
async fn wait_until(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !done() {
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    true
}

/// The default config's DCSS (the real `crawl`): each player's game in a
/// directory of their own, with their rc file from the options editor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_dcss_runs_in_each_players_own_directory_with_their_rc_file() {
    const CRAWL: &str = "/usr/games/crawl";
    assert!(
        std::path::Path::new(CRAWL).exists(),
        "{CRAWL} is needed (apt-get install crawl; .ci/run installs it)"
    );
    let server = start_server(|_| {}).await;
    let data = server.data_dir.path().to_owned();
    let token = server.account("dana").await;
    let mut client = server.client().await;
    // Options saved before the first game are the file crawl is given.
    client
        .save_game_options(authed(
            pb::SaveGameOptionsRequest {
                game_id: "crawl".into(),
                text: "# dana's options\nweapon = mace\n".into(),
            },
            &token,
        ))
        .await
        .expect("options saved");
    let game = server.start_game("dana", "crawl").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player
        .wait_for_text("Welcome, dana.")
        .await
        .expect("crawl asks dana for a species");
    assert!(data.join("games/crawl/dana").is_dir());
    assert_eq!(
        std::fs::read_to_string(data.join("rcfiles/crawl/dana.crawlrc")).expect("rc"),
        "# dana's options\nweapon = mace\n"
    );
    stop_game(&mut client, &game).await;
    player.read_to_end().await.expect("the game ends");
    server.shutdown().await;
}
