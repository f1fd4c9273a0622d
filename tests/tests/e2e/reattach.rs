//! A game outlives its player's connection for `detach_grace`; the owner can
//! reattach (a newer connection takes over an older one); after the grace the
//! game is hung up like a stopped one.

use crate::common;

use std::time::Duration;

use common::*;
use dgate_proto::pb;

fn grace(ms: u64) -> impl FnOnce(&mut dgate_server::Config) {
    move |c| c.session_management.detach_grace = Duration::from_millis(ms)
}

async fn listed(client: &mut Client, id: &str) -> Option<pb::GameSession> {
    client
        .get_game_session(pb::GetGameSessionRequest {
            session_id: id.into(),
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().session)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_without_its_player_is_hung_up_after_the_grace() {
    let server = start_server(grace(300)).await;
    let mut client = server.client().await;
    let game = server.start_game("ada", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let mut spectator = Viewer::spectator(&mut client, &game.id, "s")
        .await
        .expect("spectator");
    drop(player);
    eventually("the session is marked detached", || {
        server
            .manager
            .get(&game.id)
            .map(|s| s.is_detached())
            .unwrap_or(true)
    })
    .await;
    spectator
        .read_to_end()
        .await
        .expect("the spectator is told the game ended");
    assert!(
        matches!(spectator.seen.last(), Some(Seen::Exit(_))),
        "{:?}",
        spectator.seen.last()
    );
    eventually("the session left the list", || {
        server.manager.active_count() == 0
    })
    .await;

    // A game nobody ever attached to goes the same way.
    let game = server.start_game("ada", "test").await;
    assert!(
        listed(&mut client, &game.id)
            .await
            .expect("listed")
            .detached
    );
    eventually("the unattended game was hung up", || {
        server.manager.active_count() == 0
    })
    .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_owner_reattaches_to_the_same_screen() {
    let server = start_server(grace(500)).await;
    let mut client = server.client().await;
    let game = server.start_game("bea", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"ff").await;
    player.wait_for_text("frame 000002").await.expect("frames");
    let screen = player.screen.screen().contents_formatted();
    drop(player);
    eventually("detached", || {
        server
            .manager
            .get(&game.id)
            .map(|s| s.is_detached())
            .unwrap_or(false)
    })
    .await;
    assert!(
        listed(&mut client, &game.id)
            .await
            .expect("still listed")
            .detached
    );

    let mut again = Viewer::player(&mut client, &game).await.expect("reattach");
    again.step().await.expect("snapshot");
    assert_eq!(
        again.screen.screen().contents_formatted(),
        screen,
        "the screen is right at once"
    );
    assert!(
        !listed(&mut client, &game.id)
            .await
            .expect("listed")
            .detached
    );
    // Well past the grace, the game still runs: the owner came back in time.
    tokio::time::sleep(Duration::from_millis(900)).await;
    again.send(b"f").await;
    again
        .wait_for_text("frame 000003")
        .await
        .expect("the game is alive");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_connection_takes_over_and_the_older_is_told() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("cy", "test").await;
    let mut first = Viewer::player(&mut client, &game).await.expect("first");
    first.ready().await;
    let mut second = Viewer::player(&mut client, &game).await.expect("second");
    first.read_to_end().await.expect("the first stream ends");
    assert_eq!(
        first.seen.last(),
        Some(&Seen::Disconnected(
            "another connection of yours took over this game".into()
        ))
    );
    second.step().await.expect("snapshot");
    second.send(b"f").await;
    second
        .wait_for_text("frame 000001")
        .await
        .expect("the newer connection plays");
    server.shutdown().await;
}
