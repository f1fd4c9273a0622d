//! Bad input of every kind gets its status code, and nothing else is disturbed:
//! the server keeps serving and other streams keep their frames.

use crate::common;

use std::io::Write;

use common::*;
use dgate_proto::pb;
use dgate_proto::pb::game_io_request::Request as In;

fn start(game_id: &str, size: Option<(u32, u32)>) -> pb::StartGameSessionRequest {
    pb::StartGameSessionRequest {
        user_id: 7,
        username: "ignored".into(),
        game_id: game_id.into(),
        terminal_size: size.map(|(width, height)| pb::TerminalSize { width, height }),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_clear_status_codes() {
    let server =
        start_server(|c| c.session_management.spectating.max_spectators_per_session = 2).await;
    let mut client = server.client().await;
    use tonic::Code::{
        AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, PermissionDenied,
        ResourceExhausted, Unauthenticated,
    };
    let kim = server.account("kim").await;

    // Unknown ids.
    let missing = || pb::GetGameSessionRequest {
        session_id: "no-such-session".into(),
    };
    assert_eq!(
        status_code(client.get_game_session(missing()).await),
        NotFound
    );
    let add = |id: &str| pb::AddSpectatorRequest {
        session_id: id.into(),
        spectator_user_id: 0,
        spectator_username: String::new(),
    };
    assert_eq!(
        status_code(client.add_spectator(add("no-such-session")).await),
        NotFound
    );
    let stop = pb::StopGameSessionRequest {
        session_id: "nope".into(),
        ..Default::default()
    };
    assert_eq!(
        status_code(client.stop_game_session(authed(stop, &kim)).await),
        NotFound
    );
    assert_eq!(
        status_code(
            client
                .start_game_session(authed(start("no-such-game", None), &kim))
                .await
        ),
        NotFound
    );

    // Starting needs a valid token.
    assert_eq!(
        status_code(client.start_game_session(start("test", None)).await),
        Unauthenticated
    );
    assert_eq!(
        status_code(
            client
                .start_game_session(authed(start("test", None), "forged"))
                .await
        ),
        Unauthenticated
    );

    // A configured game whose binary is missing: listed as unavailable, with the reason.
    let games = client
        .list_games(pb::ListGamesRequest {})
        .await
        .expect("games")
        .into_inner()
        .games;
    let missing_game = games.iter().find(|g| g.id == "missing").expect("listed");
    assert!(!missing_game.available);
    assert!(
        missing_game
            .unavailable_reason
            .contains("/nonexistent/dgate/game")
    );
    assert!(games.iter().any(|g| g.id == "test" && g.available));
    let status = client
        .start_game_session(authed(start("missing", None), &kim))
        .await
        .expect_err("unavailable");
    assert_eq!(status.code(), FailedPrecondition);
    assert!(
        status.message().contains("/nonexistent/dgate/game"),
        "{}",
        status.message()
    );

    // Bad sizes.
    for size in [(0, 24), (80, 0), (301, 24), (80, 101), (100_000, 24)] {
        let result = client
            .start_game_session(authed(start("test", Some(size)), &kim))
            .await;
        assert_eq!(status_code(result), InvalidArgument, "{size:?}");
    }

    // One active session per player and game; the player is the token's user,
    // whatever the request's username says.
    let session = client
        .start_game_session(authed(start("test", None), &kim))
        .await
        .expect("start")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(session.username, "kim");
    let session = Game {
        session,
        token: kim.clone(),
    };
    assert_eq!(
        status_code(
            client
                .start_game_session(authed(start("test", None), &kim))
                .await
        ),
        AlreadyExists
    );

    // Streams: the first message must be connect; strangers are refused.
    let input_first = pb::GameIoRequest {
        request: Some(In::Input(pb::PtyInput {
            session_id: session.id.clone(),
            data: b"x".to_vec().into(),
        })),
    };
    assert_eq!(
        status_code(
            open_stream(&mut client, Some(&kim), input_first)
                .await
                .map(|_| ())
        ),
        InvalidArgument
    );
    let as_player = || pb::GameIoRequest {
        request: Some(In::Connect(pb::ConnectPtyRequest {
            session_id: session.id.clone(),
            username: "kim".into(),
            ..Default::default()
        })),
    };
    assert_eq!(
        status_code(
            open_stream(&mut client, None, as_player())
                .await
                .map(|_| ())
        ),
        Unauthenticated
    );
    let mallory = server.account("mallory").await;
    assert_eq!(
        status_code(
            open_stream(&mut client, Some(&mallory), as_player())
                .await
                .map(|_| ())
        ),
        PermissionDenied
    );
    let bad_spectator_id = pb::GameIoRequest {
        request: Some(In::Connect(pb::ConnectPtyRequest {
            session_id: session.id.clone(),
            spectator_id: "forged".into(),
            ..Default::default()
        })),
    };
    assert_eq!(
        status_code(
            open_stream(&mut client, None, bad_spectator_id)
                .await
                .map(|_| ())
        ),
        PermissionDenied
    );
    let unknown = pb::GameIoRequest {
        request: Some(In::Connect(pb::ConnectPtyRequest {
            session_id: "nope".into(),
            ..Default::default()
        })),
    };
    assert_eq!(
        status_code(
            open_stream(&mut client, Some(&kim), unknown)
                .await
                .map(|_| ())
        ),
        NotFound
    );

    // max_spectators_per_session.
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player.ready().await;
    let mut watcher = Viewer::spectator(&mut client, &session.id, "w1")
        .await
        .expect("first spectator");
    let _second = Viewer::spectator(&mut client, &session.id, "w2")
        .await
        .expect("second spectator");
    let status = Viewer::spectator(&mut client, &session.id, "w3")
        .await
        .map(|_| ())
        .expect_err("full");
    assert_eq!(status.code(), ResourceExhausted);
    assert!(status.message().contains('2'), "{}", status.message());
    assert_eq!(
        status_code(client.add_spectator(add(&session.id)).await),
        ResourceExhausted
    );

    // Oversize input ends only the offending stream, with INVALID_ARGUMENT.
    player.send(&vec![b'z'; 64 * 1024 + 1]).await;
    let err = loop {
        match player.stream.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(err.code(), InvalidArgument);
    assert!(err.message().contains("65537"), "{}", err.message());
    // Nothing of it reached the game, the game runs, and other streams go on.
    let mut player = Viewer::player(&mut client, &session)
        .await
        .expect("the owner reconnects");
    player.step().await.expect("snapshot");
    assert!(!player.screen.screen().contents().contains("zzz"));
    player.send(b"f").await;
    player
        .wait_for_text("frame 000001")
        .await
        .expect("game still running");
    watcher
        .wait_for_text("frame 000001")
        .await
        .expect("other streams unaffected");

    // The slots stay taken while w1 and w2 watch.
    assert_eq!(
        status_code(client.add_spectator(add(&session.id)).await),
        ResourceExhausted
    );

    // Bad listing arguments.
    let bad_list = pb::ListGameSessionsRequest {
        limit: -1,
        ..Default::default()
    };
    assert_eq!(
        status_code(client.list_game_sessions(bad_list).await),
        InvalidArgument
    );
    let health = client
        .health(pb::HealthRequest {})
        .await
        .expect("still serving")
        .into_inner();
    assert_eq!(health.active_sessions, 1);
    server.shutdown().await;
}

/// A spectator registration can be used by one stream only, and RemoveSpectator
/// ends that stream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_spectator_ends_its_stream() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let session = server.start_game("lee", "test").await;
    let watcher = server.account("watcher").await;
    let request = pb::AddSpectatorRequest {
        session_id: session.id.clone(),
        spectator_user_id: 0,
        spectator_username: "ignored".into(),
    };
    let spectator = client
        .add_spectator(authed(request, &watcher))
        .await
        .expect("add")
        .into_inner()
        .spectator
        .expect("info");
    assert_eq!(
        spectator.username, "watcher",
        "the token names the spectator"
    );
    let connect = |id: &str| pb::GameIoRequest {
        request: Some(In::Connect(pb::ConnectPtyRequest {
            session_id: session.id.clone(),
            spectator_id: id.into(),
            ..Default::default()
        })),
    };
    let (_tx, mut stream) = open_stream(&mut client, None, connect(&spectator.spectator_id))
        .await
        .expect("bound");
    let twice = open_stream(&mut client, None, connect(&spectator.spectator_id))
        .await
        .map(|_| ());
    assert_eq!(status_code(twice), tonic::Code::AlreadyExists);

    let remove = pb::RemoveSpectatorRequest {
        session_id: session.id.clone(),
        spectator_user_id: spectator.user_id,
        spectator_id: String::new(),
    };
    let stranger = server.account("stranger").await;
    let denied = client
        .remove_spectator(authed(remove.clone(), &stranger))
        .await;
    assert_eq!(status_code(denied), tonic::Code::PermissionDenied);
    client
        .remove_spectator(authed(remove, &watcher))
        .await
        .expect("remove");
    let mut last = None;
    while let Some(message) = stream.message().await.expect("clean end") {
        last = message.response;
    }
    assert!(
        matches!(last, Some(pb::game_io_response::Response::Disconnected(_))),
        "{last:?}"
    );
    server.shutdown().await;
}

/// A spectator stream with no game output for `spectator_timeout` is ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_spectator_times_out() {
    let server = start_server(|c| {
        c.session_management.spectating.spectator_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let mut client = server.client().await;
    let session = server.start_game("mia", "test").await;
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player.ready().await;
    let mut spectator = Viewer::spectator(&mut client, &session.id, "idle")
        .await
        .expect("spectator");
    spectator.read_to_end().await.expect("ends");
    assert_eq!(
        &spectator.seen[spectator.seen.len() - 2..],
        [
            Seen::Timeout,
            Seen::Disconnected("spectator timeout".into())
        ]
    );
    // The player is never timed out.
    player.send(b"f").await;
    player
        .wait_for_text("frame 000001")
        .await
        .expect("player still connected");
    let s = server.manager.get(&session.id).expect("session");
    eventually("the timed-out spectator left the registry", || {
        s.spectators.is_empty()
    })
    .await;
    server.shutdown().await;
}

/// Garbage on the gRPC and HTTP ports harms nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_sockets_is_harmless() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let session = server.start_game("ned", "test").await;
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player.ready().await;
    for addr in [server.grpc_addr, server.http_addr] {
        for garbage in [
            &b"\x00\xff\x13garbage\r\n\r\n"[..],
            &[0x16, 0x03, 0x01, 0x02, 0x00],
            &[b'A'; 100_000],
        ] {
            let mut socket = std::net::TcpStream::connect(addr).expect("connect");
            let _ = socket.write_all(garbage);
        }
    }
    player.send(b"f").await;
    player
        .wait_for_text("frame 000001")
        .await
        .expect("the game stream is unaffected");
    client
        .health(pb::HealthRequest {})
        .await
        .expect("gRPC still serving");
    server.shutdown().await;
}
/// Shutdown hangs up every game and waits for it before the server returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_hangs_up_every_game() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let mut pids = Vec::new();
    let mut players = Vec::new();
    for user in ["ina", "jon"] {
        let session = server.start_game(user, "test").await;
        pids.push(
            server
                .manager
                .get(&session.id)
                .expect("session")
                .pid()
                .expect("pid"),
        );
        let mut player = Viewer::player(&mut client, &session).await.expect("player");
        player.ready().await;
        players.push(player);
    }
    let manager = server.manager.clone();
    server.shutdown().await;
    assert_eq!(manager.active_count(), 0);
    for pid in pids {
        assert!(!process_exists(pid), "game {pid} was hung up and reaped");
    }
    for mut p in players {
        p.read_to_end().await.expect("stream ends");
        assert!(matches!(p.seen.last(), Some(Seen::Exit(_))));
        assert!(
            p.seen.contains(&Seen::ServerShutdown),
            "viewers are told why the game ends: {:?}",
            p.seen
        );
    }
}

/// An AddSpectator registration that no stream claims expires, so it cannot
/// hold one of the session's spectator slots forever.
#[tokio::test(start_paused = true)]
async fn an_unclaimed_spectator_registration_expires() {
    let data_dir = tempfile::tempdir().expect("data dir");
    let mut config = dgate_server::Config::embedded();
    config.data_dir = data_dir.path().to_owned();
    config.session_management.ttyrec.directory = data_dir.path().join("ttyrec");
    config.games.push(testgame("test", &[]));
    let manager = dgate_server::SessionManager::new(std::sync::Arc::new(config));
    let session = manager
        .start(dgate_server::game::StartRequest {
            user_id: 1,
            username: "olive".into(),
            game_id: "test".into(),
            size: None,
        })
        .expect("start");
    let (_, claimed) = dgate_server::viewing::register(&manager, &session.info.id, None, None)
        .await
        .expect("add");
    assert!(claimed.bind(), "a stream claims this one");
    let (_, unclaimed) = dgate_server::viewing::register(&manager, &session.info.id, None, None)
        .await
        .expect("add");
    assert_eq!(session.spectators.len(), 2);

    tokio::time::sleep(
        dgate_server::viewing::UNCLAIMED_SPECTATOR_GRACE + std::time::Duration::from_secs(1),
    )
    .await;
    assert!(
        session.spectators.get(&unclaimed.id).is_none(),
        "the unclaimed registration expired"
    );
    assert!(
        session.spectators.get(&claimed.id).is_some(),
        "a claimed one stays"
    );
    assert!(unclaimed.removed.is_cancelled());

    session.signal(nix::sys::signal::Signal::SIGKILL);
    session.done().await;
}

/// The game gets exactly the configured environment (with `%u` and `%d`
/// expanded) plus TERM, LINES and COLUMNS: nothing of the server's own, and
/// it runs in its configured working directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_game_gets_only_its_configured_environment() {
    let server = start_server(|c| {
        let mut game = testgame("env", &["--dump-env", "%d/games/%u/env"]);
        game.environment
            .insert("GREETING".into(), "hello %u in %d".into());
        c.games.push(game);
    })
    .await;
    let mut client = server.client().await;
    let session = server
        .start_game_sized("quinn", "env", Some((100, 40)))
        .await;
    let mut player = Viewer::player(&mut client, &session).await.expect("player");
    player.ready().await;

    let data = server.data_dir.path();
    let dumped = std::fs::read_to_string(data.join("games/quinn/env"))
        .expect("the game wrote its environment");
    let mut env: Vec<&str> = dumped.lines().collect();
    env.sort_unstable();
    let home = format!("HOME={}", data.join("users/quinn").display());
    let greeting = format!("GREETING=hello quinn in {}", data.display());
    let mut expected = vec![
        "COLUMNS=100",
        greeting.as_str(),
        home.as_str(),
        "LINES=40",
        "TERM=xterm-256color",
    ];
    expected.sort_unstable();
    assert_eq!(env, expected);
    assert!(data.join("users/quinn").is_dir(), "HOME was created");
    assert!(
        data.join("games/quinn").is_dir(),
        "the working directory was created"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn game_limits_refuse_with_resource_exhausted() {
    let server = start_server(|c| {
        c.session_management.max_sessions = 2;
        c.session_management.max_sessions_per_user = 1;
        c.games.push(testgame("second", &[]));
    })
    .await;
    let mut client = server.client().await;
    let (lou, max) = (server.account("lou").await, server.account("max").await);
    let ned = server.account("ned").await;
    client
        .start_game_session(authed(start("test", None), &lou))
        .await
        .expect("lou's first game");
    // One game per player here: lou's second game is refused, with why.
    let refused = client
        .start_game_session(authed(start("second", None), &lou))
        .await
        .expect_err("over the per-player limit");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert!(
        refused
            .message()
            .contains("lou already has 1 games running"),
        "{refused:?}"
    );
    client
        .start_game_session(authed(start("test", None), &max))
        .await
        .expect("max's game");
    // Two games in all.
    let full = client
        .start_game_session(authed(start("test", None), &ned))
        .await
        .expect_err("over the server's limit");
    assert_eq!(full.code(), tonic::Code::ResourceExhausted);
    assert!(full.message().contains("at most 2 games"), "{full:?}");
    // The games already running are untouched.
    assert_eq!(server.manager.list().len(), 2);
    server.shutdown().await;
}
