//! Strangers on the internet: each attack a stranger can make with nothing
//! but loopback and standard clients, refused or bounded, while the player's
//! game, its spectators and a legitimate user on another address carry on.
//!
//! Strangers connect from 127.0.0.2 and up ([`stranger`]); 127.0.0.1 is a
//! trusted address in the default config, so per-address limits are told
//! from global ones.

use std::net::SocketAddr;
use std::time::Duration;

use crate::common;

use common::ssh::{Login, SshTerminal};
use common::*;
use dgate_proto::auth as auth_pb;
use dgate_proto::auth::auth_service_client::AuthServiceClient;
use dgate_proto::pb;
use dgate_proto::pb::game_service_client::GameServiceClient;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

type Auth = AuthServiceClient<tonic::transport::Channel>;

async fn auth_from(server: &TestServer, n: u8) -> Auth {
    AuthServiceClient::new(channel_from(stranger(n), server.grpc_addr).await)
}

async fn register(auth: &mut Auth, name: &str) -> Result<(), tonic::Status> {
    auth.register(auth_pb::RegisterRequest {
        username: name.into(),
        password: password_of(name).into(),
        email: String::new(),
    })
    .await
    .map(|_| ())
}

async fn log_in(auth: &mut Auth, name: &str, password: &[u8]) -> Result<String, tonic::Status> {
    auth.login(auth_pb::LoginRequest {
        username: name.into(),
        password: password.to_vec().into(),
    })
    .await
    .map(|r| r.into_inner().token)
}

/// The resident memory of this process (the server runs in it).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_ssh_terminal_is_clamped_and_the_server_lives_on() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("opal", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;

    // A 65535x65535 terminal: the server draws at most max_size (300x100).
    let mut huge = SshTerminal::connect_from(
        stranger(1),
        server.ssh_addr,
        "anyone",
        Login::None,
        (65535, 65535),
        (300, 100),
    )
    .await
    .expect("connect");
    huge.wait_for("=>").await;
    huge.send(b"w").await;
    huge.wait_for("opal").await;
    // Watch the game, then claim an even larger window while watching.
    huge.send(b"a").await;
    player.send(b"hello").await;
    huge.wait_for("keys: hello").await;
    huge.resize(300, 100).await;
    huge.send(b"q").await;

    // The server is alive: the player still plays, a newcomer still connects.
    player.send(b"!").await;
    player
        .wait_for_text("keys: !")
        .await
        .expect("the game goes on");
    let mut newcomer = SshTerminal::connect_from(
        stranger(2),
        server.ssh_addr,
        "guest",
        Login::None,
        (80, 24),
        (80, 24),
    )
    .await
    .expect("a newcomer connects");
    newcomer.wait_for("=>").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_sent_before_the_shell_is_bounded() {
    let server = start_server(|_| {}).await;
    let before = rss_bytes();
    let stream = tcp_from(stranger(3), server.ssh_addr).await.expect("tcp");
    let config = std::sync::Arc::new(russh::client::Config::default());
    let mut handle = russh::client::connect_stream(config, stream, common::ssh::AcceptAnyHostKey)
        .await
        .expect("handshake");
    assert!(
        handle
            .authenticate_none("flooder")
            .await
            .expect("auth")
            .success()
    );
    let channel = handle.channel_open_session().await.expect("channel");
    // 32 MiB of keys before asking for a shell.
    let chunk = vec![b'x'; 32 * 1024];
    for _ in 0..1024 {
        channel.data(&chunk[..]).await.expect("send");
    }
    channel
        .request_pty(true, "xterm", 80, 24, 0, 0, &[])
        .await
        .expect("pty");
    channel.request_shell(true).await.expect("shell");
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 96 * 1024 * 1024,
        "the server held the flood: RSS grew {} MiB",
        grown / (1024 * 1024)
    );
    // The flooder still gets its menu, and the keys it typed ahead are not
    // replayed for minutes: the menu answers a real key at once.
    let mut seen = Vec::new();
    let mut channel = channel;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !String::from_utf8_lossy(&seen).contains("=>") {
        let message = tokio::time::timeout_at(deadline, channel.wait())
            .await
            .expect("the menu in time")
            .expect("open");
        if let russh::ChannelMsg::Data { data } = message {
            seen.extend_from_slice(&data);
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http_headers_are_cut_off_and_one_address_cannot_take_every_socket() {
    let server = start_server(|c| {
        c.server.http_header_timeout = Duration::from_millis(800);
        c.server.max_connections_per_address = 8;
    })
    .await;
    // Slowloris: half a request, then a header line now and then.
    let mut slow = Vec::new();
    for _ in 0..8 {
        let mut socket = tcp_from(stranger(1), server.http_addr).await.expect("tcp");
        socket
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
            .await
            .expect("half a request");
        slow.push(socket);
    }
    // The ninth from that address is refused at once with a 503...
    let mut ninth = tcp_from(stranger(1), server.http_addr).await.expect("tcp");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, ninth.read_to_end(&mut answer))
        .await
        .expect("answered in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("Too many connections"), "{answer}");
    // ...while another address is served.
    let other = tcp_from(stranger(2), server.http_addr).await.expect("tcp");
    drop(other);
    let (status, _, _) = common::browser::http_get(server.http_addr, "/healthz").await;
    assert_eq!(status, 200);

    // Every slow connection is closed within the header timeout, however
    // it trickles.
    let started = tokio::time::Instant::now();
    for socket in &mut slow {
        let mut buffer = [0u8; 256];
        loop {
            let _ = socket.write_all(b"X-Trickle: 1\r\n").await;
            match tokio::time::timeout(Duration::from_millis(200), socket.read(&mut buffer)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(_)) => break,
                Err(_) => assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "a slow client was never cut off"
                ),
            }
        }
    }
    // Their places are free again.
    let mut again = None;
    for _ in 0..50 {
        let mut socket = tcp_from(stranger(1), server.http_addr).await.expect("tcp");
        socket
            .write_all(b"GET /healthz HTTP/1.0\r\n\r\n")
            .await
            .expect("request");
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer).await;
        if answer.starts_with(b"HTTP/1.0 200") || answer.starts_with(b"HTTP/1.1 200") {
            again = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the address's places came back");
    let metrics = server.manager.metrics().render();
    assert!(
        metric(
            &metrics,
            "refusals_total{reason=\"connections_per_address\"}"
        ) >= 1.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "refusals_total{reason=\"http_header_timeout\"}") >= 1.0,
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_cannot_find_or_kick_other_peoples_spectators() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("lee", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let watcher = server.account("watcher").await;
    let mut viewer = Viewer::spectator_with(&mut client, &game.id, Some(&watcher))
        .await
        .expect("spectator");
    viewer.ready().await;

    // The lists name the watcher but give nobody its registration's id.
    let (status, _, body) = common::browser::http_get(server.http_addr, "/sessions").await;
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("watcher"), "{body}");
    assert!(!body.contains("spectator_id"), "{body}");
    let mut strangers = GameServiceClient::new(channel_from(stranger(1), server.grpc_addr).await);
    let listed = strangers
        .list_game_sessions(pb::ListGameSessionsRequest::default())
        .await
        .expect("list")
        .into_inner();
    let spectators = &listed.sessions[0].spectators;
    assert_eq!(spectators.len(), 1);
    assert!(spectators[0].spectator_id.is_empty(), "{spectators:?}");

    // Removing without a credential: refused, in a loop if it likes.
    for _ in 0..20 {
        let remove = pb::RemoveSpectatorRequest {
            session_id: game.id.clone(),
            spectator_user_id: spectators[0].user_id,
            spectator_id: String::new(),
        };
        let refused = strangers.remove_spectator(remove).await;
        assert_eq!(status_code(refused), Code::Unauthenticated);
    }
    let guessed = strangers
        .remove_spectator(pb::RemoveSpectatorRequest {
            session_id: game.id.clone(),
            spectator_user_id: 0,
            spectator_id: "0123456789abcdef0123456789abcdef".into(),
        })
        .await;
    assert_eq!(status_code(guessed), Code::NotFound);
    // The watcher still watches.
    player.send(b"still").await;
    viewer
        .wait_for_text("keys: still")
        .await
        .expect("the spectator was not kicked");
    server.shutdown().await;
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A browser spectator socket from `source`; `Err` is the HTTP status.
async fn browser_from(server: &TestServer, source: u8, session: &str) -> Result<Socket, u16> {
    let source = if source == 0 {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        stranger(source)
    };
    let tcp = tcp_from(source, server.http_addr).await.expect("tcp");
    let url = format!("ws://{}/ws/spectate?session={session}", server.http_addr);
    match tokio_tungstenite::client_async(url, tcp).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("WebSocket: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_crowd_out_a_games_spectators() {
    let server = start_server(|c| {
        c.session_management.spectating.max_spectators_per_session = 12;
        c.session_management.spectating.max_spectators_per_address = 5;
        c.session_management
            .spectating
            .max_spectators_per_address_total = 7;
    })
    .await;
    let first = server.start_game("ann", "test").await;
    let second = server.start_game("bob", "test").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(
            browser_from(&server, 1, &first.id)
                .await
                .expect("within the cap"),
        );
    }
    assert_eq!(browser_from(&server, 1, &first.id).await.err(), Some(429));
    // Another address still watches that game.
    held.push(
        browser_from(&server, 2, &first.id)
            .await
            .expect("another address"),
    );
    // Over every game: 7 from one address.
    held.push(
        browser_from(&server, 1, &second.id)
            .await
            .expect("6th overall"),
    );
    held.push(
        browser_from(&server, 1, &second.id)
            .await
            .expect("7th overall"),
    );
    assert_eq!(browser_from(&server, 1, &second.id).await.err(), Some(429));
    // A trusted address (a local proxy) is not capped per address.
    for _ in 0..4 {
        held.push(browser_from(&server, 0, &first.id).await.expect("trusted"));
    }
    // A closed socket gives its place back.
    let mut socket = held.remove(0);
    let _ = socket.close(None).await;
    drop(socket);
    let mut back = None;
    for _ in 0..50 {
        if let Ok(socket) = browser_from(&server, 1, &first.id).await {
            back = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "the place came back");
    // The sockets that were admitted are watching.
    let message = common::browser::next_json(&mut held[0]).await;
    assert!(message.get("type").is_some(), "{message}");
    let metrics = server.manager.metrics().render();
    assert!(
        metric(
            &metrics,
            "refusals_total{reason=\"spectators_per_address\"}"
        ) >= 2.0,
        "{metrics}"
    );
    drop(held);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_a_password_gets_the_limit_and_never_locks_the_owner_out() {
    let server = start_server(|_| {}).await;
    let mut owner = auth_from(&server, 2).await;
    register(&mut owner, "alice").await.expect("register");

    // 300 wrong passwords at once from one address.
    let attacker = auth_from(&server, 1).await;
    let guesses: Vec<_> = (0..300)
        .map(|i| {
            let mut attacker = attacker.clone();
            tokio::spawn(async move {
                log_in(&mut attacker, "alice", format!("guess {i}").as_bytes()).await
            })
        })
        .collect();
    let (mut checked, mut refused) = (0, 0);
    for guess in guesses {
        match guess.await.expect("task") {
            Err(status) if status.code() == Code::Unauthenticated => checked += 1,
            Err(status) if status.code() == Code::ResourceExhausted => refused += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(checked, 5, "exactly the limit was evaluated");
    assert_eq!(refused, 295);

    // The owner, from their own address, logs in at once over gRPC and SSH.
    let token = log_in(&mut owner, "alice", &password_of("alice"))
        .await
        .expect("the owner is not locked out");
    assert!(!token.is_empty());
    let password = String::from_utf8(password_of("alice")).expect("text");
    let mut ssh = SshTerminal::connect_from(
        stranger(2),
        server.ssh_addr,
        "alice",
        Login::Password(&password),
        (80, 24),
        (80, 24),
    )
    .await
    .expect("the owner logs in over SSH");
    ssh.wait_for("Logged in as alice").await;
    // The attacker is still refused, with when to try again.
    let mut attacker = attacker;
    let again = log_in(&mut attacker, "alice", b"guess again")
        .await
        .expect_err("still limited");
    assert_eq!(again.code(), Code::ResourceExhausted);
    assert!(again.message().contains("try again in"), "{again:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_from_one_address_are_limited() {
    let server = start_server(|_| {}).await;
    let mut flood = auth_from(&server, 3).await;
    for i in 0..10 {
        register(&mut flood, &format!("bot{i}"))
            .await
            .expect("within the hourly limit");
    }
    let refused = register(&mut flood, "bot10").await.expect_err("11th");
    assert_eq!(refused.code(), Code::ResourceExhausted);
    assert!(
        refused.message().contains("too many registrations"),
        "{refused:?}"
    );
    // Over SSH from that address too.
    let mut ssh = SshTerminal::connect_from(
        stranger(3),
        server.ssh_addr,
        "guest",
        Login::None,
        (100, 30),
        (100, 30),
    )
    .await
    .expect("connect");
    ssh.wait_for("=>").await;
    ssh.send(b"r").await;
    ssh.wait_for("Username:").await;
    ssh.send(b"sshbot\r").await;
    ssh.wait_for("Password:").await;
    ssh.send(b"a password\r").await;
    ssh.wait_for("Again:").await;
    ssh.send(b"a password\r").await;
    ssh.wait_for("Not registered: too many registrations").await;
    // Someone else registers.
    let mut someone = auth_from(&server, 4).await;
    register(&mut someone, "newcomer")
        .await
        .expect("another address");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_a_game_reads_differently_are_refused() {
    let server = start_server(|_| {}).await;
    let mut auth = auth_from(&server, 5).await;
    register(&mut auth, "alice").await.expect("alice");
    for name in ["alice-val", "player", "Games", "root", "nethack"] {
        let refused = register(&mut auth, name).await.expect_err(name);
        assert_eq!(refused.code(), Code::InvalidArgument, "{name}: {refused:?}");
    }
    let role = register(&mut auth, "alice-val").await.expect_err("role");
    assert!(role.message().contains("role"), "{role:?}");
    // A game is never started under such a name either (an account made
    // before the rule, or by an operator).
    let started = server.manager.start(dgate_server::game::StartRequest {
        user_id: 1,
        username: "alice-val".into(),
        game_id: "test".into(),
        size: None,
    });
    assert!(started.is_err(), "a game started as alice-val");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssh_handshakes_that_never_log_in_are_limited_and_timed_out() {
    let server = start_server(|c| {
        c.ssh.login_grace_time = Duration::from_secs(1);
        c.ssh.max_startups_per_address = 4;
    })
    .await;
    // Connections that send nothing at all.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(tcp_from(stranger(6), server.ssh_addr).await.expect("tcp"));
    }
    // One more from that address is dropped with a line saying why.
    let mut fifth = tcp_from(stranger(6), server.ssh_addr).await.expect("tcp");
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, fifth.read_to_end(&mut answer))
        .await
        .expect("closed in time")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.contains("Too many connections"), "{answer}");
    // Someone else logs in meanwhile.
    let mut other = SshTerminal::connect_from(
        stranger(7),
        server.ssh_addr,
        "guest",
        Login::None,
        (80, 24),
        (80, 24),
    )
    .await
    .expect("another address logs in");
    other.wait_for("=>").await;
    // The silent ones are closed after the grace time.
    for socket in &mut silent {
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut rest))
            .await
            .expect("closed by the server");
        let text = String::from_utf8_lossy(&rest);
        assert!(text.starts_with("SSH-2.0-"), "{text}");
    }
    // Logged-in connections are not bound by the grace time.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    other.send(b"w").await;
    other.wait_for("No games are in progress.").await;
    let metrics = server.manager.metrics().render();
    assert!(
        metric(&metrics, "refusals_total{reason=\"ssh_login_grace\"}") >= 4.0,
        "{metrics}"
    );
    assert!(
        metric(&metrics, "refusals_total{reason=\"ssh_startups\"}") >= 1.0,
        "{metrics}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_carry_security_headers_and_foreign_pages_cannot_open_sockets() {
    let server = start_server(|_| {}).await;
    let game = server.start_game("una", "test").await;
    let (status, head, _) = common::browser::http_get(server.http_addr, "/").await;
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    for header in [
        "content-security-policy: default-src 'self'",
        "x-content-type-options: nosniff",
        "x-frame-options: deny",
        "referrer-policy: ",
    ] {
        assert!(head.contains(header), "{header} in {head}");
    }
    assert!(head.contains("frame-ancestors 'none'"), "{head}");
    // A WebSocket from another site's page is refused; from our own, served.
    let request = |origin: &str| {
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                format!("ws://{}/ws/spectate?session={}", server.http_addr, game.id),
            )
            .expect("request");
        request
            .headers_mut()
            .insert("origin", origin.parse().expect("header"));
        request
    };
    match tokio_tungstenite::connect_async(request("https://evil.example")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 403);
        }
        other => panic!("a foreign origin was let in: {:?}", other.map(|_| ())),
    }
    let own = format!("http://{}", server.http_addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(request(&own))
        .await
        .expect("our own page's origin");
    let first = socket.next().await.expect("a message").expect("ok");
    assert!(first.is_text());
    server.shutdown().await;
}

/// Plays a short game as `name` and waits for its recording; returns its id.
async fn record_a_game(server: &TestServer, name: &str) -> String {
    let mut client = server.client().await;
    let game = server.start_game(name, "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"fff").await;
    player.wait_for_text("frame 000003").await.expect("frames");
    player.send(b"x").await;
    player.read_to_end().await.expect("game over");
    server.manager.finish_recordings().await;
    let listed = server.manager.library().list(name, "", 0).await;
    listed.first().expect("a recording").id.clone()
}

async fn replay_from(
    server: &TestServer,
    source: u8,
    id: &str,
) -> Result<
    (
        tokio::sync::mpsc::Sender<pb::RecordingControl>,
        tonic::Streaming<pb::RecordingEvent>,
    ),
    tonic::Status,
> {
    let mut client = GameServiceClient::new(channel_from(stranger(source), server.grpc_addr).await);
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(pb::RecordingControl {
        control: Some(pb::recording_control::Control::Open(pb::OpenRecording {
            recording_id: id.to_owned(),
            max_idle_seconds: 0.0,
        })),
    })
    .await
    .expect("queue");
    let mut events = client
        .stream_recording(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    // The replay has started: its first event arrived.
    let first = tokio::time::timeout(WAIT, events.message())
        .await
        .expect("in time")?;
    assert!(first.is_some());
    Ok((tx, events))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_at_once_are_capped_per_address_and_in_all() {
    let server = start_server(|c| {
        c.session_management.ttyrec.max_replays = 3;
        c.session_management.ttyrec.max_replays_per_address = 2;
    })
    .await;
    let id = record_a_game(&server, "rita").await;
    let first = replay_from(&server, 1, &id).await.expect("first");
    let _second = replay_from(&server, 1, &id).await.expect("second");
    let third = replay_from(&server, 1, &id).await.expect_err("per address");
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert!(third.message().contains("at most 2 replays"), "{third:?}");
    let _elsewhere = replay_from(&server, 2, &id).await.expect("another address");
    let full = replay_from(&server, 3, &id).await.expect_err("in all");
    assert_eq!(full.code(), Code::ResourceExhausted);
    assert!(full.message().contains("maximum of 3"), "{full:?}");
    // A replay that ends gives its place back.
    drop(first);
    let mut again = None;
    for _ in 0..50 {
        if let Ok(replay) = replay_from(&server, 3, &id).await {
            again = Some(replay);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the place came back");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_stops_at_its_size_cap_and_the_game_goes_on() {
    let server = start_server(|c| {
        c.session_management.ttyrec.max_bytes = 2048;
        c.session_management.ttyrec.compression = dgate_server::config::Compression::None;
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("tess", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    for round in 0..20 {
        player.send(format!("ff{round}").as_bytes()).await;
        player
            .wait_for_text(&format!("keys: ff{round}"))
            .await
            .expect("the game goes on past the cap");
    }
    player.send(b"x").await;
    player.read_to_end().await.expect("game over");
    server.manager.finish_recordings().await;
    let entry = server
        .manager
        .library()
        .list("tess", "", 0)
        .await
        .into_iter()
        .next()
        .expect("a recording");
    assert!(entry.meta.truncated, "{:?}", entry.meta);
    let size = std::fs::metadata(&entry.path).expect("file").len();
    assert!(size <= 2048, "{size} bytes");
    // What was recorded still plays.
    let (_tx, mut events) = replay_from(&server, 4, &entry.id).await.expect("replays");
    assert!(events.message().await.expect("event").is_some());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_of_a_root_server_runs_unprivileged_and_cannot_read_the_secrets() {
    let root =
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").expect("/proc")) == 0;
    // A "game" that tries to read the server's secrets and says who it is.
    let server = start_server(|c| {
        let mut game = testgame("shell", &[]);
        game.binary.path = "/bin/sh".into();
        game.binary.args = vec![
            "-c".into(),
            "echo uid=$(id -u); cat %d/dgate.db %d/ssh_host_ed25519_key >/dev/null 2>&1 \
             && echo SECRETS-READ || echo SECRETS-DENIED; echo core=$(ulimit -c); sleep 60"
                .into(),
        ];
        c.games.push(game);
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("ivy", "shell").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.wait_for_text("core=").await.expect("the game ran");
    let screen = player.screen.screen().contents();
    if root {
        let games = nix::unistd::User::from_name("games")
            .expect("lookup")
            .expect("a games user");
        assert!(screen.contains(&format!("uid={}", games.uid)), "{screen}");
        assert!(screen.contains("SECRETS-DENIED"), "{screen}");
    } else {
        eprintln!("not root: games run as the tests' own user; only the limits are checked");
    }
    // No core files, whoever runs it.
    assert!(screen.contains("core=0"), "{screen}");
    let data = server.data_dir.path();
    for secret in ["dgate.db", "ssh_host_ed25519_key"] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(data.join(secret))
                .expect(secret)
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{secret}");
    }
    server.shutdown().await;
}

/// A relay on loopback that starts every connection to `target` with a
/// PROXY v1 header naming `client`, as HAProxy's `send-proxy` does.
async fn proxy_relay(target: SocketAddr, client: std::net::IpAddr) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the relay");
    let address = listener.local_addr().expect("relay address");
    tokio::spawn(async move {
        while let Ok((mut inbound, from)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    return;
                };
                let header = format!(
                    "PROXY TCP4 {client} {} {} {}\r\n",
                    target.ip(),
                    from.port(),
                    target.port()
                );
                if upstream.write_all(header.as_bytes()).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut upstream).await;
                }
            });
        }
    });
    address
}

/// Behind a trusted proxy that speaks the PROXY protocol, every listener
/// counts the client the proxy names: one client over its limit is refused
/// while another behind the same proxy is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_protocol_proxy_limits_apply_to_the_clients_it_names() {
    let server = start_server(|c| {
        c.server.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
        c.server.max_connections_per_address = 2;
        c.ssh.max_startups_per_address = 1;
    })
    .await;
    let crowd: std::net::IpAddr = "203.0.113.7".parse().expect("ip");
    let other: std::net::IpAddr = "198.51.100.9".parse().expect("ip");

    // HTTP and gRPC: the crowd holds two idle HTTP connections.
    let crowd_http = proxy_relay(server.http_addr, crowd).await;
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(
            tokio::net::TcpStream::connect(crowd_http)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut third = tokio::net::TcpStream::connect(crowd_http)
        .await
        .expect("connect");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, third.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    let crowd_grpc = proxy_relay(server.grpc_addr, crowd).await;
    let refused = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{crowd_grpc}"))
            .ok()?
            .connect()
            .await
            .ok()?;
        GameServiceClient::new(channel)
            .list_games(pb::ListGamesRequest::default())
            .await
            .ok()
    };
    assert!(
        tokio::time::timeout(WAIT, refused)
            .await
            .ok()
            .flatten()
            .is_none(),
        "the crowd's gRPC connection over its limit is refused"
    );
    // Someone else behind the same proxy is served on both.
    let other_http = proxy_relay(server.http_addr, other).await;
    let mut socket = tokio::net::TcpStream::connect(other_http)
        .await
        .expect("connect");
    socket
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, socket.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let other_grpc = proxy_relay(server.grpc_addr, other).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{other_grpc}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    GameServiceClient::new(channel)
        .list_games(pb::ListGamesRequest::default())
        .await
        .expect("served");
    drop(held);

    // SSH: one connection logging in per client.
    let first_line = |relay: SocketAddr| async move {
        let mut socket = tokio::net::TcpStream::connect(relay)
            .await
            .expect("connect");
        let mut line = vec![0u8; 64];
        let n = tokio::time::timeout(WAIT, socket.read(&mut line))
            .await
            .expect("an answer")
            .expect("read");
        (socket, String::from_utf8_lossy(&line[..n]).into_owned())
    };
    let crowd_ssh = proxy_relay(server.ssh_addr, "203.0.113.8".parse().expect("ip")).await;
    let (_logging_in, line) = first_line(crowd_ssh).await;
    assert!(line.starts_with("SSH-2.0-"), "{line}");
    let (_, line) = first_line(crowd_ssh).await;
    assert!(line.starts_with("Too many connections"), "{line}");
    let other_ssh = proxy_relay(server.ssh_addr, "198.51.100.10".parse().expect("ip")).await;
    let (_, line) = first_line(other_ssh).await;
    assert!(line.starts_with("SSH-2.0-"), "{line}");
    server.shutdown().await;
}

/// `sandbox: bubblewrap`: a game that looks around sees a read-only system,
/// its own HOME (writable, kept on the host) and none of the data directory
/// besides, a private `/tmp`, no network, and no other processes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_game_sees_only_its_own_files() {
    let marker = format!("/tmp/dgate-host-only-{}", std::process::id());
    std::fs::write(&marker, "host").expect("marker");
    let script = format!(
        "echo users=$(ls -A %d/users | tr '\\n' ,); \
         test -e %d/dgate.db && echo DB-SEEN || echo DB-HIDDEN; \
         touch /usr/sandbox-probe 2>/dev/null && echo SYSTEM-WRITABLE || echo SYSTEM-READONLY; \
         echo kept > $HOME/kept.txt && echo HOME-WRITTEN; \
         test -e {marker} && echo TMP-SHARED || echo TMP-PRIVATE; \
         echo ifaces=$(grep -c : /proc/net/dev) pid=$$; echo done; sleep 60"
    );
    let server = start_server(|c| {
        let mut game = testgame("boxed", &[]);
        game.binary.path = "/bin/sh".into();
        game.binary.args = vec!["-c".into(), script];
        game.sandbox = dgate_server::config::Sandbox::Bubblewrap;
        c.games.push(game);
    })
    .await;
    // Another player's home, with something in it.
    let other = server.data_dir.path().join("users/other");
    std::fs::create_dir_all(&other).expect("other home");
    std::fs::write(other.join("notes.txt"), "private").expect("notes");

    let mut client = server.client().await;
    let game = server.start_game("sid", "boxed").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.wait_for_text("done").await.expect("the game ran");
    let screen = player.screen.screen().contents();
    let _ = std::fs::remove_file(&marker);
    assert!(screen.contains("users=sid,"), "only its own home: {screen}");
    assert!(screen.contains("DB-HIDDEN"), "{screen}");
    assert!(screen.contains("SYSTEM-READONLY"), "{screen}");
    assert!(screen.contains("HOME-WRITTEN"), "{screen}");
    assert!(screen.contains("TMP-PRIVATE"), "{screen}");
    assert!(
        screen.contains("ifaces=1 pid=2"),
        "loopback only, alone: {screen}"
    );
    let kept = server.data_dir.path().join("users/sid/kept.txt");
    assert_eq!(
        std::fs::read_to_string(&kept).expect("the game's file is on the host"),
        "kept\n"
    );
    assert!(!std::path::Path::new("/usr/sandbox-probe").exists());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_ends_the_users_live_sessions_on_every_transport() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    // Mallory plays over gRPC and sits in the SSH menu, both logged in.
    let game = server.start_game("mallory", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let password = String::from_utf8(password_of("mallory")).expect("text");
    let mut ssh = SshTerminal::connect_from(
        stranger(10),
        server.ssh_addr,
        "mallory",
        Login::Password(&password),
        (80, 24),
        (80, 24),
    )
    .await
    .expect("login");
    ssh.wait_for("Logged in as mallory").await;
    // Someone else watches the game and is not affected.
    let mut viewer = Viewer::spectator(&mut client, &game.id, "x")
        .await
        .expect("spectator");
    viewer.ready().await;

    // The operator bans her, from another process, as `dgate-server user ban` does.
    let store = dgate_server::accounts::AccountStore::open(
        &server.data_dir.path().join("dgate.db"),
        Duration::from_secs(60),
    )
    .expect("the store");
    store.set_banned("mallory", true).expect("ban");

    ssh.wait_for("Your session has ended: your account was banned.")
        .await;
    ssh.wait_closed().await;
    let ended = tokio::time::timeout(WAIT, player.read_to_end())
        .await
        .expect("the stream ended in time");
    let error = ended.expect_err("ended by the server");
    assert!(format!("{error:#}").contains("banned"), "{error:#}");
    // Her game goes on for its spectators until the detach grace ends it.
    assert!(server.manager.get(&game.id).is_ok());
    let last = server.hub(&game.id).last_frame_id().get();
    viewer
        .wait_for_frame(last)
        .await
        .expect("the spectator still watches");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spectator_that_goes_at_any_step_of_its_join_leaves_no_registration() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("zed", "test").await;
    let session = server.manager.get(&game.id).expect("session");
    // The browser: the upgrade request sent, the socket closed before the answer.
    for _ in 0..5 {
        let mut socket = tcp_from(stranger(11), server.http_addr).await.expect("tcp");
        let request = format!(
            "GET /ws/spectate?session={} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            game.id, server.http_addr
        );
        socket.write_all(request.as_bytes()).await.expect("request");
        drop(socket);
    }
    // gRPC: registered, then the stream opened and dropped before it is read.
    for _ in 0..5 {
        let spectator = client
            .add_spectator(pb::AddSpectatorRequest {
                session_id: game.id.clone(),
                ..Default::default()
            })
            .await
            .expect("add")
            .into_inner()
            .spectator
            .expect("info");
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(pb::GameIoRequest {
            request: Some(pb::game_io_request::Request::Connect(
                pb::ConnectPtyRequest {
                    session_id: game.id.clone(),
                    spectator_id: spectator.spectator_id,
                    ..Default::default()
                },
            )),
        })
        .await
        .expect("queue");
        let stream = client
            .stream_game_io(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .expect("stream");
        drop(stream);
        drop(tx);
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    while !session.spectators.is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} registrations left behind",
            session.spectators.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The address's places are all back.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(browser_from(&server, 11, &game.id).await.expect("a place"));
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_live_on_an_address_of_their_own() {
    let server = start_server(|c| {
        c.server.metrics_listen = Some("127.0.0.1:0".parse().expect("address"));
    })
    .await;
    let (status, _, _) = common::browser::http_get(server.http_addr, "/metrics").await;
    assert_eq!(status, 404, "not on the public port");
    let metrics = server.metrics_addr.expect("a metrics listener");
    let (status, _, body) = common::browser::http_get(metrics, "/metrics").await;
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("# TYPE failed_logins counter"), "{body}");
    let (status, _, _) = common::browser::http_get(metrics, "/sessions").await;
    assert_eq!(status, 404, "only the metrics there");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_is_the_one_limited() {
    let proxy = stranger(12);
    let server = start_server(|c| {
        c.server.trusted_proxies = vec![proxy];
        c.server.max_connections_per_address = 3;
        c.session_management.spectating.max_spectators_per_address = 2;
    })
    .await;
    let game = server.start_game("quill", "test").await;
    // Sockets through the proxy for a client it names.
    let through = |client: &'static str| {
        let game = game.id.clone();
        let addr = server.http_addr;
        async move {
            let tcp = tcp_from(proxy, addr).await.expect("tcp");
            let mut request =
                tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                    format!("ws://{addr}/ws/spectate?session={game}"),
                )
                .expect("request");
            request.headers_mut().insert(
                "x-forwarded-for",
                format!("203.0.113.99, {client}").parse().expect("header"),
            );
            match tokio_tungstenite::client_async(request, tcp).await {
                Ok((socket, _)) => Ok(socket),
                Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
                Err(e) => panic!("{e}"),
            }
        }
    };
    let mut held = Vec::new();
    // The proxy's own connections are not capped (3 per address here).
    for _ in 0..2 {
        held.push(
            through("198.51.100.1")
                .await
                .expect("within the client's cap"),
        );
    }
    assert_eq!(
        through("198.51.100.1").await.err(),
        Some(429),
        "the client's cap"
    );
    for _ in 0..2 {
        held.push(through("198.51.100.2").await.expect("another client"));
    }
    assert_eq!(held.len(), 4);
    server.shutdown().await;
}
