//! `GET /metrics`: every metric moves with real events.

use crate::common;

use common::*;
use dgate_proto::auth as auth_pb;
use dgate_proto::auth::auth_service_client::AuthServiceClient;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_games_spectators_frames_and_failed_logins() {
    let server = start_server(|_| {}).await;
    let scrape = || {
        let (status, body) = http_get(server.http_addr, "/metrics");
        assert_eq!(status, 200);
        body
    };
    let before = scrape();
    assert!(before.trim_end().ends_with("# EOF"), "OpenMetrics text");
    assert_eq!(metric(&before, "game_sessions_active{game=\"test\"}"), 0.0);

    let mut client = server.client().await;
    let game = server.start_game("mo", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let mut spectators = Vec::new();
    for name in ["a", "b"] {
        spectators.push(
            Viewer::spectator(&mut client, &game.id, name)
                .await
                .expect("spectator"),
        );
    }
    player.send(b"fff").await;
    player.wait_for_text("frame 000003").await.expect("frames");
    let hub = server.hub(&game.id);
    player.catch_up(&hub).await.expect("player");
    let mut frames_to_spectators = 0;
    for s in &mut spectators {
        s.catch_up(&hub).await.expect("spectator");
        frames_to_spectators += s.frames.len();
    }

    let during = scrape();
    assert_eq!(metric(&during, "game_sessions_active{game=\"test\"}"), 1.0);
    assert_eq!(
        metric(&during, "game_sessions_started_total{game=\"test\"}"),
        1.0
    );
    assert_eq!(
        metric(&during, "spectator_sessions_total{game=\"test\"}"),
        2.0
    );
    assert_eq!(
        metric(&during, "spectator_connections_active{transport=\"grpc\"}"),
        2.0
    );
    assert_eq!(
        metric(&during, "spectator_frames_sent_total"),
        frames_to_spectators as f64
    );
    assert_eq!(metric(&during, "spectator_resyncs_total"), 0.0);
    let published = metric(&during, "spectator_frame_processing_duration_seconds_count");
    assert_eq!(
        published,
        hub.last_frame_id().get() as f64,
        "one observation per frame"
    );
    assert!(metric(&during, "bytes_sent_total{transport=\"grpc\"}") > 0.0);
    assert!(metric(&during, "spectator_registry_update_duration_seconds_count") >= 2.0);

    let mut auth = AuthServiceClient::connect(server.url())
        .await
        .expect("connect");
    let wrong = auth_pb::LoginRequest {
        username: "mo".into(),
        password: b"not the password".to_vec().into(),
    };
    assert!(auth.login(wrong).await.is_err());

    // Spectators leave, the game ends.
    for s in &spectators {
        s.send(b"q").await;
    }
    for mut s in spectators {
        s.read_to_end().await.expect("spectator leaves");
    }
    player.send(b"q").await;
    player.read_to_end().await.expect("game over");
    eventually("the game is no longer active", || {
        server.manager.active_count() == 0
    })
    .await;

    let after = scrape();
    assert_eq!(metric(&after, "failed_logins_total"), 1.0);
    assert_eq!(
        metric(&after, "spectator_connections_active{transport=\"grpc\"}"),
        0.0
    );
    assert_eq!(metric(&after, "game_sessions_active{game=\"test\"}"), 0.0);
    assert_eq!(
        metric(&after, "game_sessions_ended_total{game=\"test\"}"),
        1.0
    );
    assert!(!after.contains("mo\""), "no per-user labels");
    server.shutdown().await;
}
