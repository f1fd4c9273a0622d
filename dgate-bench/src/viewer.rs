//! The viewers' side of each transport, as one `Source` of what arrives:
//! snapshots, frames, resizes and the end. gRPC gives raw terminal bytes with
//! frame ids; the WebSocket gives raw terminal bytes too (binary messages,
//! a page's protocol: `dgate-server/src/web/wire.rs`), its frame ids counted
//! from each snapshot's. gRPC viewers also give the game's chat lines, for
//! `run --chat`.
//! A source that checks the screen keeps a screen of its own, so the run can
//! compare it with the player's at the end.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, anyhow, bail};
use dgate_proto::pb;
use dgate_proto::pb::game_io_response::Response;
use dgate_proto::pb::game_service_client::GameServiceClient;
use dgate_term::{ScreenModel, TermSize};
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

/// One thing a viewer received.
#[derive(Debug)]
pub enum Got {
    Snapshot {
        frame_id: Option<u64>,
        skipped: u64,
        resync: bool,
    },
    Frame {
        frame_id: Option<u64>,
    },
    /// A line of the game's chat; `sent_micros` is when the server said it
    /// (its `sent_at`), `answer` the server's answer to this stream alone.
    Chat {
        id: u64,
        sent_micros: u64,
        history: bool,
        answer: bool,
    },
    /// A resize or a status line: no terminal output.
    Other,
    Ended(String),
}

/// What arrives for one viewer; `payload` is the bytes of the last `Got`,
/// where the stamps are.
pub trait Source: Send {
    fn next(&mut self) -> impl Future<Output = anyhow::Result<Got>> + Send;
    fn payload(&self) -> &[u8];
    /// The screen as text rows, for sources that keep one.
    fn screen_rows(&self) -> Option<Vec<String>>;
    /// Whether frames carry the server's ids (else loss is told by stamps).
    fn frame_ids(&self) -> bool {
        true
    }
}

pub fn authed<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token
        && let Ok(value) = format!("Bearer {token}").parse()
    {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// A gRPC connection with HTTP/2's standard 64 KiB windows (hyper's client
/// would take 2 MiB a stream): a viewer that stops reading soon stops the
/// server's sending, as a real slow client does.
pub async fn channel(grpc: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{grpc}"))?
        .initial_stream_window_size(65_535)
        .initial_connection_window_size(65_535)
        .connect()
        .await?)
}

/// A `StreamGameIO` stream, as a spectator or as the player.
pub struct GrpcSource {
    stream: tonic::Streaming<pb::GameIoResponse>,
    /// Keeps the request side open; the player types through it.
    pub input: mpsc::Sender<pb::GameIoRequest>,
    payload: bytes::Bytes,
    screen: Option<ScreenModel>,
}

impl GrpcSource {
    /// An anonymous spectator: `AddSpectator`, then the stream.
    pub async fn spectator(
        channel: Channel,
        session_id: &str,
        check: bool,
    ) -> anyhow::Result<Self> {
        let mut client = GameServiceClient::new(channel);
        let spectator = client
            .add_spectator(pb::AddSpectatorRequest {
                session_id: session_id.into(),
                ..Default::default()
            })
            .await
            .map_err(|s| anyhow!("AddSpectator: {}", s.message()))?
            .into_inner()
            .spectator
            .context("AddSpectator returned no spectator")?;
        Self::open(client, None, session_id, spectator.spectator_id, check).await
    }

    pub async fn player(channel: Channel, session_id: &str, token: &str) -> anyhow::Result<Self> {
        let client = GameServiceClient::new(channel);
        Self::open(client, Some(token), session_id, String::new(), true).await
    }

    async fn open(
        mut client: GameServiceClient<Channel>,
        token: Option<&str>,
        session_id: &str,
        spectator_id: String,
        check: bool,
    ) -> anyhow::Result<Self> {
        let (input, queue) = mpsc::channel(8);
        let connect = pb::GameIoRequest {
            request: Some(pb::game_io_request::Request::Connect(
                pb::ConnectPtyRequest {
                    session_id: session_id.into(),
                    terminal_size: Some(pb::TerminalSize {
                        width: 300,
                        height: 100,
                    }),
                    term_type: "xterm-256color".into(),
                    spectator_id,
                    username: String::new(),
                },
            )),
        };
        input.send(connect).await?;
        let mut stream = client
            .stream_game_io(authed(ReceiverStream::new(queue), token))
            .await
            .map_err(|s| anyhow!("StreamGameIO: {}", s.message()))?
            .into_inner();
        match stream.message().await? {
            Some(pb::GameIoResponse {
                response: Some(Response::Connected(c)),
            }) if c.success => {}
            other => bail!("StreamGameIO did not connect: {other:?}"),
        }
        Ok(Self {
            stream,
            input,
            payload: bytes::Bytes::new(),
            screen: check.then(|| ScreenModel::new(TermSize::new(80, 24))),
        })
    }
}

fn size_of(size: Option<&pb::TerminalSize>) -> TermSize {
    size.map_or(TermSize::new(80, 24), |s| {
        TermSize::new(
            u16::try_from(s.width).unwrap_or(80),
            u16::try_from(s.height).unwrap_or(24),
        )
    })
}

impl Source for GrpcSource {
    async fn next(&mut self) -> anyhow::Result<Got> {
        let message = match self.stream.message().await {
            Ok(Some(message)) => message,
            Ok(None) => return Ok(Got::Ended("the stream closed".into())),
            Err(status) => return Ok(Got::Ended(format!("stream error: {}", status.message()))),
        };
        Ok(match message.response {
            Some(Response::Output(out)) => {
                if let Some(screen) = &mut self.screen {
                    screen.process(&out.data);
                }
                self.payload = out.data;
                Got::Frame {
                    frame_id: Some(out.frame_id),
                }
            }
            Some(Response::Snapshot(s)) => {
                if let Some(screen) = &mut self.screen {
                    *screen = ScreenModel::new(size_of(s.size.as_ref()));
                    screen.process(&s.data);
                }
                self.payload = s.data;
                Got::Snapshot {
                    frame_id: Some(s.frame_id),
                    skipped: s.frames_skipped,
                    resync: s.reason == pb::SnapshotReason::Resync as i32,
                }
            }
            Some(Response::Event(event)) => {
                self.payload = bytes::Bytes::new();
                if event.r#type == pb::PtyEventType::Resize as i32 {
                    if let Some(screen) = &mut self.screen {
                        screen.resize(size_of(event.size.as_ref()));
                    }
                    Got::Other
                } else {
                    Got::Ended(format!("event {}: {}", event.r#type, event.message))
                }
            }
            Some(Response::Disconnected(d)) => Got::Ended(format!("disconnected: {}", d.reason)),
            Some(Response::Chat(line)) => {
                self.payload = bytes::Bytes::new();
                let sent_micros = line.sent_at.map_or(0, |t| {
                    u64::try_from(t.seconds).unwrap_or(0) * 1_000_000
                        + u64::try_from(t.nanos / 1000).unwrap_or(0)
                });
                Got::Chat {
                    id: line.id,
                    sent_micros,
                    history: line.history,
                    answer: line.answer,
                }
            }
            Some(Response::Connected(_) | Response::Notice(_) | Response::Audience(_)) | None => {
                self.payload = bytes::Bytes::new();
                Got::Other
            }
        })
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn screen_rows(&self) -> Option<Vec<String>> {
        self.screen.as_ref().map(screen_rows)
    }
}

pub fn screen_rows(screen: &ScreenModel) -> Vec<String> {
    let cols = screen.size().cols;
    screen
        .screen()
        .rows(0, cols)
        .map(|row| row.trim_end().to_owned())
        .collect()
}

/// `/ws/spectate?session=ID` as a browser's page reads it: JSON controls
/// (a `snapshot` announces that the next binary message is a whole screen)
/// and the game's bytes as binary messages, one frame each.
pub struct WsSource {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    payload: bytes::Bytes,
    /// The page's terminal, for a viewer whose screen is checked.
    screen: Option<ScreenModel>,
    /// The last frame's id: the snapshot's, then one more a frame.
    frame_id: u64,
    /// A snapshot was announced: the next binary message is its body.
    announced: Option<(TermSize, u64, u64)>,
}

/// The controls a viewer acts on (the status line is skipped).
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WsControl {
    Snapshot {
        frame_id: u64,
        cols: u16,
        rows: u16,
        skipped: u64,
    },
    Resize {
        cols: u16,
        rows: u16,
    },
    End {
        message: String,
    },
    #[serde(other)]
    Other,
}

impl WsSource {
    pub async fn connect(http: SocketAddr, session_id: &str, check: bool) -> anyhow::Result<Self> {
        let url = format!("ws://{http}/ws/spectate?session={session_id}");
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .with_context(|| format!("WebSocket {url}"))?;
        Ok(Self {
            socket,
            payload: bytes::Bytes::new(),
            screen: check.then(|| ScreenModel::new(TermSize::new(80, 24))),
            frame_id: 0,
            announced: None,
        })
    }
}

impl Source for WsSource {
    async fn next(&mut self) -> anyhow::Result<Got> {
        use tokio_tungstenite::tungstenite::Message;
        loop {
            let message = match self.socket.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Ok(Got::Ended(format!("WebSocket error: {e}"))),
                None => return Ok(Got::Ended("the WebSocket closed".into())),
            };
            let data = match message {
                Message::Binary(data) => data,
                Message::Text(text) => {
                    let control: WsControl = serde_json::from_str(&text)
                        .with_context(|| format!("bad message {text}"))?;
                    self.payload = bytes::Bytes::new();
                    return Ok(match control {
                        WsControl::Snapshot {
                            frame_id,
                            cols,
                            rows,
                            skipped,
                        } => {
                            self.announced = Some((TermSize::new(cols, rows), frame_id, skipped));
                            continue;
                        }
                        WsControl::Resize { cols, rows } => {
                            if let Some(screen) = &mut self.screen {
                                screen.resize(TermSize::new(cols, rows));
                            }
                            Got::Other
                        }
                        WsControl::End { message } => Got::Ended(message),
                        WsControl::Other => Got::Other,
                    });
                }
                _ => continue,
            };
            if let Some((size, frame_id, skipped)) = self.announced.take() {
                if let Some(screen) = &mut self.screen {
                    *screen = ScreenModel::new(size);
                    screen.process(&data);
                }
                self.frame_id = frame_id;
                self.payload = data;
                return Ok(Got::Snapshot {
                    frame_id: Some(frame_id),
                    skipped,
                    resync: skipped > 0,
                });
            }
            if let Some(screen) = &mut self.screen {
                screen.process(&data);
            }
            self.frame_id += 1;
            self.payload = data;
            return Ok(Got::Frame {
                frame_id: Some(self.frame_id),
            });
        }
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn screen_rows(&self) -> Option<Vec<String>> {
        self.screen.as_ref().map(screen_rows)
    }

    /// The ids are counted here, so loss is told by the frames' stamps.
    fn frame_ids(&self) -> bool {
        false
    }
}

/// An anonymous `ssh` viewer: through the menus (`w`, `/` its player's name,
/// `a`) to the game, passed through as the game's own bytes. The server
/// starts the passthrough, and every resync, with a terminal reset (`ESC c`)
/// and the screen; SSH has no frame ids, so loss is counted on stamps.
pub struct SshSource {
    _handle: russh::client::Handle<AcceptAnyHostKey>,
    channel: russh::Channel<russh::client::Msg>,
    payload: bytes::Bytes,
    screen: ScreenModel,
    check: bool,
    snapshots: u64,
}

pub struct AcceptAnyHostKey;

impl russh::client::Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // Loopback only, and the server was started here (or named by you).
        Ok(true)
    }
}

const TERMINAL_RESET: &[u8] = b"\x1bc";

impl SshSource {
    pub async fn connect(
        ssh: SocketAddr,
        player: &str,
        size: TermSize,
        check: bool,
    ) -> anyhow::Result<Self> {
        let config = Arc::new(russh::client::Config::default());
        let mut handle = russh::client::connect(config, ssh, AcceptAnyHostKey).await?;
        let auth = handle.authenticate_none("bench-viewer").await?;
        if !auth.success() {
            bail!("the SSH server refused an anonymous login");
        }
        let channel = handle.channel_open_session().await?;
        channel
            .request_pty(
                true,
                "xterm-256color",
                size.cols.into(),
                size.rows.into(),
                0,
                0,
                &[],
            )
            .await?;
        channel.request_shell(true).await?;
        let mut source = Self {
            _handle: handle,
            channel,
            payload: bytes::Bytes::new(),
            screen: ScreenModel::new(size),
            check,
            snapshots: 0,
        };
        source.menu_until("w) Watch").await?;
        source.channel.data(&b"w"[..]).await?;
        source.menu_until("Watch which game?").await?;
        source
            .channel
            .data(format!("/{player}\r").as_bytes())
            .await?;
        source.menu_until("(1-1 of 1)").await?;
        source.channel.data(&b"a"[..]).await?;
        Ok(source)
    }

    /// Reads the menus until the screen shows `text`.
    async fn menu_until(&mut self, text: &str) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let contents = self.screen.screen().contents();
            if contents.contains(text) {
                return Ok(());
            }
            // The game ended while this viewer walked the menus.
            if contents.contains("No game matches") || contents.contains("No games are in progress")
            {
                bail!("the game has ended before the viewer got to it");
            }
            let message = tokio::time::timeout_at(deadline, self.channel.wait())
                .await
                .map_err(|_| anyhow!("the SSH menu never showed {text:?}"))?;
            match message {
                Some(russh::ChannelMsg::Data { data }) => self.screen.process(&data),
                Some(_) => {}
                None => bail!("the SSH server closed the channel before {text:?}"),
            }
        }
    }
}

impl Source for SshSource {
    async fn next(&mut self) -> anyhow::Result<Got> {
        loop {
            let data = match self.channel.wait().await {
                Some(russh::ChannelMsg::Data { data }) => data,
                Some(russh::ChannelMsg::Eof | russh::ChannelMsg::Close) | None => {
                    return Ok(Got::Ended("the SSH channel closed".into()));
                }
                Some(_) => continue,
            };
            let data = bytes::Bytes::copy_from_slice(&data);
            if let Some(at) = memchr::memmem::rfind(&data, TERMINAL_RESET) {
                let screen = data.slice(at + TERMINAL_RESET.len()..);
                self.screen = ScreenModel::new(self.screen.size());
                self.screen.process(&screen);
                self.payload = screen;
                self.snapshots += 1;
                return Ok(Got::Snapshot {
                    frame_id: None,
                    skipped: 0,
                    resync: self.snapshots > 1,
                });
            }
            self.screen.process(&data);
            self.payload = data;
            return Ok(Got::Frame { frame_id: None });
        }
    }

    fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn screen_rows(&self) -> Option<Vec<String>> {
        self.check.then(|| screen_rows(&self.screen))
    }

    fn frame_ids(&self) -> bool {
        false
    }
}
