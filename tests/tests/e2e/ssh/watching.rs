//! Watching over SSH as a spectator expects it: a help that offers only what
//! works here.

use super::anonymous;
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
