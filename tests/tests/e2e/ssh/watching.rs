//! Watching over SSH as a spectator expects it: a help that offers only what
//! works here, the status line through the player's resizes, and a game
//! taller than the terminal cropped without losing its bottom rows.

use super::anonymous;
use crate::common::ssh::{Login, SshTerminal};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_menus_help_lists_only_what_works_over_ssh() {
    let server = start_server(|_| {}).await;
    let mut t = anonymous(&server).await;
    t.send(b"w").await;
    t.wait_for("Watch which game?").await;
    t.send(b"?").await;
    t.wait_for("Press any key.").await;
    let help = t.contents();
    for offered in [
        "watch that game",
        "sort by the next",
        "filter by player or game name",
        "recent games: replay a finished one",
        "While watching: q or Ctrl+C returns here.",
    ] {
        assert!(help.contains(offered), "{offered:?} in:\n{help}");
    }
    // The dgate client's multi-view, status toggle and suspend are not here.
    for missing in [
        "Space",
        "multi-view",
        "side by side",
        "s toggles",
        "Ctrl+Z",
        "Tab",
    ] {
        assert!(!help.contains(missing), "{missing:?} in:\n{help}");
    }
    // Any key closes the help; Space and m say where several games are shown.
    t.send(b"x").await;
    t.wait_until("the help closed", |t| {
        !t.contents().contains("Press any key.")
    })
    .await;
    for key in [b" ", b"m"] {
        t.send(key).await;
        t.wait_for("One game at a time here; the dgate client (dgate watch) shows several.")
            .await;
        t.send(b"<").await;
        t.wait_until("the message cleared", |t| {
            !t.contents().contains("One game at a time")
        })
        .await;
    }
    server.shutdown().await;
}

/// The watcher's first `rows` rows are the player's, and the row below them
/// is the status line naming the game at that size.
fn game_and_status(t: &SshTerminal, player: &[String], cols: u16, rows: u16) -> bool {
    let shown = t.rows(cols, rows + 1);
    let status = format!("pia · TEST · {cols}x{rows} · 1 watching");
    shown[..usize::from(rows)] == *player && shown[usize::from(rows)].contains(&status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watchers_status_line_survives_the_players_resizes() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("pia", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"ff").await;
    player.wait_for_text("frame 000002").await.expect("frames");

    // A watcher whose terminal (100x30) is larger than every size below.
    let mut t = anonymous(&server).await;
    t.send(b"wa").await;
    let expected = player.rows();
    t.wait_until("the game at 80x24 and the status line", |t| {
        game_and_status(t, &expected, 80, 24)
    })
    .await;

    // The player shrinks the game, then grows it; the game draws after each.
    for (cols, rows) in [(70, 20), (60, 16), (90, 26)] {
        player.send_resize(cols.into(), rows.into()).await;
        player.send(b"sff").await;
        player
            .wait_for_text(&format!("SIZE {cols}x{rows}"))
            .await
            .expect("the game's new size");
        player
            .catch_up(&server.hub(&game.id))
            .await
            .expect("the player's screen");
        let expected = player.rows();
        t.wait_until(
            &format!("the game at {cols}x{rows} and the status line"),
            |t| game_and_status(t, &expected, cols, rows),
        )
        .await;
        // Below the status line, nothing.
        let below = t.rows(100, 30);
        assert!(
            below[usize::from(rows) + 1..].iter().all(String::is_empty),
            "rows below the status line at {cols}x{rows}:\n{}",
            below.join("\n")
        );
    }
    // The game switches to the alternate screen (and clears it): the status
    // line is written on that screen too.
    player.send(b"a").await;
    player
        .wait_for_text("ALTERNATE SCREEN")
        .await
        .expect("the alternate screen");
    let expected = player.rows();
    t.wait_until("the alternate screen and the status line", |t| {
        game_and_status(t, &expected, 90, 26)
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_a_few_rows_taller_than_the_terminal_keeps_its_bottom_rows() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("quin", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send_resize(100, 30).await;
    player.send(b"sfff").await;
    player
        .wait_for_text("SIZE 100x30")
        .await
        .expect("the game at 100x30");
    player
        .catch_up(&server.hub(&game.id))
        .await
        .expect("the player's screen");

    // An 80x24 watcher: 23 rows for the game, the status line below them.
    let mut t = SshTerminal::connect(server.ssh_addr, "guest", Login::None, (80, 24))
        .await
        .expect("anonymous login");
    t.wait_for("=>").await;
    t.send(b"wa").await;
    // As NetHack draws on a 100x30 terminal: its status line on row 24, the
    // rows below blank. The first row and the status line are both in view.
    let player_rows = player.rows();
    let (title, dlvl) = (player_rows[0].clone(), player_rows[23].clone());
    assert!(dlvl.starts_with("Dlvl:1"), "{player_rows:#?}");
    t.wait_until("the title and the Dlvl line", |t| {
        let rows = t.rows(80, 24);
        rows[0] == title && rows[22] == dlvl && rows[23].contains("cropped to 80x23")
    })
    .await;

    // A line on the game's last row: the first row and the last two stay.
    player.send(b"fz").await;
    player
        .wait_for_text("BOTTOM 100x30")
        .await
        .expect("the bottom line");
    player
        .catch_up(&server.hub(&game.id))
        .await
        .expect("the player's screen");
    let player_rows = player.rows();
    t.wait_until("the title and the game's last two rows", |t| {
        let rows = t.rows(80, 24);
        rows[0] == player_rows[0] && rows[21] == player_rows[28] && rows[22] == player_rows[29]
    })
    .await;
    assert_eq!(player_rows[29], "BOTTOM 100x30");
    // The frame the cursor is on is in view too.
    player.send(b"f").await;
    player.wait_for_text("frame 000005").await.expect("frame 5");
    let frame_row = player
        .rows()
        .iter()
        .find(|r| r.starts_with("frame 000005"))
        .cloned()
        .expect("frame 5 drawn");
    t.wait_until("the latest frame", |t| t.rows(80, 24).contains(&frame_row))
        .await;
    server.shutdown().await;
}
