//! Game exit and stop, end to end. Alone in its own test binary, because it
//! counts this process's open file descriptors.

use crate::common;

use common::*;
use dgate_proto::pb;

/// Game exit reaches every stream with its status, then the streams end; the
/// child is reaped, the PTY closed and the session leaves the list. Stopping a
/// game hangs it up the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn game_exit_reaches_every_stream_and_leaves_nothing_behind() {
    let server = start_server(|c| {
        c.session_management.stop_grace = std::time::Duration::from_millis(300);
        c.games.push(testgame("exit3", &["--exit-code", "3"]));
        c.games.push(testgame("stubborn", &["--ignore-hup"]));
    })
    .await;
    let mut client = server.client().await;
    // Warm up the connection (and the runtime's own descriptors) first.
    client.health(pb::HealthRequest {}).await.expect("health");
    let fds_before = open_fds();

    let session = server.start_game("henry", "exit3").await;
    let pid = server
        .manager
        .get(&session.id)
        .expect("session")
        .pid()
        .expect("pid");
    assert!(process_exists(pid));
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player.ready().await;
    let mut spectators = Vec::new();
    for name in ["s1", "s2", "s3"] {
        spectators.push(
            Viewer::spectator(&mut client, &session.id, name)
                .await
                .expect("spectator"),
        );
    }
    assert!(
        open_fds() > fds_before,
        "the PTY is open while the game runs"
    );

    player.send(b"x").await;
    player.read_to_end().await.expect("player stream ends");
    assert_eq!(player.seen.last(), Some(&Seen::Exit(3)));
    for mut s in spectators {
        s.read_to_end().await.expect("spectator stream ends");
        assert_eq!(
            s.seen.last(),
            Some(&Seen::Exit(3)),
            "every stream is told how the game ended"
        );
    }

    let code = status_code(
        client
            .get_game_session(pb::GetGameSessionRequest {
                session_id: session.id.clone(),
            })
            .await,
    );
    assert_eq!(code, tonic::Code::NotFound, "the session left the list");
    let listed = client
        .list_game_sessions(pb::ListGameSessionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(listed.sessions.is_empty());
    assert!(!process_exists(pid), "the child was reaped");
    eventually("the PTY and its threads' descriptors are closed", || {
        open_fds() <= fds_before
    })
    .await;

    // StopGameSession: SIGHUP reaches the game, which ends like any other exit.
    let session = server.start_game("henry", "test").await;
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player.ready().await;
    stop_game(&mut client, &session).await;
    player.read_to_end().await.expect("stream ends");
    assert!(
        matches!(player.seen.last(), Some(Seen::Exit(_))),
        "{:?}",
        player.seen.last()
    );
    eventually("no descriptor is left behind", || open_fds() <= fds_before).await;

    // A game that ignores SIGHUP is killed once the stop grace period is over.
    let session = server.start_game("henry", "stubborn").await;
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player.ready().await;
    stop_game(&mut client, &session).await;
    player.read_to_end().await.expect("stream ends");
    assert_eq!(
        player.seen.last(),
        Some(&Seen::Exit(-1)),
        "ended by a signal, not an exit code"
    );
    eventually("no descriptor is left behind", || open_fds() <= fds_before).await;

    // A stream that joins a finished game's hub gets the end, never a hang: the
    // session is gone from the list, so it is NOT_FOUND.
    let code = status_code(
        Viewer::spectator(&mut client, &session.id, "late")
            .await
            .map(|_| ()),
    );
    assert_eq!(code, tonic::Code::NotFound);
    server.shutdown().await;
}
