//! The `dgate` terminal client end to end, in real terminals (tmux) against a
//! real server running the test game: a spectator's screen equals the
//! player's, through joining mid-game, resizing and suspending the watcher;
//! spectator keys never reach the game; the client's errors are one line.

use crate::common;

use common::tmux::Tmux;
use common::*;

/// The `cols`x`rows` game inside a watcher's screen, found by the game's
/// title (its first line), as rows with trailing blanks removed.
fn game_in(screen: &[String], cols: usize, rows: usize) -> Option<Vec<String>> {
    let top = screen.iter().position(|l| l.contains("dgate test game"))?;
    let left = screen[top].find("dgate test game")?;
    let left = screen[top][..left].chars().count();
    Some(
        (top..top + rows)
            .map(|y| {
                let line = screen.get(y).map(String::as_str).unwrap_or("");
                line.chars()
                    .skip(left)
                    .take(cols)
                    .collect::<String>()
                    .trim_end()
                    .to_owned()
            })
            .collect(),
    )
}

/// Waits until the watcher shows exactly the player's screen of `size`.
fn wait_until_same(tmux: &Tmux, size: (usize, usize)) {
    let mut player = Vec::new();
    tmux.wait_for("watch", "the player's screen", |watcher| {
        player = tmux.capture("play");
        player.truncate(size.1);
        game_in(watcher, size.0, size.1).is_some_and(|game| game == player)
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_in_a_real_terminal_sees_the_players_screen() {
    // In the player's own directory: the game may run as another user.
    let server = start_server(|config| {
        config
            .games
            .push(testgame("logged", &["--keylog", "%d/games/%u/keys"]));
    })
    .await;
    let keylog = server.data_dir.path().join("games/alice/keys");
    let url = server.url();
    let homes = tempfile::tempdir().expect("homes");
    let (player_home, watcher_home) = (homes.path().join("alice"), homes.path().join("bob"));

    tokio::task::spawn_blocking(move || {
        let registered = dgate_as(
            &player_home,
            &url,
            &["register", "--username", "alice", "--password-stdin"],
            "correct horse\n",
        );
        assert!(registered.status.success(), "{registered:?}");
        let dgate_bin = workspace_binary("dgate");
        let dgate_bin = dgate_bin.to_string_lossy();
        let tmux = Tmux::new();

        // The player, in an 80x24 terminal.
        let player_env = dgate_env(&player_home, &url);
        tmux.start_with(
            "play",
            (80, 24),
            &player_env,
            &format!("{dgate_bin} play logged"),
        );
        tmux.wait_for_text("play", "dgate test game");
        tmux.send("play", &["f", "f"]);
        tmux.wait_for_text("play", "frame 000002");

        // A watcher joins mid-game, anonymous, in a larger terminal run by a
        // shell (so that Ctrl+Z suspends it like any job).
        let watcher_env = dgate_env(&watcher_home, &url);
        tmux.start_with(
            "watch",
            (100, 30),
            &watcher_env,
            "bash --norc --noprofile -i",
        );
        tmux.send("watch", &[&format!("{dgate_bin} watch"), "Enter"]);
        let menu = tmux.wait_for_text("watch", "alice");
        assert!(menu.iter().any(|l| l.contains("Watch Games")));
        assert!(
            menu.iter()
                .any(|l| l.starts_with("a)") && l.contains("alice") && l.contains("80x24"))
        );
        tmux.send("watch", &["a"]);
        wait_until_same(&tmux, (80, 24));
        // The status line names the player and counts this watcher.
        tmux.wait_for_text("watch", "alice · TEST · 80x24 · 1 watching");

        // Live: the player's next frames reach the watcher.
        tmux.send("play", &["f", "f", "f"]);
        tmux.wait_for_text("play", "frame 000005");
        wait_until_same(&tmux, (80, 24));

        // The watcher types: nothing reaches the game.
        tmux.send("watch", &["z", "y", "k", "Enter", "1"]);
        // The player resizes their terminal: the game follows, so does the watcher.
        tmux.resize("play", (90, 26));
        tmux.send("play", &["s"]);
        tmux.wait_for_text("play", "SIZE 90x26");
        wait_until_same(&tmux, (90, 26));

        // Ctrl+Z suspends the watcher; the game goes on; `fg` catches up.
        tmux.send("watch", &["C-z"]);
        tmux.wait_for_text("watch", "Stopped");
        tmux.send("play", &["f", "f", "b"]);
        tmux.wait_for_text("play", "BURST-DONE");
        tmux.send("watch", &["fg", "Enter"]);
        wait_until_same(&tmux, (90, 26));

        // `q` goes back to the menu, `q` again quits.
        tmux.send("watch", &["q"]);
        tmux.wait_for_text("watch", "Watch which game?");
        tmux.send("watch", &["q"]);
        tmux.wait_for("watch", "the shell's prompt after dgate exits", |screen| {
            !screen.iter().any(|l| l.contains("Watch Games"))
        });

        let keys = std::fs::read(&keylog).expect("the game's key log");
        assert_eq!(
            String::from_utf8_lossy(&keys),
            "fffffsffb",
            "only the player's keys reach the game"
        );

        // The game ends: the player is told, and the terminal is theirs again.
        tmux.send("play", &["q"]);
        let end = tmux.wait_for_text("play", "ended");
        assert!(
            end.iter().any(|l| l.contains("Test game logged ended.")),
            "{}",
            end.join("\n")
        );
    })
    .await
    .expect("the terminal test");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_one_clear_line() {
    let server = start_server(|_| {}).await;
    let url = server.url();
    let http = server.http_addr;
    tokio::task::spawn_blocking(move || {
        let home = tempfile::tempdir().expect("home");
        let home = home.path();

        let play = dgate_as(home, &url, &["play", "test"], "");
        assert_eq!(play.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&play.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("not logged in") && stderr.contains("dgate login"),
            "{stderr}"
        );

        let watch = dgate_as(home, &url, &["watch", "no-such-session"], "");
        assert_eq!(watch.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&watch.stderr);
        assert!(
            stderr.contains("no game in progress with session id \"no-such-session\""),
            "{stderr}"
        );

        let registered = dgate_as(
            home,
            &url,
            &["register", "--username", "carol", "--password-stdin"],
            "hunter2hunter2\n",
        );
        assert!(registered.status.success());
        let unknown = dgate_as(home, &url, &["play", "tetris"], "");
        let stderr = String::from_utf8_lossy(&unknown.stderr);
        assert_eq!(unknown.status.code(), Some(1));
        assert!(
            stderr.contains("no game \"tetris\"") && stderr.contains("test"),
            "{stderr}"
        );

        let unreachable = dgate_as(home, "http://127.0.0.1:9", &["watch"], "");
        assert_eq!(unreachable.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach the dgate server")
        );

        // The web port by mistake: said so, with the gRPC port's config key.
        let web = format!("http://{http}");
        let wrong_port = dgate_as(home, &web, &["list"], "");
        let stderr = String::from_utf8_lossy(&wrong_port.stderr);
        assert_eq!(wrong_port.status.code(), Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("web port") && stderr.contains("grpc_listen"),
            "{stderr}"
        );
        // No scheme: http:// is assumed.
        let bare = dgate_as(home, url.trim_start_matches("http://"), &["games"], "");
        assert!(
            bare.status.success(),
            "{}",
            String::from_utf8_lossy(&bare.stderr)
        );
        // A password too short is refused before anything is sent.
        let short = dgate_as(
            home,
            &url,
            &["register", "--username", "dave", "--password-stdin"],
            "short\n",
        );
        let stderr = String::from_utf8_lossy(&short.stderr);
        assert_eq!(short.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("8 to 1024 bytes"), "{stderr}");

        let completions = dgate_as(home, &url, &["completions", "bash"], "");
        assert!(completions.status.success());
        assert!(String::from_utf8_lossy(&completions.stdout).contains("complete -F"));
    })
    .await
    .expect("the error test");
}

/// A new user in a 100-column terminal: the password prompt says a password
/// is too short before asking again; `dgate list` fits the terminal (the
/// session id cut to a prefix `dgate watch` accepts); the watched game's
/// colours reach the terminal as the basic codes the game sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_user_in_a_100_column_terminal() {
    let server = start_server(|_| {}).await;
    let game = server.start_game("a_very_long_username", "test").await;
    let mut client = server.client().await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"f").await;
    player.wait_for_text("Dlvl:1").await.expect("a status line");
    let url = server.url();
    let id = game.id.clone();
    tokio::task::spawn_blocking(move || {
        let home = tempfile::tempdir().expect("home");
        let env = dgate_env(home.path(), &url);
        let dgate_bin = workspace_binary("dgate");
        let dgate_bin = dgate_bin.to_string_lossy();
        let tmux = Tmux::new();

        tmux.start_with(
            "register",
            (100, 30),
            &env,
            &format!("{dgate_bin} register --username newbie"),
        );
        tmux.wait_for_text("register", "Password:");
        tmux.send("register", &["short", "Enter"]);
        let screen = tmux.wait_for_text("register", "8 to 1024 bytes");
        assert!(
            !screen.iter().any(|l| l.contains("Again")),
            "{}",
            screen.join("\n")
        );

        tmux.start_with("shell", (100, 30), &env, "bash --norc --noprofile -i");
        tmux.send("shell", &[&format!("{dgate_bin} list"), "Enter"]);
        let screen = tmux.wait_for_text("shell", "in progress)");
        let table: Vec<&String> = screen
            .iter()
            .skip_while(|l| !l.starts_with("SESSION"))
            .take_while(|l| !l.contains("in progress)"))
            .collect();
        assert!(table.len() >= 2, "{}", screen.join("\n"));
        for line in &table {
            assert!(
                line.chars().count() <= 100,
                "{line:?} is wider than the terminal"
            );
        }
        let row = table
            .iter()
            .find(|l| l.contains("a_very_long_username"))
            .expect("the game's row, the name whole");
        let shown = row.split_whitespace().next().expect("an id");
        assert!(
            id.starts_with(shown) && shown.len() < id.len(),
            "{shown:?} is a prefix of {id:?}"
        );

        tmux.send("shell", &[&format!("{dgate_bin} watch {shown}"), "Enter"]);
        tmux.wait_for_text("shell", "Dlvl:1");
        let escaped = tmux.capture_escaped("shell");
        assert!(
            escaped.contains("\x1b[44m") && !escaped.contains("48;5;4"),
            "the status line's blue comes as ESC[44m: {escaped:?}"
        );
        tmux.send("shell", &["q"]);
    })
    .await
    .expect("the terminal test");
    drop(player);
}
