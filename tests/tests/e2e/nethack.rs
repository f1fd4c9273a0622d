//! Real NetHack (Debian `nethack-console`) in a real PTY, watched live. Runs
//! whenever `/usr/games/nethack` exists; `.ci/run` installs it so CI always does.

use crate::common;

use std::path::Path;

use common::*;

const NETHACK: &str = "/usr/games/nethack";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spectators_of_real_nethack_see_the_players_screen() {
    if !Path::new(NETHACK).exists() {
        eprintln!("skipping: {NETHACK} is not installed (apt-get install nethack-console)");
        return;
    }
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    // A fresh name, so no save file from an earlier run is restored.
    let name = format!("dg{}", std::process::id());
    let session = server.start_game(&name, "nethack").await;
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player
        .wait_for_text("Shall I pick")
        .await
        .expect("NetHack asks about the character");

    let hub = server.hub(&session.id);
    let mut early = join_and_compare(
        &mut client,
        &mut player,
        &session.id,
        "spectator at the first prompt",
    )
    .await;

    // The spectator's keys are dropped: had its `y` reached NetHack, the
    // player's `y` would have answered the next question and started the game.
    early.send(b"y").await;
    player.send(b"y").await;
    player
        .wait_for_text("Is this ok?")
        .await
        .expect("NetHack picked a character");
    player.send(b"y").await;
    player
        .wait_for_text("welcome to NetHack")
        .await
        .expect("the game starts");
    let mut late = join_and_compare(
        &mut client,
        &mut player,
        &session.id,
        "late joiner in the dungeon",
    )
    .await;
    assert!(
        late.screen.screen().contents().contains(&name),
        "the welcome names the player"
    );

    // Dismiss the welcome and walk around a little; everyone stays in step.
    player.send(b"\x1b").await;
    for keys in [&b"s"[..], b"i", b"\x1b", b"h", b"l", b":"] {
        player.send(keys).await;
    }
    player.send(b"\x1b").await;
    // Wait for the game to go quiet, then compare all three screens.
    let mut last = 0;
    while hub.last_frame_id().get() != last {
        last = hub.last_frame_id().get();
        player.wait_for_frame(last).await.expect("player");
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    early.wait_for_frame(last).await.expect("early spectator");
    late.wait_for_frame(last).await.expect("late spectator");
    assert_same_screen(
        player.screen.screen(),
        early.screen.screen(),
        "early spectator after play",
    );
    assert_same_screen(
        player.screen.screen(),
        late.screen.screen(),
        "late spectator after play",
    );
    assert_eq!(early.resyncs() + late.resyncs() + player.resyncs(), 0);

    // Stopping hangs NetHack up: it saves and exits, and every stream is told.
    stop_game(&mut client, &session).await;
    for viewer in [&mut player, &mut early, &mut late] {
        viewer.read_to_end().await.expect("stream ends");
        assert!(
            matches!(viewer.seen.last(), Some(Seen::Exit(_))),
            "{:?}",
            viewer.seen.last()
        );
    }
    remove_save_files(&name);
    server.shutdown().await;
}

/// The uid games run as under the test server: `games` when the tests run
/// as root, else the tests' own.
fn game_uid() -> u32 {
    let own = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc"));
    if own != 0 {
        return own;
    }
    nix::unistd::User::from_name("games")
        .expect("user lookup")
        .expect("a games user")
        .uid
        .as_raw()
}

/// The real uid of process `pid`.
fn process_uid(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("a Uid line")
}

/// NetHack keeps saves in its own playground; remove this test's.
pub(crate) fn remove_save_files(name: &str) {
    let Ok(entries) = std::fs::read_dir("/var/games/nethack/save") else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().contains(name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// NetHack with DECgraphics draws its walls in the VT100 line-drawing set; a
/// late joiner's snapshot must show the same lines, not `lqqk`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decgraphics_walls_look_the_same_to_a_late_joiner() {
    if !Path::new(NETHACK).exists() {
        eprintln!("skipping: {NETHACK} is not installed (apt-get install nethack-console)");
        return;
    }
    let server = start_server(|c| {
        let mut dec = c
            .game("nethack")
            .expect("the default config has NetHack")
            .clone();
        dec.id = "nethack-dec".into();
        dec.environment.insert(
            "NETHACKOPTIONS".into(),
            "color,!autopickup,!legacy,suppress_alert:3.4.3,symset:DECgraphics".into(),
        );
        c.games.push(dec);
    })
    .await;
    let mut client = server.client().await;
    let name = format!("dd{}", std::process::id());
    let session = server.start_game(&name, "nethack-dec").await;
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player
        .wait_for_text("Shall I pick")
        .await
        .expect("first question");
    player.send(b"y").await;
    player
        .wait_for_text("Is this ok?")
        .await
        .expect("character picked");
    player.send(b"y").await;
    player
        .wait_for_text("welcome to NetHack")
        .await
        .expect("the game starts");
    let drawn = player.screen.screen().contents();
    assert!(
        drawn.contains('─') || drawn.contains('│'),
        "DECgraphics walls are drawn as lines:\n{drawn}"
    );

    join_and_compare(
        &mut client,
        &mut player,
        &session.id,
        "late joiner, DECgraphics",
    )
    .await;

    stop_game(&mut client, &session).await;
    player.read_to_end().await.expect("stream ends");
    remove_save_files(&name);
    server.shutdown().await;
}

/// A server shutdown hangs NetHack up, which saves the game; the next `play`
/// of that player restores it, as a public server's players expect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_saves_nethack_and_the_next_game_restores_it() {
    saves_at_shutdown_and_restores("sv", |_| {}).await;
}

/// The same, with NetHack in a bubblewrap sandbox (`sandbox: bubblewrap`):
/// its playground bound writable (`writable`), the rest of the system read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sandboxed_nethack_saves_at_shutdown_and_restores() {
    saves_at_shutdown_and_restores("sb", |c| {
        let nethack = c
            .games
            .iter_mut()
            .find(|g| g.id == "nethack")
            .expect("the embedded NetHack");
        nethack.sandbox = dgate_server::config::Sandbox::Bubblewrap;
        nethack.writable = vec!["/var/games/nethack".into()];
    })
    .await;
}

async fn saves_at_shutdown_and_restores(prefix: &str, tweak: fn(&mut dgate_server::Config)) {
    if !Path::new(NETHACK).exists() {
        eprintln!("skipping: {NETHACK} is not installed (apt-get install nethack-console)");
        return;
    }
    let name = format!("{prefix}{}", std::process::id());
    // NetHack names a save file by the player's uid and name; a server run
    // as root runs it as `games` (the default `run_as`).
    let uid = game_uid();
    let save = Path::new("/var/games/nethack/save").join(format!("{uid}{name}.gz"));
    let _ = std::fs::remove_file(&save);

    let server = start_server(tweak).await;
    let mut client = server.client().await;
    let session = server.start_game(&name, "nethack").await;
    let pid = server
        .manager
        .get(&session.id)
        .expect("session")
        .pid()
        .expect("pid");
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player
        .wait_for_text("Shall I pick")
        .await
        .expect("first prompt");
    // (Checked once NetHack runs: before, the pid is still the launchers'.)
    assert_eq!(
        process_uid(pid),
        uid,
        "NetHack runs as the games' account, never root"
    );
    player.send(b"y").await;
    player
        .wait_for_text("Is this ok?")
        .await
        .expect("character");
    player.send(b"y").await;
    player
        .wait_for_text("welcome to NetHack")
        .await
        .expect("the game starts");
    player.send(b"\x1b").await;
    player.send(b"s").await;

    // SIGTERM's path: every game is hung up and waited for (the manager's
    // part first, to read the recording before the data directory goes).
    server.manager.shutdown().await;
    player.read_to_end().await.expect("the stream ends");
    assert!(
        player.seen.contains(&Seen::ServerShutdown),
        "the player was told the server is shutting down"
    );
    assert!(
        save.exists(),
        "NetHack saved the game to {}",
        save.display()
    );
    let recording = server
        .manager
        .library()
        .list(&name, "nethack", 0)
        .await
        .into_iter()
        .next()
        .expect("the game's recording");
    assert_eq!(recording.summary().ending(), "saved at shutdown");
    server.shutdown().await;

    // A new server (a restart): the same player's next game is the saved one.
    let server = start_server(tweak).await;
    let mut client = server.client().await;
    let session = server.start_game(&name, "nethack").await;
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player
        .wait_for_text("Restoring save file")
        .await
        .expect("NetHack finds the saved game");
    player.send(b"\r").await;
    player
        .wait_for_text("welcome back to NetHack")
        .await
        .expect("NetHack restores the saved game");
    server.shutdown().await;
    let _ = std::fs::remove_file(&save);
}
