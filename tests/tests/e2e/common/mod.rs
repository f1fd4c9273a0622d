//! Shared test harness: a real dgate server on 127.0.0.1:0 running the real
//! test game in real PTYs, and a gRPC viewer that keeps its own screen model.

#![allow(dead_code)]

pub mod browser;
pub mod ssh;
pub mod tmux;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use dgate_proto::auth as auth_pb;
use dgate_proto::auth::auth_service_client::AuthServiceClient;
use dgate_proto::pb;
use dgate_proto::pb::game_io_request::Request as In;
use dgate_proto::pb::game_io_response::Response as Out;
use dgate_proto::pb::game_service_client::GameServiceClient;
use dgate_server::config::{BinaryConfig, Config, GameConfig, TermSize};
use dgate_server::{Listeners, SessionManager};
use dgate_term::ScreenModel;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

/// Tests that load the machine on purpose take turns: the load tool's runs
/// (`bench::`) and the cluster's bursts with a node or a NATS server
/// stopped (`cluster_failures::`). Beside each other on two cores each
/// starves the other's player, and what they measure is each other.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long any one wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(30);

pub type Client = GameServiceClient<Channel>;

/// The source address of stranger `n` (1 and up): 127.0.0.(1+n). Loopback
/// answers every 127/8 address, so a test can tell per-address limits from
/// global ones; 127.0.0.1 is a trusted address in the default config.
pub fn stranger(n: u8) -> std::net::IpAddr {
    std::net::Ipv4Addr::new(127, 0, 0, 1 + n).into()
}

/// A TCP connection to `to` from `source`.
pub async fn tcp_from(
    source: std::net::IpAddr,
    to: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(to).await
}

/// A gRPC channel to `server` whose connections come from `source`.
pub async fn channel_from(source: std::net::IpAddr, server: SocketAddr) -> Channel {
    let connector = tower::service_fn(move |_: tonic::transport::Uri| async move {
        tcp_from(source, server)
            .await
            .map(hyper_util::rt::TokioIo::new)
    });
    tonic::transport::Endpoint::from_shared(format!("http://{server}"))
        .expect("endpoint")
        .connect_with_connector(connector)
        .await
        .expect("connect from a stranger's address")
}

pub fn testgame_path() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_dgate-testgame"))
}

/// The `dgate`, `dgate-server` and `dgate-bench` binaries, built beside the tests.
///
/// Cargo builds only this package's binaries for its tests, so the first call
/// builds the other packages' binaries (a no-op when they are up to date).
pub fn workspace_binary(name: &str) -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory")
        .to_owned();
    BUILT.get_or_init(|| {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo
            .args([
                "build",
                "--quiet",
                "-p",
                "dgate-server",
                "-p",
                "dgate-cli",
                "-p",
                "dgate-bench",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        if profile_dir.ends_with("release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "building the dgate binaries failed");
    });
    profile_dir.join(name)
}

/// A game entry for the test game with extra arguments.
pub fn testgame(id: &str, args: &[&str]) -> GameConfig {
    GameConfig {
        id: id.into(),
        name: format!("Test game {id}"),
        short_name: "TEST".into(),
        binary: BinaryConfig {
            path: testgame_path(),
            args: args.iter().map(|s| (*s).to_owned()).collect(),
            working_directory: Some("%d/games/%u".into()),
        },
        environment: [("HOME".to_owned(), "%d/users/%u".to_owned())].into(),
        run_as: None,
        sandbox: Default::default(),
        writable: Vec::new(),
        rc_file: None,
        rc_template: None,
        rc_default: None,
        rc_public: false,
        mail_spool: None,
        extra_info_file: None,
        where_file: None,
        hooks: Default::default(),
        inprogress_dir: None,
        published: Default::default(),
    }
}

pub struct TestServer {
    pub grpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub ssh_addr: SocketAddr,
    /// Where `/metrics` is served when the config asks for it apart.
    pub metrics_addr: Option<SocketAddr>,
    pub manager: SessionManager,
    pub data_dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

/// The default test config: the embedded default (NetHack included), with a
/// temporary data dir, the test game as `test`, and a `missing` game whose
/// binary does not exist. `tweak` changes anything else.
pub async fn start_server(tweak: impl FnOnce(&mut Config)) -> TestServer {
    let data_dir = tempfile::tempdir().expect("temporary data dir");
    let mut config = Config::embedded();
    config.data_dir = data_dir.path().to_owned();
    config.session_management.ttyrec.directory = data_dir.path().join("ttyrec");
    config.games.push(testgame("test", &[]));
    let mut missing = testgame("missing", &[]);
    missing.binary.path = PathBuf::from("/nonexistent/dgate/game");
    config.games.push(missing);
    tweak(&mut config);

    let grpc = TcpListener::bind("127.0.0.1:0").await.expect("bind gRPC");
    let http = TcpListener::bind("127.0.0.1:0").await.expect("bind HTTP");
    let ssh = TcpListener::bind("127.0.0.1:0").await.expect("bind SSH");
    let grpc_addr = grpc.local_addr().expect("gRPC address");
    let http_addr = http.local_addr().expect("HTTP address");
    let ssh_addr = ssh.local_addr().expect("SSH address");
    let ssh = config.ssh.enabled.then_some(ssh);
    let metrics = match config.server.metrics_listen {
        Some(_) => Some(
            TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind metrics"),
        ),
        None => None,
    };
    let metrics_addr = metrics
        .as_ref()
        .map(|m| m.local_addr().expect("metrics address"));
    let manager = SessionManager::new(std::sync::Arc::new(config));
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(dgate_server::serve(
        manager.clone(),
        Listeners {
            grpc,
            http,
            ssh,
            metrics,
        },
        async {
            let _ = rx.await;
        },
    ));
    TestServer {
        grpc_addr,
        http_addr,
        ssh_addr,
        metrics_addr,
        manager,
        data_dir,
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl TestServer {
    pub fn url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    pub async fn client(&self) -> Client {
        GameServiceClient::connect(self.url())
            .await
            .expect("connect to the test server")
    }

    /// A client with a small HTTP/2 window, so that a viewer that stops
    /// reading stalls the server's sends quickly.
    pub async fn small_window_client(&self) -> Client {
        let channel = tonic::transport::Endpoint::from_shared(self.url())
            .expect("endpoint")
            .initial_stream_window_size(Some(16 * 1024))
            .initial_connection_window_size(Some(16 * 1024))
            .http2_adaptive_window(false)
            .connect()
            .await
            .expect("connect");
        GameServiceClient::new(channel)
    }

    /// The hub of an active session (to know its latest frame id).
    pub fn hub(&self, session_id: &str) -> std::sync::Arc<dgate_server::broadcast::Hub> {
        std::sync::Arc::clone(&self.manager.get(session_id).expect("an active session").hub)
    }

    /// Stops the server the way SIGTERM does and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(WAIT, task)
                .await
                .expect("server shut down in time")
                .expect("server task")
                .expect("server result");
        }
    }
}

/// A started game and its owner's login token.
#[derive(Debug, Clone)]
pub struct Game {
    pub session: pb::GameSession,
    pub token: String,
}

impl std::ops::Deref for Game {
    type Target = pb::GameSession;
    fn deref(&self) -> &pb::GameSession {
        &self.session
    }
}

/// `message` with `authorization: Bearer <token>`.
pub fn authed<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ASCII token"),
    );
    request
}

/// The password the tests give every account.
pub fn password_of(username: &str) -> Vec<u8> {
    format!("password of {username}").into_bytes()
}

/// Registers `username` (unless it exists) and logs in: the token.
pub async fn account(url: &str, username: &str) -> String {
    let mut auth = AuthServiceClient::connect(url.to_owned())
        .await
        .expect("connect");
    let registered = auth
        .register(auth_pb::RegisterRequest {
            username: username.into(),
            password: password_of(username).into(),
            email: String::new(),
        })
        .await;
    if let Err(status) = registered {
        assert_eq!(
            status.code(),
            tonic::Code::AlreadyExists,
            "register {username}: {status:?}"
        );
    }
    auth.login(auth_pb::LoginRequest {
        username: username.into(),
        password: password_of(username).into(),
    })
    .await
    .expect("login")
    .into_inner()
    .token
}

/// Logs `username` in (registering it first) and starts `game_id` as them.
pub async fn start_game_at(
    url: &str,
    username: &str,
    game_id: &str,
    size: Option<(u32, u32)>,
) -> Game {
    let token = account(url, username).await;
    let mut client = GameServiceClient::connect(url.to_owned())
        .await
        .expect("connect");
    let request = pb::StartGameSessionRequest {
        user_id: 0,
        username: String::new(),
        game_id: game_id.into(),
        terminal_size: size.map(|(width, height)| pb::TerminalSize { width, height }),
    };
    let session = client
        .start_game_session(authed(request, &token))
        .await
        .expect("start game")
        .into_inner()
        .session
        .expect("session in response");
    Game { session, token }
}

impl TestServer {
    pub async fn account(&self, username: &str) -> String {
        account(&self.url(), username).await
    }

    pub async fn start_game(&self, username: &str, game_id: &str) -> Game {
        start_game_at(&self.url(), username, game_id, None).await
    }

    pub async fn start_game_sized(
        &self,
        username: &str,
        game_id: &str,
        size: Option<(u32, u32)>,
    ) -> Game {
        start_game_at(&self.url(), username, game_id, size).await
    }
}

/// Asks the server to stop a game, as its owner (SIGHUP, then SIGKILL).
pub async fn stop_game(client: &mut Client, game: &Game) {
    let request = pb::StopGameSessionRequest {
        session_id: game.id.clone(),
        reason: "test".into(),
        force: false,
    };
    client
        .stop_game_session(authed(request, &game.token))
        .await
        .expect("stop");
}

/// What a viewer has seen, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Snapshot {
        frame_id: u64,
        reason: i32,
    },
    Frame(u64),
    Resize(u32, u32),
    Exit(i32),
    Timeout,
    ServerShutdown,
    Disconnected(String),
    /// A message to the player: (sender, text, announcement).
    Notice(String, String, bool),
}

/// One StreamGameIO stream, as a player or a spectator, with the screen its
/// terminal would show.
pub struct Viewer {
    pub session_id: String,
    pub input: mpsc::Sender<pb::GameIoRequest>,
    pub stream: Streaming<pb::GameIoResponse>,
    /// The viewer's terminal: the server's own screen model (judged against
    /// another terminal in `dgate_term::vt`'s tests, and against tmux here).
    pub screen: ScreenModel,
    pub seen: Vec<Seen>,
    pub connected: pb::ConnectPtyResponse,
    pub last_frame: u64,
    pub ended: bool,
    /// Every frame as received: id, timestamp, bytes.
    pub frames: Vec<(u64, std::time::SystemTime, bytes::Bytes)>,
    /// The chat as this stream was given it, answers to it included.
    pub chat: Vec<pb::ChatEvent>,
    /// Who watches, as last told: names and the anonymous count.
    pub audience: Option<(Vec<String>, u32)>,
}

fn connect_request(session_id: &str, username: &str, spectator_id: &str) -> pb::GameIoRequest {
    pb::GameIoRequest {
        request: Some(In::Connect(pb::ConnectPtyRequest {
            session_id: session_id.into(),
            terminal_size: Some(pb::TerminalSize {
                width: 80,
                height: 24,
            }),
            term_type: "xterm-256color".into(),
            spectator_id: spectator_id.into(),
            username: username.into(),
        })),
    }
}

/// Opens a stream (with a token, when given): sends `first` and waits for the
/// server's answer.
pub async fn open_stream(
    client: &mut Client,
    token: Option<&str>,
    first: pb::GameIoRequest,
) -> Result<
    (
        mpsc::Sender<pb::GameIoRequest>,
        Streaming<pb::GameIoResponse>,
    ),
    Status,
> {
    let (tx, rx) = mpsc::channel(64);
    tx.send(first).await.expect("queue the first request");
    let requests = ReceiverStream::new(rx);
    let request = match token {
        Some(token) => authed(requests, token),
        None => tonic::Request::new(requests),
    };
    let stream = client.stream_game_io(request).await?.into_inner();
    Ok((tx, stream))
}

impl Viewer {
    pub async fn player(client: &mut Client, game: &Game) -> Result<Self, Status> {
        Self::open(
            client,
            Some(&game.token),
            &game.id,
            connect_request(&game.id, "", ""),
        )
        .await
    }

    /// An anonymous spectator (`_name` only labels it in the test).
    pub async fn spectator(
        client: &mut Client,
        session_id: &str,
        _name: &str,
    ) -> Result<Self, Status> {
        Self::spectator_with(client, session_id, None).await
    }

    /// A spectator, logged in when `token` is given.
    pub async fn spectator_with(
        client: &mut Client,
        session_id: &str,
        token: Option<&str>,
    ) -> Result<Self, Status> {
        let request = pb::AddSpectatorRequest {
            session_id: session_id.into(),
            spectator_user_id: 0,
            spectator_username: String::new(),
        };
        let request = match token {
            Some(token) => authed(request, token),
            None => tonic::Request::new(request),
        };
        let spectator = client
            .add_spectator(request)
            .await?
            .into_inner()
            .spectator
            .expect("spectator info");
        Self::open(
            client,
            token,
            session_id,
            connect_request(session_id, "", &spectator.spectator_id),
        )
        .await
    }

    async fn open(
        client: &mut Client,
        token: Option<&str>,
        session_id: &str,
        first: pb::GameIoRequest,
    ) -> Result<Self, Status> {
        let (input, mut stream) = open_stream(client, token, first).await?;
        let connected = match stream.message().await? {
            Some(pb::GameIoResponse {
                response: Some(Out::Connected(c)),
            }) => c,
            other => panic!("expected `connected` first, got {other:?}"),
        };
        let size = connected.terminal_size.unwrap_or_default();
        Ok(Self {
            session_id: session_id.into(),
            input,
            stream,
            screen: ScreenModel::new(term_size(size).expect("a valid size")),
            seen: Vec::new(),
            connected,
            last_frame: 0,
            ended: false,
            frames: Vec::new(),
            chat: Vec::new(),
            audience: None,
        })
    }

    /// Says `text` in the game's chat.
    pub async fn say(&self, text: &str) {
        self.input
            .send(pb::GameIoRequest {
                request: Some(In::Chat(pb::ChatSend { text: text.into() })),
            })
            .await
            .expect("send a chat line");
    }

    /// Reads until a chat event satisfies `wanted`; that event.
    pub async fn wait_for_chat(
        &mut self,
        wanted: impl Fn(&pb::ChatEvent) -> bool,
    ) -> anyhow::Result<pb::ChatEvent> {
        loop {
            if let Some(event) = self.chat.iter().find(|e| wanted(e)) {
                return Ok(event.clone());
            }
            if !self.step_any().await? {
                bail!("the stream ended; chat so far: {:?}", self.chat);
            }
        }
    }

    /// Sends keystrokes (as the player they reach the game).
    pub async fn send(&self, keys: &[u8]) {
        self.input
            .send(pb::GameIoRequest {
                request: Some(In::Input(pb::PtyInput {
                    session_id: self.session_id.clone(),
                    data: keys.to_vec().into(),
                })),
            })
            .await
            .expect("send input");
    }

    /// Sends an in-stream resize (the player's reaches the game; a
    /// spectator's is ignored).
    pub async fn send_resize(&self, width: u32, height: u32) {
        self.input
            .send(pb::GameIoRequest {
                request: Some(In::Resize(pb::PtyResize {
                    size: Some(pb::TerminalSize { width, height }),
                })),
            })
            .await
            .expect("send resize");
    }

    /// Reads messages until one about the game (a frame, a snapshot, an
    /// event, a notice) and applies them; the chat and the audience on the
    /// way are kept too. `Ok(false)` when the stream ended.
    pub async fn step(&mut self) -> anyhow::Result<bool> {
        loop {
            let chat = self.chat.len();
            let audience = self.audience.clone();
            let more = self.step_any().await?;
            if !more || (self.chat.len() == chat && self.audience == audience) {
                return Ok(more);
            }
        }
    }

    /// Reads one message, whatever it is, and applies it; `Ok(false)` when
    /// the stream ended.
    pub async fn step_any(&mut self) -> anyhow::Result<bool> {
        let message = tokio::time::timeout(WAIT, self.stream.message())
            .await
            .with_context(|| {
                format!(
                    "no message in time; screen:\n{}",
                    self.screen.screen().contents()
                )
            })??;
        let Some(pb::GameIoResponse {
            response: Some(response),
        }) = message
        else {
            self.ended = true;
            return Ok(false);
        };
        match response {
            Out::Snapshot(s) => {
                let size = s.size.unwrap_or_default();
                // A reset terminal of the snapshot's size, then its bytes.
                self.screen = ScreenModel::new(term_size(size)?);
                self.screen.process(&s.data);
                self.last_frame = s.frame_id;
                self.seen.push(Seen::Snapshot {
                    frame_id: s.frame_id,
                    reason: s.reason,
                });
            }
            Out::Output(o) => {
                if o.frame_id != self.last_frame + 1 {
                    bail!(
                        "frame {} after frame {}: a gap or a repeat",
                        o.frame_id,
                        self.last_frame
                    );
                }
                self.last_frame = o.frame_id;
                self.screen.process(&o.data);
                let time = o
                    .timestamp
                    .and_then(|t| std::time::SystemTime::try_from(t).ok());
                self.frames.push((
                    o.frame_id,
                    time.context("a frame without a timestamp")?,
                    o.data.clone(),
                ));
                self.seen.push(Seen::Frame(o.frame_id));
            }
            Out::Event(e) => match e.r#type() {
                pb::PtyEventType::Resize => {
                    let size = e.size.unwrap_or_default();
                    self.screen.resize(term_size(size)?);
                    self.seen.push(Seen::Resize(size.width, size.height));
                }
                pb::PtyEventType::ProcessExit => self.seen.push(Seen::Exit(e.exit_code)),
                pb::PtyEventType::SpectatorTimeout => self.seen.push(Seen::Timeout),
                pb::PtyEventType::ServerShutdown => self.seen.push(Seen::ServerShutdown),
                other => bail!("unexpected event {other:?}"),
            },
            Out::Disconnected(d) => self.seen.push(Seen::Disconnected(d.reason)),
            Out::Notice(n) => self
                .seen
                .push(Seen::Notice(n.sender, n.text, n.announcement)),
            Out::Chat(line) => self.chat.push(line),
            Out::Audience(a) => self.audience = Some((a.names, a.anonymous)),
            Out::Connected(c) => bail!("a second `connected`: {c:?}"),
        }
        Ok(true)
    }

    /// Waits until the test game has drawn its title: it reads keys in raw mode
    /// from then on (before, the terminal would echo them).
    pub async fn ready(&mut self) {
        self.wait_for_text("dgate test game")
            .await
            .expect("the test game started");
    }

    /// Reads until the screen contains `text`.
    pub async fn wait_for_text(&mut self, text: &str) -> anyhow::Result<()> {
        while !self.screen.screen().contents().contains(text) {
            if !self.step().await? {
                bail!(
                    "the stream ended before {text:?} appeared; screen:\n{}",
                    self.screen.screen().contents()
                );
            }
        }
        Ok(())
    }

    /// Reads until it has been given frame `id` (directly or by a snapshot).
    pub async fn wait_for_frame(&mut self, id: u64) -> anyhow::Result<()> {
        while self.last_frame < id {
            if !self.step().await? {
                bail!(
                    "the stream ended at frame {} before frame {id}",
                    self.last_frame
                );
            }
        }
        Ok(())
    }

    /// Reads until it has every frame the hub has published so far.
    pub async fn catch_up(&mut self, hub: &dgate_server::broadcast::Hub) -> anyhow::Result<()> {
        self.wait_for_frame(hub.last_frame_id().get()).await
    }

    /// Reads until the stream ends.
    /// The viewer's screen as rows of text, trailing blanks removed.
    pub fn rows(&self) -> Vec<String> {
        let (_, cols) = self.screen.screen().size();
        self.screen
            .screen()
            .rows(0, cols)
            .map(|r| r.trim_end().to_owned())
            .collect()
    }

    pub async fn read_to_end(&mut self) -> anyhow::Result<()> {
        while self.step().await? {}
        Ok(())
    }

    pub fn snapshots(&self) -> Vec<&Seen> {
        self.seen
            .iter()
            .filter(|s| matches!(s, Seen::Snapshot { .. }))
            .collect()
    }

    pub fn resyncs(&self) -> usize {
        self.seen
            .iter()
            .filter(|s| matches!(s, Seen::Snapshot { reason, .. } if *reason == pb::SnapshotReason::Resync as i32))
            .count()
    }
}

fn term_size(size: pb::TerminalSize) -> anyhow::Result<TermSize> {
    let (cols, rows) = (u16::try_from(size.width)?, u16::try_from(size.height)?);
    anyhow::ensure!(cols > 0 && rows > 0, "a zero terminal size");
    Ok(TermSize::new(cols, rows))
}

/// Joins `session_id` as a new spectator and asserts at once, at the frame
/// its snapshot covers, that its screen equals `player`'s.
pub async fn join_and_compare(
    client: &mut Client,
    player: &mut Viewer,
    session_id: &str,
    what: &str,
) -> Viewer {
    let mut joiner = Viewer::spectator(client, session_id, what)
        .await
        .expect("spectator");
    joiner.step().await.expect("join snapshot");
    assert!(
        matches!(joiner.seen[0], Seen::Snapshot { .. }),
        "a joiner starts with a snapshot"
    );
    player
        .wait_for_frame(joiner.last_frame)
        .await
        .expect("the player at the same frame");
    assert_same_screen(player.screen.screen(), joiner.screen.screen(), what);
    joiner
}

/// Asserts two terminals show the same thing: every cell with its colours and
/// attributes, the cursor, the alternate screen and the input modes.
pub fn assert_same_screen(
    expected: &dgate_term::vt::Terminal,
    actual: &dgate_term::vt::Terminal,
    what: &str,
) {
    assert_eq!(expected.size(), actual.size(), "{what}: size");
    assert_eq!(
        expected.contents_formatted(),
        actual.contents_formatted(),
        "{what}: cells differ\nexpected:\n{}\nactual:\n{}",
        expected.contents(),
        actual.contents()
    );
    assert_eq!(
        expected.cursor_position(),
        actual.cursor_position(),
        "{what}: cursor"
    );
    assert_eq!(
        expected.hide_cursor(),
        actual.hide_cursor(),
        "{what}: cursor visibility"
    );
    assert_eq!(
        expected.alternate_screen(),
        actual.alternate_screen(),
        "{what}: alternate screen"
    );
    assert_eq!(
        expected.input_mode_formatted(),
        actual.input_mode_formatted(),
        "{what}: input modes"
    );
}

pub fn status_code<T: std::fmt::Debug>(result: Result<T, Status>) -> tonic::Code {
    match result {
        Ok(v) => panic!("expected an error status, got {v:?}"),
        Err(s) => s.code(),
    }
}

/// Open file descriptors of this process.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// True while a process with this pid exists (zombies included).
pub fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Polls `condition` until it holds or `WAIT` passes (for effects with no event
/// to wait on, such as a thread closing its file descriptors).
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A plain HTTP/1.1 GET: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut socket = std::net::TcpStream::connect(addr).expect("connect");
    write!(
        socket,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("request");
    let mut response = String::new();
    socket.read_to_string(&mut response).expect("response");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// One sample's value from OpenMetrics text (`name{labels}` as written), 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(sample)?
                .strip_prefix(' ')?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Runs `command` with `stdin` as its input and collects what it printed.
pub fn run_with_stdin(mut command: std::process::Command, stdin: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run the binary");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait")
}

/// `dgate ARGS` against `url` as the user whose config and state live in `home`.
/// The environment of a terminal running `dgate` as the user of `home`.
pub fn dgate_env(home: &Path, url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("DGATE_SERVER", url.to_owned()),
        ("XDG_CONFIG_HOME", home.join("config").display().to_string()),
        ("XDG_STATE_HOME", home.join("state").display().to_string()),
    ]
}

/// `dgate login` as `username` (an account made by [`account`]) for the
/// user of `home`; that user's environment, as [`dgate_env`].
pub fn dgate_logged_in(home: &Path, url: &str, username: &str) -> Vec<(&'static str, String)> {
    let login = dgate_as(
        home,
        url,
        &["login", "--username", username, "--password-stdin"],
        &format!("{}\n", String::from_utf8_lossy(&password_of(username))),
    );
    assert!(login.status.success(), "{login:?}");
    dgate_env(home, url)
}

pub fn dgate_as(home: &Path, url: &str, args: &[&str], stdin: &str) -> std::process::Output {
    let mut command = std::process::Command::new(workspace_binary("dgate"));
    command
        .args(args)
        .env("DGATE_SERVER", url)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"));
    run_with_stdin(command, stdin)
}
