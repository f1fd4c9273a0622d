//! The SSH front end through an in-process russh client with its own screen:
//! every menu key, register and log in (menus, password and public key), the
//! watch menu and a watcher's screen equal to the player's, playing and
//! resizing, bad input, and the limits. What dgamelaunch players expect of
//! it has modules of its own: `logins` (the ssh command to come back with, a
//! refused login's reason in the real OpenSSH client) and `watching` (the
//! help, the status line through resizes, cropping that keeps the bottom rows).

use crate::common;

use common::ssh::{Login, SshTerminal};
use common::*;
use russh::keys::PrivateKey;

mod logins;
mod watching;

const SIZE: (u16, u16) = (100, 30);

async fn anonymous(server: &TestServer) -> SshTerminal {
    let mut t = SshTerminal::connect(server.ssh_addr, "guest", Login::None, SIZE)
        .await
        .expect("anonymous login");
    t.wait_for("=>").await;
    t
}

/// Registers `name` through the anonymous menu and leaves the terminal at
/// the logged-in menu.
async fn register(server: &TestServer, name: &str, password: &str) -> SshTerminal {
    let mut t = anonymous(server).await;
    t.send(b"r").await;
    t.wait_for("Username:").await;
    t.send(format!("{name}\r").as_bytes()).await;
    t.wait_for("Password:").await;
    t.send(format!("{password}\r").as_bytes()).await;
    t.wait_for("Again:").await;
    t.send(format!("{password}\r").as_bytes()).await;
    t.wait_for(&format!("Logged in as {name}.")).await;
    t
}

fn test_key(seed: u8) -> PrivateKey {
    PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        &[seed; 32],
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_anonymous_menu_answers_every_key_and_survives_garbage() {
    let server = start_server(|_| {}).await;
    let mut t = anonymous(&server).await;
    let menu = t.contents();
    assert!(menu.contains("Not logged in."), "{menu}");
    for item in [
        "l) Log in",
        "r) Register",
        "w) Watch",
        "g) Games",
        "q) Quit",
    ] {
        assert!(menu.contains(item), "{item} in {menu}");
    }
    // An unknown key: a hint, nothing else.
    t.send(b"x").await;
    t.wait_for("There is no 'x' here: press one of l r w g q.")
        .await;
    // Garbage: binary, broken escape sequences, a mouse report, a flood of
    // arrows. The menu is still there.
    t.send(b"\xff\xfe\x00\x1b[\x1b[999;999;999x\x1bO\x1b[<0;1;1M")
        .await;
    t.send(&b"\x1b[A".repeat(500)).await;
    t.send(b"g").await;
    t.wait_for("Log in (l) or register (r)").await;
    assert!(
        t.contents().contains("TEST     Test game test"),
        "{}",
        t.contents()
    );
    assert!(t.contents().contains("Log in (l) or register (r)"));
    t.send(b"q").await;
    t.wait_for("r) Register").await;
    // Watching with nothing to watch.
    t.send(b"w").await;
    t.wait_for("No games are in progress.").await;
    t.send(b"q").await;
    t.wait_for("r) Register").await;
    t.send(b"q").await;
    t.wait_for("Goodbye.").await;
    t.wait_closed().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_log_in_and_change_the_password_over_ssh() {
    let server = start_server(|_| {}).await;
    let mut t = register(&server, "dave", "s3cret-pass").await;
    let menu = t.contents();
    for item in [
        "p) Play",
        "w) Watch",
        "c) Change your password",
        "k) Your SSH keys",
    ] {
        assert!(menu.contains(item), "{item} in {menu}");
    }
    // A taken name and a bad name are refused with the reason.
    let mut other = anonymous(&server).await;
    other.send(b"rdave\r").await;
    other.wait_for("Password:").await;
    other.send(b"whatever1\rwhatever1\r").await;
    other.wait_for("is taken").await;
    other.send(b"r../etc\r").await;
    other.wait_for("may contain only letters").await;
    // Cancel with Esc: back at the menu, nothing changed.
    other.send(b"l").await;
    other.wait_for("Log in (Esc cancels)").await;
    other.send(b"\x1b").await;
    other.wait_for("l) Log in").await;
    // A wrong password through the menu, then the right one.
    other.send(b"ldave\rwrong-pass\r").await;
    other
        .wait_for("Cannot log in: wrong username or password.")
        .await;
    other.send(b"ldave\rs3cret-pass\r").await;
    other.wait_for("Welcome back, dave.").await;

    // The account's name with no password is not anonymous any more.
    let refused = SshTerminal::connect(server.ssh_addr, "dave", Login::None, SIZE).await;
    assert!(refused.is_err(), "an account needs its password");
    let wrong =
        SshTerminal::connect(server.ssh_addr, "dave", Login::Password("nope-nope"), SIZE).await;
    assert!(wrong.is_err());
    let mut direct = SshTerminal::connect(
        server.ssh_addr,
        "dave",
        Login::Password("s3cret-pass"),
        SIZE,
    )
    .await
    .expect("password login");
    direct.wait_for("Logged in as dave.").await;

    // Change it; the old one stops working.
    t.send(b"c").await;
    t.wait_for("Current password:").await;
    t.send(b"s3cret-pass\rn3w-pass-word\rn3w-pass-word\r").await;
    t.wait_for("Password changed; your other sessions are logged out.")
        .await;
    // Dave's other sessions (a password login, a menu login) end, saying why;
    // the one that changed it goes on.
    for other_session in [&mut direct, &mut other] {
        other_session
            .wait_for("Your session has ended: your password was changed")
            .await;
        other_session.wait_closed().await;
    }
    t.send(b"w").await;
    t.wait_for("No games are in progress.").await;
    t.send(b"q").await;
    assert!(
        SshTerminal::connect(
            server.ssh_addr,
            "dave",
            Login::Password("s3cret-pass"),
            SIZE
        )
        .await
        .is_err()
    );
    SshTerminal::connect(
        server.ssh_addr,
        "dave",
        Login::Password("n3w-pass-word"),
        SIZE,
    )
    .await
    .expect("the new password");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_limited_and_counted() {
    let server = start_server(|c| c.accounts.failed_logins_per_minute = 2).await;
    drop(register(&server, "erin", "right-pass").await);
    for _ in 0..2 {
        assert!(
            SshTerminal::connect(server.ssh_addr, "erin", Login::Password("wrong-pass"), SIZE)
                .await
                .is_err()
        );
    }
    // Over the limit, even the right password waits for the minute to pass.
    assert!(
        SshTerminal::connect(server.ssh_addr, "erin", Login::Password("right-pass"), SIZE)
            .await
            .is_err()
    );
    let (_, metrics) = http_get(server.http_addr, "/metrics");
    assert!(metric(&metrics, "failed_logins_total") >= 2.0, "{metrics}");
    assert!(
        metric(&metrics, "ssh_connections_total") >= 4.0,
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_key_added_in_the_menu_logs_in() {
    let server = start_server(|_| {}).await;
    let mut t = register(&server, "fay", "key-owner-pass").await;
    let key = test_key(7);
    let line = key.public_key().to_openssh().expect("public key line");
    t.send(b"k").await;
    t.wait_for("(none yet)").await;
    t.send(b"a").await;
    t.wait_for("Paste one line").await;
    t.send(format!("{line} fay@laptop\r").as_bytes()).await;
    t.wait_for("Added SHA256:").await;
    assert!(t.contents().contains("fay@laptop"));
    // A line that is not a key.
    t.send(b"anot a key\r").await;
    t.wait_for("Not added: invalid public key").await;

    let mut with_key = SshTerminal::connect(server.ssh_addr, "fay", Login::Key(&key), SIZE)
        .await
        .expect("public key login");
    with_key.wait_for("Logged in as fay.").await;
    // Another key, or the key for another name, does not.
    assert!(
        SshTerminal::connect(server.ssh_addr, "fay", Login::Key(&test_key(8)), SIZE)
            .await
            .is_err()
    );
    drop(register(&server, "gus", "gus-password").await);
    assert!(
        SshTerminal::connect(server.ssh_addr, "gus", Login::Key(&key), SIZE)
            .await
            .is_err()
    );

    // Deleted: no more.
    t.send(b"d").await;
    t.wait_for("Delete which key").await;
    t.send(b"a").await;
    t.wait_for("Deleted SHA256:").await;
    assert!(
        SshTerminal::connect(server.ssh_addr, "fay", Login::Key(&key), SIZE)
            .await
            .is_err()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_watcher_sees_the_players_screen_and_cannot_type_into_the_game() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("alice", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"ff").await;
    player.wait_for_text("frame 000002").await.expect("frames");

    let mut t = anonymous(&server).await;
    t.send(b"w").await;
    t.wait_for("alice").await;
    let menu = t.contents();
    assert!(
        menu.contains("a)   alice            TEST    80x24"),
        "{menu}"
    );
    t.send(b"a").await;
    let same = |t: &SshTerminal, player: &Viewer| t.rows(80, 24) == player.rows();
    t.wait_until("the player's screen", |t| same(t, &player))
        .await;
    t.wait_for("alice · TEST · 80x24 · 1 watching").await;

    // Live frames, then keys from the watcher that never reach the game.
    t.send(b"zyx\r").await;
    player.send(b"f").await;
    player.wait_for_text("frame 000003").await.expect("frame");
    t.wait_until("frame 3", |t| same(t, &player)).await;
    assert!(
        player.screen.screen().contents().contains("keys: f"),
        "only the player's keys"
    );
    assert!(!player.screen.screen().contents().contains('z'));

    // A terminal smaller than the game: a cropped view that says so.
    t.resize(50, 12).await;
    t.wait_for("cropped to 50").await;
    // Back to a roomy one: the passthrough again.
    t.resize(100, 30).await;
    player.send(b"f").await;
    player.wait_for_text("frame 000004").await.expect("frame");
    t.wait_until("the full screen again", |t| same(t, &player))
        .await;

    // q: back to the watch menu, and the watcher is gone from the count.
    t.send(b"q").await;
    t.wait_for("Watch which game?").await;
    eventually("the spectator to leave", || {
        server
            .manager
            .get(&game.id)
            .is_ok_and(|s| s.spectators.is_empty())
    })
    .await;

    // The game ends while watched: told, and back at the menu.
    t.send(b"a").await;
    t.wait_for("1 watching").await;
    player.send(b"q").await;
    t.wait_for("alice's TEST game has ended.").await;
    assert!(t.contents().contains("Watch which game?"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playing_over_ssh_follows_resizes_and_returns_to_the_menu() {
    let server = start_server(|_| {}).await;
    let mut t = register(&server, "hal", "hal-password").await;
    t.send(b"p").await;
    t.wait_for("Play which game?").await;
    // The embedded NetHack and DCSS are first, the test game third.
    assert!(t.contents().contains("c) TEST"), "{}", t.contents());
    t.send(b"c").await;
    t.wait_for("dgate test game").await;
    t.send(b"fs").await;
    t.wait_for("SIZE 100x30").await;
    assert!(t.contents().contains("frame 000001"));
    t.resize(90, 26).await;
    t.send(b"s").await;
    t.wait_for("SIZE 90x26").await;
    // The session is listed for watchers, at the new size.
    let listed = server.manager.list();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].hub.size(),
        dgate_server::config::TermSize::new(90, 26)
    );
    t.send(b"q").await;
    t.wait_for("The game has ended.").await;
    assert!(t.contents().contains("Logged in as hal."));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_ssh_player_can_come_back_to_the_same_game() {
    let server = start_server(|_| {}).await;
    let mut t = register(&server, "ivy", "ivy-password").await;
    t.send(b"pc").await;
    t.wait_for("dgate test game").await;
    t.send(b"fff").await;
    t.wait_for("frame 000003").await;
    drop(t);
    eventually("the game to be detached", || {
        server
            .manager
            .list()
            .first()
            .is_some_and(|s| s.is_detached())
    })
    .await;
    let mut back = SshTerminal::connect(
        server.ssh_addr,
        "ivy",
        Login::Password("ivy-password"),
        SIZE,
    )
    .await
    .expect("log in again");
    back.wait_for("Logged in as ivy.").await;
    back.send(b"pc").await;
    back.wait_for("frame 000003").await;
    assert_eq!(
        server.manager.list().len(),
        1,
        "the same game, not a new one"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_refuse_clearly() {
    let server = start_server(|c| {
        c.ssh.max_sessions = 1;
        c.ssh.idle_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let mut first = anonymous(&server).await;
    let mut second = SshTerminal::connect(server.ssh_addr, "guest", Login::None, SIZE)
        .await
        .expect("connects");
    second.wait_for("This server is full (1 connections)").await;
    second.wait_closed().await;
    // The first, idle in the menu, is closed after the idle timeout.
    first.wait_for("Idle too long in the menus").await;
    first.wait_closed().await;
    // Its slot is free again.
    let mut third = anonymous(&server).await;
    third.send(b"q").await;
    third.wait_closed().await;
    server.shutdown().await;
}

/// `ssh` as a person types it, in a real terminal.
fn ssh_command(server: &TestServer, user: &str) -> String {
    // The shell stays after ssh, to show how it exited (tmux blanks a dead
    // pane that ran ssh directly).
    format!(
        "ssh -p {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
         -o PubkeyAuthentication=no {user}@127.0.0.1; echo \"[ssh exited $?]\"; sleep 600",
        server.ssh_addr.port()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_openssh_client_registers_plays_and_watches() {
    let server = start_server(|_| {}).await;
    let register = ssh_command(&server, "guest");
    let login = ssh_command(&server, "kim");
    let watch = ssh_command(&server, "guest");
    tokio::task::spawn_blocking(move || {
        let tmux = common::tmux::Tmux::new();
        // Register from the anonymous menu, then leave.
        tmux.start("new", (80, 24), &[], &register);
        tmux.wait_for_text("new", "r) Register");
        tmux.send("new", &["r"]);
        tmux.wait_for_text("new", "Username:");
        tmux.send("new", &["kim", "Enter"]);
        tmux.wait_for_text("new", "Password:");
        tmux.send("new", &["kims-password", "Enter"]);
        tmux.wait_for_text("new", "Again:");
        tmux.send("new", &["kims-password", "Enter"]);
        tmux.wait_for_text("new", "Logged in as kim.");
        tmux.send("new", &["q"]);
        tmux.wait_for_text("new", "[ssh exited 0]");
        assert!(tmux.capture("new").iter().any(|l| l == "Goodbye."));

        // Log in with the password at ssh's own prompt and play the test game.
        tmux.start("play", (80, 24), &[], &login);
        tmux.wait_for_text("play", "assword:");
        tmux.send("play", &["kims-password", "Enter"]);
        tmux.wait_for_text("play", "Logged in as kim.");
        tmux.send("play", &["p"]);
        tmux.wait_for_text("play", "Play which game?");
        tmux.send("play", &["c"]);
        tmux.wait_for_text("play", "dgate test game");
        tmux.send("play", &["f", "f"]);
        tmux.wait_for_text("play", "frame 000002");

        // A second ssh watches it from the watch menu: the same screen at once.
        tmux.start("watch", (100, 30), &[], &watch);
        tmux.wait_for_text("watch", "w) Watch");
        tmux.send("watch", &["w"]);
        tmux.wait_for_text("watch", "kim");
        tmux.send("watch", &["a"]);
        let same = |rows: usize| {
            let mut player = tmux.capture("play");
            player.truncate(rows);
            let mut watcher = tmux.capture("watch");
            watcher.truncate(rows);
            watcher == player
        };
        tmux.wait_for("watch", "the player's screen", |_| same(24));
        tmux.wait_for_text("watch", "kim · TEST · 80x24 · 1 watching");

        // The player's terminal grows: the game follows, and so does the watcher.
        tmux.resize("play", (90, 26));
        tmux.send("play", &["s"]);
        tmux.wait_for_text("play", "SIZE 90x26");
        tmux.wait_for("watch", "the resized screen", |_| same(26));

        // The game ends: the player is back at the menu, the watcher is told.
        tmux.send("play", &["q"]);
        tmux.wait_for_text("play", "The game has ended.");
        tmux.wait_for_text("watch", "kim's TEST game has ended.");
        tmux.send("play", &["q"]);
        tmux.wait_for_text("play", "[ssh exited 0]");
        tmux.send("watch", &["q", "q"]);
        tmux.wait_for_text("watch", "[ssh exited 0]");
    })
    .await
    .expect("the OpenSSH test");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dgate_keys_adds_the_key_ssh_logs_in_with() {
    let server = start_server(|_| {}).await;
    let url = server.url();
    let home = tempfile::tempdir().expect("home");
    let key = test_key(9);
    let public = home.path().join("id_ed25519.pub");
    let line = key.public_key().to_openssh().expect("public key line");
    std::fs::write(&public, format!("{line} lee@desk\n")).expect("write");
    let private = home.path().join("id_ed25519");
    std::fs::write(&private, "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n").expect("write");
    let home_dir = home.path().to_owned();
    let dgate = move |args: &[&str], stdin: &str| dgate_as(&home_dir, &url, args, stdin);
    let (public_arg, private_arg) = (
        public.to_string_lossy().into_owned(),
        private.to_string_lossy().into_owned(),
    );
    let outputs = tokio::task::spawn_blocking(move || {
        let registered = dgate(
            &["register", "--username", "lee", "--password-stdin"],
            "lees-password\n",
        );
        let added = dgate(&["keys", "add", &public_arg], "");
        let wrong = dgate(&["keys", "add", &private_arg], "");
        let listed = dgate(&["keys", "list"], "");
        (registered, added, wrong, listed, dgate)
    })
    .await
    .expect("dgate runs");
    let (registered, added, wrong, listed, dgate) = outputs;
    assert!(registered.status.success(), "{registered:?}");
    assert!(added.status.success(), "{added:?}");
    let fingerprint = String::from_utf8_lossy(&added.stdout)
        .split_whitespace()
        .nth(1)
        .expect("fingerprint")
        .to_owned();
    assert!(fingerprint.starts_with("SHA256:"));
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("is a private key"));
    assert!(String::from_utf8_lossy(&listed.stdout).contains(&format!("{fingerprint} lee@desk")));

    let mut t = SshTerminal::connect(server.ssh_addr, "lee", Login::Key(&key), SIZE)
        .await
        .expect("the key logs in");
    t.wait_for("Logged in as lee.").await;

    let removed = tokio::task::spawn_blocking(move || dgate(&["keys", "remove", &fingerprint], ""))
        .await
        .expect("dgate runs");
    assert!(removed.status.success(), "{removed:?}");
    assert!(
        SshTerminal::connect(server.ssh_addr, "lee", Login::Key(&key), SIZE)
            .await
            .is_err()
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_games_replay_over_ssh() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("mona", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"ffa").await;
    player
        .wait_for_text("ALTERNATE SCREEN")
        .await
        .expect("frames");
    player.send(b"x").await;
    player.read_to_end().await.expect("game over");
    server.manager.finish_recordings().await;

    let mut t = anonymous(&server).await;
    t.send(b"w").await;
    t.wait_for("Watch which game?").await;
    t.send(b"r").await;
    t.wait_for("Recent Games").await;
    assert!(
        t.contents().contains("a) mona             test"),
        "{}",
        t.contents()
    );
    t.send(b"a").await;
    t.wait_for("mona · test").await;
    // End (as the terminal sends it): the last screen, and the end mark.
    t.send(b"\x1b[F").await;
    t.wait_for("ALTERNATE SCREEN").await;
    t.wait_for("■ end").await;
    // Pause, a time past the end, quit.
    t.send(b"g99").await;
    t.send(b"\r").await;
    t.wait_for("is past the end").await;
    t.send(b"q").await;
    t.wait_for("Replay which game?").await;
    t.send(b"q").await;
    t.wait_for("Watch which game?").await;
    server.shutdown().await;
}

/// An SSH watcher that stops reading (a paused ssh client) holds up nobody:
/// the player gets every frame of a burst at once, and the watcher, once it
/// reads again, is resynced and shows the player's screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_ssh_watcher_slows_nobody_and_converges() {
    let server = start_server(|c| {
        // A short queue: the stalled watcher falls behind it at once. (The
        // player may be resynced too on a busy machine; what counts is that
        // it gets the whole burst without waiting for the watcher.)
        c.session_management.queue_frames = 256;
        c.games
            .push(testgame("burst", &["--burst", "20000", "--pad", "8"]));
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("nina", "burst").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;

    let mut t = SshTerminal::connect_small_window(server.ssh_addr, "guest", SIZE)
        .await
        .expect("connect");
    t.wait_for("=>").await;
    t.send(b"wa").await;
    t.wait_for("nina · TEST").await;
    let (_, before) = http_get(server.http_addr, "/metrics");

    // The watcher reads nothing while the game bursts.
    player.send(b"b").await;
    player
        .wait_for_text("BURST-DONE 20000")
        .await
        .expect("the player gets the whole burst");
    let last = server.hub(&game.id).last_frame_id().get();
    player
        .wait_for_frame(last)
        .await
        .expect("the player is at the last frame");

    // Reading again: the same screen as the player's.
    let expected = player.rows();
    t.wait_until("the player's screen after the burst", |t| {
        t.rows(80, 24) == expected
    })
    .await;
    let (_, after) = http_get(server.http_addr, "/metrics");
    assert!(
        metric(&after, "spectator_resyncs_total") > metric(&before, "spectator_resyncs_total"),
        "the paused watcher was resynced, not fed every frame"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_are_limited_across_grpc_and_ssh() {
    let server = start_server(|c| c.server.max_connections_per_address = 3).await;
    // A stranger's address (127.0.0.1 is trusted, so not limited).
    let from = stranger(8);
    let connect =
        || SshTerminal::connect_from(from, server.ssh_addr, "guest", Login::None, (100, 30), SIZE);
    // One gRPC connection and two SSH connections fill the address's three slots.
    let mut client = dgate_proto::pb::game_service_client::GameServiceClient::new(
        channel_from(from, server.grpc_addr).await,
    );
    client
        .list_games(dgate_proto::pb::ListGamesRequest {})
        .await
        .expect("gRPC works");
    let mut first = connect().await.expect("connects");
    first.wait_for("=>").await;
    let mut second = connect().await.expect("connects");
    second.wait_for("=>").await;
    let mut third = connect().await.expect("connects");
    third
        .wait_for("Too many connections from your address (at most 3).")
        .await;
    third.wait_closed().await;
    // Another address is not affected.
    let mut elsewhere = SshTerminal::connect_from(
        stranger(9),
        server.ssh_addr,
        "guest",
        Login::None,
        (100, 30),
        SIZE,
    )
    .await
    .expect("connects");
    elsewhere.wait_for("=>").await;
    // A closed connection gives its slot back.
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        let mut t = connect().await.expect("connects");
        t.wait_until("a menu or a refusal", |t| {
            t.contents().contains("=>") || t.contents().contains("Too many")
        })
        .await;
        if t.contents().contains("=>") {
            again = Some(t);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the freed slot is usable again");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_that_disconnects_mid_game_is_unregistered() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("otto", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let mut t = anonymous(&server).await;
    t.send(b"wa").await;
    t.wait_for("otto · TEST · 80x24 · 1 watching").await;
    drop(t);
    // The game goes on producing frames for nobody on that connection.
    player.send(b"fff").await;
    eventually("the dropped watcher to be unregistered", || {
        server
            .manager
            .get(&game.id)
            .is_ok_and(|s| s.spectators.is_empty())
    })
    .await;
    let (_, metrics) = http_get(server.http_addr, "/metrics");
    assert_eq!(
        metric(&metrics, "spectator_connections_active{transport=\"ssh\"}"),
        0.0,
        "{metrics}"
    );
    server.shutdown().await;
}
