//! Several dgate nodes on NATS (docs/CLUSTER.md): real `nats-server`s on
//! loopback (one, or three clustered by routes), dgate nodes with different
//! node ids sharing them, the real test game, real gRPC viewers.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common;

use common::*;
use dgate_proto::pb;
use dgate_server::config::ClusterConfig;

/// NATS servers on loopback, killed when dropped.
pub(crate) struct Nats {
    pub(crate) children: Vec<Child>,
    pub(crate) urls: Vec<String>,
    /// Each server's monitoring port (`/connz`, `/routez`).
    pub(crate) monitors: Vec<u16>,
    pub(crate) _dir: tempfile::TempDir,
}

impl Drop for Nats {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

pub(crate) fn nats_binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/nats-server").exists() {
        "/usr/sbin/nats-server"
    } else {
        "nats-server"
    }
}

impl Nats {
    /// `n` NATS servers on loopback, routed to each other when more than one.
    pub(crate) async fn start(n: usize) -> Nats {
        let dir = tempfile::tempdir().expect("a NATS directory");
        let clients: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let routes: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let monitors: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut children = Vec::new();
        for i in 0..n {
            let mut command = Command::new(nats_binary());
            command
                .args(["-a", "127.0.0.1", "-p", &clients[i].to_string()])
                .args(["-m", &monitors[i].to_string()])
                .args(jetstream_args(dir.path(), i))
                .args([
                    "--pid",
                    &dir.path().join(format!("{i}.pid")).display().to_string(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if n > 1 {
                let others: Vec<String> = (0..n)
                    .filter(|&j| j != i)
                    .map(|j| format!("nats://127.0.0.1:{}", routes[j]))
                    .collect();
                command
                    .args(["--cluster_name", "dgate-test"])
                    .args(["--cluster", &format!("nats://127.0.0.1:{}", routes[i])])
                    .args(["--routes", &others.join(",")]);
            }
            children.push(
                command
                    .spawn()
                    .expect("start nats-server (apt-get install nats-server)"),
            );
        }
        Nats::running(children, &clients, monitors, dir).await
    }

    /// The servers `children` (client ports `clients`), once each takes
    /// connections and runs JetStream.
    pub(crate) async fn running(
        children: Vec<Child>,
        clients: &[u16],
        monitors: Vec<u16>,
        dir: tempfile::TempDir,
    ) -> Nats {
        Nats::wait_listening(clients).await;
        Nats::wait_for_jetstream(&monitors).await;
        Nats {
            children,
            urls: clients
                .iter()
                .map(|p| format!("nats://127.0.0.1:{p}"))
                .collect(),
            monitors,
            _dir: dir,
        }
    }

    /// Waits until JetStream runs on every server (in a cluster: elected its
    /// meta leader): nodes keep their accounts there.
    pub(crate) async fn wait_for_jetstream(monitors: &[u16]) {
        for &port in monitors {
            let deadline = tokio::time::Instant::now() + WAIT;
            loop {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let (status, body) = tokio::task::spawn_blocking(move || http_get(addr, "/jsz"))
                    .await
                    .expect("JetStream's state");
                // Alone, or in a cluster that elected its meta leader.
                let led = !body.contains("\"meta_cluster\"") || body.contains("\"leader\"");
                if status == 200 && led {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "JetStream on monitor port {port} never became healthy: {status} {body}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Waits until every server takes connections on `ports`.
    pub(crate) async fn wait_listening(ports: &[u16]) {
        for &port in ports {
            let deadline = tokio::time::Instant::now() + WAIT;
            while tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_err()
            {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "nats-server did not listen on {port} in time"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// JetStream for NATS server `i` (the nodes' shared accounts live in it),
/// its files under `dir`.
pub(crate) fn jetstream_args(dir: &std::path::Path, i: usize) -> Vec<String> {
    vec![
        "-js".into(),
        "-sd".into(),
        dir.join(format!("js-{i}")).display().to_string(),
        "--server_name".into(),
        format!("nats-{i}"),
    ]
}

/// A dgate node `node_id` on the NATS server `url`, with the burst game.
pub(crate) async fn node(node_id: &str, url: &str) -> TestServer {
    node_lingering(node_id, url, Duration::from_secs(30)).await
}

/// A node whose mirrors go `linger` after their last viewer.
async fn node_lingering(node_id: &str, url: &str, linger: Duration) -> TestServer {
    let (node_id, url) = (node_id.to_owned(), url.to_owned());
    start_server(move |c| {
        c.session_management.spectating.max_spectators_per_session = 100;
        c.games
            .push(testgame("burst", &["--burst", "200", "--pace-us", "500"]));
        c.games.push(testgame("ends", &["--exit-code", "3"]));
        c.cluster = Some(ClusterConfig {
            node_id,
            nats_urls: vec![url],
            credentials: None,
            mirror_linger: linger,
            account_replicas: 1,
        });
    })
    .await
}

/// Waits until `server` lists game `id` (another node's, from its beats).
pub(crate) async fn wait_until_listed(server: &TestServer, id: &str) {
    let mut client = server.client().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listed = client
            .list_game_sessions(pb::ListGameSessionsRequest::default())
            .await
            .expect("list")
            .into_inner()
            .sessions;
        if listed.iter().any(|s| s.id == id) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node at {} never listed game {id}",
            server.grpc_addr
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn micros(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros())
}

pub(crate) fn metrics_of(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics");
    assert_eq!(status, 200);
    body
}

/// A viewer on node 2 gets the frames of a game on node 1 with node 1's ids,
/// bytes and timestamps, ends on the player's screen, and hears the end.
/// The nodes are on different NATS servers of one three-server cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_on_another_node_sees_the_players_frames_screen_and_end() {
    let nats = Nats::start(3).await;
    let one = node("one", &nats.urls[0]).await;
    let two = node("two", &nats.urls[1]).await;
    let mut client = one.client().await;
    let game = one.start_game("alice", "burst").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    wait_until_listed(&two, &game.id).await;

    let mut remote_client = two.client().await;
    let mut remote = Viewer::spectator(&mut remote_client, &game.id, "remote")
        .await
        .expect("a spectator on node 2");
    remote.step().await.expect("the join snapshot");
    assert!(matches!(remote.seen[0], Seen::Snapshot { .. }));
    player
        .wait_for_frame(remote.last_frame)
        .await
        .expect("the player at the joiner's frame");
    assert_same_screen(
        player.screen.screen(),
        remote.screen.screen(),
        "node 2's joiner",
    );

    player.send(b"b").await;
    player
        .wait_for_text("BURST-DONE 200")
        .await
        .expect("the burst on node 1");
    remote
        .wait_for_text("BURST-DONE 200")
        .await
        .expect("the burst on node 2");
    let hub = one.hub(&game.id);
    player.catch_up(&hub).await.expect("the player caught up");
    remote.catch_up(&hub).await.expect("node 2 caught up");
    assert_same_screen(player.screen.screen(), remote.screen.screen(), "node 2");
    // Every frame after its join, with node 1's id, bytes and time.
    assert_eq!(remote.resyncs(), 0, "node 2's viewer was never resynced");
    let joined_at = match remote.seen[0] {
        Seen::Snapshot { frame_id, .. } => frame_id,
        _ => unreachable!("checked above"),
    };
    assert_eq!(
        remote.frames.len() as u64,
        hub.last_frame_id().get() - joined_at,
        "node 2's viewer got every frame after its join"
    );
    for (id, at, data) in &remote.frames {
        let theirs = player
            .frames
            .iter()
            .find(|(i, _, _)| i == id)
            .unwrap_or_else(|| panic!("the player never got frame {id}"));
        assert_eq!(&theirs.2, data, "frame {id}'s bytes");
        assert_eq!(micros(theirs.1), micros(*at), "frame {id}'s timestamp");
    }

    // The player leaves the game (the test game's `q`): node 2 hears the end.
    player.send(b"q").await;
    remote
        .read_to_end()
        .await
        .expect("node 2's stream to its end");
    assert!(
        remote.seen.iter().any(|s| matches!(s, Seen::Exit(0))),
        "node 2's viewer was told the game ended: {:?}",
        remote.seen.last()
    );
    two.shutdown().await;
    one.shutdown().await;
}

/// Twenty joins on node 2 cost node 1 one snapshot request; every joiner,
/// the late ones too, starts on the player's screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_joins_on_a_node_cost_the_games_node_one_snapshot() {
    let nats = Nats::start(1).await;
    let one = node("one", &nats.urls[0]).await;
    let two = node("two", &nats.urls[0]).await;
    let mut client = one.client().await;
    let game = one.start_game("alice", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    for _ in 0..5 {
        player.send(b"f").await;
    }
    player.wait_for_text("frame 000005").await.expect("frames");
    wait_until_listed(&two, &game.id).await;

    let mut viewers = Vec::new();
    let mut remote_client = two.client().await;
    for i in 0..100 {
        if i % 5 == 4 {
            player.send(b"f").await;
        }
        // A connection carries at most 64 streams (the server's
        // `grpc_max_streams_per_connection`): a new one every 50 viewers.
        if i % 50 == 0 {
            remote_client = two.client().await;
        }
        let mut joiner = Viewer::spectator(&mut remote_client, &game.id, "joiner")
            .await
            .expect("a spectator on node 2");
        joiner.step().await.expect("the join snapshot");
        player
            .wait_for_frame(joiner.last_frame)
            .await
            .expect("the player at the joiner's frame");
        assert_same_screen(
            player.screen.screen(),
            joiner.screen.screen(),
            &format!("joiner {i} on node 2"),
        );
        viewers.push(joiner);
    }
    let served = metric(
        &metrics_of(one.http_addr),
        "cluster_snapshot_requests_served_total",
    );
    assert_eq!(served, 1.0, "node 1 answered one snapshot request");
    let sent = metrics_of(two.http_addr);
    assert_eq!(
        metric(
            &sent,
            "cluster_snapshot_requests_sent_total{cause=\"join\"}"
        ),
        1.0
    );
    assert_eq!(metric(&sent, "cluster_mirrors_active"), 1.0);
    // The frames drawn between the joins crossed: their lag is measured.
    assert!(
        metric(&sent, "cluster_mirror_lag_seconds_count") >= 19.0,
        "{sent}"
    );
    two.shutdown().await;
    one.shutdown().await;
}

/// A player who reaches the wrong node is told which node runs the game,
/// nothing reaches the game from there, and a stopped node's games leave
/// the other nodes' listings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playing_stays_on_the_games_node_and_a_stopped_nodes_games_vanish() {
    let nats = Nats::start(1).await;
    let one = node("one", &nats.urls[0]).await;
    let two = node("two", &nats.urls[0]).await;
    let game = one.start_game("alice", "test").await;
    wait_until_listed(&two, &game.id).await;
    // Node 2's own alice (accounts are each node's) gets the same user id.
    let token = two.account("alice").await;
    let mut remote_client = two.client().await;
    let elsewhere = pb::GameSession {
        id: game.id.clone(),
        ..game.session.clone()
    };
    let refused = Viewer::player(
        &mut remote_client,
        &Game {
            session: elsewhere,
            token: token.clone(),
        },
    )
    .await;
    let status = refused.err().expect("playing on node 2 is refused");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);
    assert!(
        status.message().contains("node one"),
        "the player is told where: {}",
        status.message()
    );
    let stop = remote_client
        .stop_game_session(authed(
            pb::StopGameSessionRequest {
                session_id: game.id.clone(),
                reason: "from node 2".into(),
                force: true,
            },
            &token,
        ))
        .await;
    assert_eq!(status_code(stop), tonic::Code::FailedPrecondition);
    assert!(one.manager.get_local(&game.id).is_ok(), "the game runs on");

    // `GET /sessions` on node 2 lists node 1's game, until node 1 stops.
    let (_, listed) = http_get(two.http_addr, "/sessions");
    assert!(listed.contains(&game.id), "/sessions on node 2: {listed}");
    let (_, status) = http_get(two.http_addr, "/status.txt");
    assert!(
        status.starts_with("alice#test#"),
        "/status.txt on node 2: {status}"
    );
    one.shutdown().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, listed) = http_get(two.http_addr, "/sessions");
        if !listed.contains(&game.id) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 1's game is still listed on node 2"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    two.shutdown().await;
}

/// Over SSH too: node 2's watch menu lists node 1's game, and watching it
/// there shows the player's screen, its frames and its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_watcher_on_another_node_sees_the_players_screen() {
    use common::ssh::{Login, SshTerminal};
    let nats = Nats::start(1).await;
    let one = node("one", &nats.urls[0]).await;
    let two = node("two", &nats.urls[0]).await;
    let mut client = one.client().await;
    let game = one.start_game("alice", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"ff").await;
    player.wait_for_text("frame 000002").await.expect("frames");
    wait_until_listed(&two, &game.id).await;

    let mut t = SshTerminal::connect(two.ssh_addr, "guest", Login::None, (80, 24))
        .await
        .expect("an anonymous SSH login on node 2");
    t.wait_for("=>").await;
    t.send(b"w").await;
    t.wait_for("alice").await;
    let menu = t.contents();
    assert!(
        menu.contains("a)   alice            TEST    80x24"),
        "{menu}"
    );
    t.send(b"a").await;
    let same = |t: &SshTerminal, player: &Viewer| t.rows(80, 24) == player.rows();
    t.wait_until("the player's screen", |t| same(t, &player))
        .await;
    player.send(b"f").await;
    player.wait_for_text("frame 000003").await.expect("frame");
    t.wait_until("frame 3 on node 2", |t| same(t, &player))
        .await;
    player.send(b"q").await;
    t.wait_for("alice's TEST game has ended.").await;
    two.shutdown().await;
    one.shutdown().await;
}

/// NATS stalls (its server stopped with SIGSTOP) while the game bursts: the
/// player gets the whole burst at once (the game's node never waits on
/// NATS), the relay falls behind, and when NATS runs again it publishes the
/// screen: node 2's viewer is resynced and ends on the player's screen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_nats_holds_up_only_the_relay_which_resumes_with_a_snapshot() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let nats = Nats::start(1).await;
    let one = start_server({
        let url = nats.urls[0].clone();
        move |c| {
            c.games
                .push(testgame("burst", &["--burst", "60000", "--pad", "16"]));
            c.cluster = Some(ClusterConfig {
                node_id: "one".into(),
                nats_urls: vec![url],
                credentials: None,
                mirror_linger: Duration::from_secs(30),
                account_replicas: 1,
            });
        }
    })
    .await;
    let two = node("two", &nats.urls[0]).await;
    let mut client = one.client().await;
    let game = one.start_game("alice", "burst").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    wait_until_listed(&two, &game.id).await;
    let mut remote_client = two.client().await;
    let mut remote = Viewer::spectator(&mut remote_client, &game.id, "remote")
        .await
        .expect("a spectator on node 2");
    remote.step().await.expect("the join snapshot");

    let pid = Pid::from_raw(i32::try_from(nats.children[0].id()).expect("a pid"));
    kill(pid, Signal::SIGSTOP).expect("stop nats-server");
    player.send(b"b").await;
    let burst = player.wait_for_text("BURST-DONE 60000").await;
    kill(pid, Signal::SIGCONT).expect("continue nats-server");
    burst.expect("the player gets the burst while NATS is stopped");
    let hub = one.hub(&game.id);
    player.catch_up(&hub).await.expect("the player caught up");
    remote
        .wait_for_text("BURST-DONE 60000")
        .await
        .expect("node 2 after NATS runs again");
    remote.catch_up(&hub).await.expect("node 2 caught up");
    assert_same_screen(player.screen.screen(), remote.screen.screen(), "node 2");
    assert!(remote.resyncs() >= 1, "node 2's viewer was resynced");
    // The relay fell behind and published the screen in place of the frames.
    let relay_resyncs = metric(&metrics_of(one.http_addr), "cluster_relay_resyncs_total");
    assert!(relay_resyncs >= 1.0, "the relay published a snapshot");
    two.shutdown().await;
    one.shutdown().await;
}

/// A mirror goes away a while after its last viewer on its node left; the
/// next viewer there makes a new one, which asks the game's node again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_goes_away_after_its_last_viewer_and_comes_back_with_the_next() {
    let nats = Nats::start(1).await;
    let one = node("one", &nats.urls[0]).await;
    let two = node_lingering("two", &nats.urls[0], Duration::from_secs(1)).await;
    let mut client = one.client().await;
    let game = one.start_game("alice", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    wait_until_listed(&two, &game.id).await;
    let mut remote_client = two.client().await;
    let mut first = Viewer::spectator(&mut remote_client, &game.id, "first")
        .await
        .expect("a spectator on node 2");
    first.step().await.expect("the join snapshot");
    assert_eq!(
        metric(&metrics_of(two.http_addr), "cluster_mirrors_active"),
        1.0
    );
    drop(first);
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric(&metrics_of(two.http_addr), "cluster_mirrors_active") != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 2 still mirrors the game nobody there watches"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    player.send(b"f").await;
    player.wait_for_text("frame 000001").await.expect("a frame");
    let mut second = Viewer::spectator(&mut remote_client, &game.id, "second")
        .await
        .expect("a spectator on node 2 again");
    second.step().await.expect("the join snapshot");
    player
        .wait_for_frame(second.last_frame)
        .await
        .expect("the player at the joiner's frame");
    assert_same_screen(
        player.screen.screen(),
        second.screen.screen(),
        "the new mirror",
    );
    let sent = metrics_of(two.http_addr);
    assert_eq!(
        metric(
            &sent,
            "cluster_snapshot_requests_sent_total{cause=\"join\"}"
        ),
        2.0
    );
    assert_eq!(metric(&sent, "cluster_mirrors_active"), 1.0);
    two.shutdown().await;
    one.shutdown().await;
}

/// A browser on node 2 watches node 1's game: the lobby lists it, the page
/// starts on the player's screen with node 1's frame ids, and follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_on_another_node_watches_the_game() {
    let nats = Nats::start(1).await;
    let one = node("one", &nats.urls[0]).await;
    let two = node("two", &nats.urls[0]).await;
    let mut client = one.client().await;
    let game = one.start_game("wally", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"ffa").await;
    player
        .wait_for_text("ALTERNATE SCREEN")
        .await
        .expect("the player's screen");
    let last = one.hub(&game.id).last_frame_id().get();
    player.wait_for_frame(last).await.expect("every frame");
    wait_until_listed(&two, &game.id).await;

    let mut browser = common::browser::Browser::launch(1200, 800).await;
    browser.goto(&format!("http://{}/", two.http_addr)).await;
    browser
        .wait_for(
            "node 1's game in node 2's lobby",
            "document.getElementById('games').textContent.includes('wally')",
        )
        .await;
    browser
        .goto(&format!("http://{}/watch/{}", two.http_addr, game.id))
        .await;
    browser
        .wait_for(
            "the player's screen on node 2",
            &format!("document.getElementById('screen').dataset.frame === '{last}'"),
        )
        .await;
    assert_eq!(browser.terminal_rows().await, player.rows());
    // Live: the next frames, with node 1's ids.
    player.send(b"Af").await;
    player.wait_for_text("frame 000003").await.expect("frame 3");
    let last = one.hub(&game.id).last_frame_id().get();
    player.wait_for_frame(last).await.expect("every frame");
    browser
        .wait_for(
            "the next frames on node 2",
            &format!("document.getElementById('screen').dataset.frame === '{last}'"),
        )
        .await;
    assert_eq!(browser.terminal_rows().await, player.rows());
    browser.screenshot("cluster-remote-watch").await;
    two.shutdown().await;
    one.shutdown().await;
}
