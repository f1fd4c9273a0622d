//! Game exit and stop, end to end. Other tests run in this process at the
//! same time, so what is checked is this game's own PTY: its master side,
//! found by the pts number the game's stdin is on, is open while the game
//! runs and closed once it ended.

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
    client.health(pb::HealthRequest {}).await.expect("health");

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
    let pts = pts_of(pid).expect("the game's stdin is a pts");
    assert!(master_open(pts), "the PTY is open while the game runs");

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
    eventually("the PTY is closed", || !master_open(pts)).await;

    // StopGameSession: SIGHUP reaches the game, which ends like any other exit.
    let session = server.start_game("henry", "test").await;
    let pts = game_pts(&server, &session.id);
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player.ready().await;
    stop_game(&mut client, &session).await;
    player.read_to_end().await.expect("stream ends");
    assert!(
        matches!(player.seen.last(), Some(Seen::Exit(_))),
        "{:?}",
        player.seen.last()
    );
    eventually("the PTY is closed", || !master_open(pts)).await;

    // A game that ignores SIGHUP is killed once the stop grace period is over.
    let session = server.start_game("henry", "stubborn").await;
    let pts = game_pts(&server, &session.id);
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player.ready().await;
    stop_game(&mut client, &session).await;
    player.read_to_end().await.expect("stream ends");
    assert_eq!(
        player.seen.last(),
        Some(&Seen::Exit(-1)),
        "ended by a signal, not an exit code"
    );
    eventually("the PTY is closed", || !master_open(pts)).await;

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

/// The pts number of a running game's terminal.
fn game_pts(server: &TestServer, session_id: &str) -> u32 {
    let pid = server
        .manager
        .get(session_id)
        .expect("session")
        .pid()
        .expect("pid");
    pts_of(pid).expect("the game's stdin is a pts")
}

/// The pts number process `pid`'s stdin is on.
fn pts_of(pid: u32) -> Option<u32> {
    let link = std::fs::read_link(format!("/proc/{pid}/fd/0")).ok()?;
    link.to_str()?.strip_prefix("/dev/pts/")?.parse().ok()
}

/// Whether this process holds the master side of pts `index` open.
fn master_open(index: u32) -> bool {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    fds.flatten().any(|fd| {
        let is_master = std::fs::read_link(fd.path())
            .is_ok_and(|l| l.to_str().is_some_and(|l| l.ends_with("ptmx")));
        is_master
            && std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                fd.file_name().to_string_lossy()
            ))
            .is_ok_and(|info| {
                info.lines().any(|l| {
                    l.strip_prefix("tty-index:")
                        .is_some_and(|v| v.trim() == index.to_string())
                })
            })
    })
}
