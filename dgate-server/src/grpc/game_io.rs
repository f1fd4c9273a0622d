//! `StreamGameIO`: one bidirectional stream per viewer. Who it is (the owner
//! playing, or a registered spectator) is decided by its first message; the
//! viewer's life is [`crate::viewing`]'s, and this module only turns
//! deliveries into protobuf messages and inbound messages into input.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dgate_proto::pb;
use dgate_proto::pb::game_io_request::Request as In;
use dgate_proto::pb::game_io_response::Response as Out;
use tokio_stream::Stream;
use tonic::{Status, Streaming};
use tracing::debug;

use super::convert::{delivery_message, term_size};
use crate::accounts::{Revocation, User};
use crate::broadcast::Delivery;
use crate::broadcast::chat::{ChatItem, ChatLine, ChatReceiver};
use crate::broadcast::spectators::RegistryVersion;
use crate::game::messages::{Notice, Notices};
use crate::game::{Session, SessionManager};
use crate::viewing::chat::{self, Said};
use crate::viewing::{Play, PlayerInput, Transport, Watch};

/// The largest input message a stream accepts.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// How long a new stream may take to send its connect request.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A timeout that never comes (`Instant + Duration::MAX` would overflow).
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The viewer a stream is.
pub enum Viewer {
    Player(Play),
    Spectator(Watch),
}

impl Viewer {
    /// Who the stream's connect request says it is, checked: a spectator
    /// names its `AddSpectator` registration, a player is the owner's token.
    pub fn connect(
        manager: &SessionManager,
        connect: &pb::ConnectPtyRequest,
        caller: Option<User>,
    ) -> Result<Self, Status> {
        if !connect.spectator_id.is_empty() {
            let watch = Watch::claim(
                manager,
                &connect.session_id,
                &connect.spectator_id,
                caller.as_ref(),
                Transport::Grpc,
            )?;
            return Ok(Self::Spectator(watch));
        }
        let Some(user) = caller else {
            return Err(Status::unauthenticated(
                "playing needs the owner's token; watching needs AddSpectator's spectator_id",
            ));
        };
        let session = manager.get(&connect.session_id)?;
        if let Some(node) = session.origin() {
            return Err(crate::game::SessionError::Elsewhere {
                node: node.to_owned(),
            }
            .into());
        }
        if !session.is_owned_by(&user) {
            return Err(Status::permission_denied(
                "neither the session's owner nor a registered spectator (call AddSpectator first)",
            ));
        }
        Ok(Self::Player(Play::attach(
            manager,
            session,
            &user,
            Transport::Grpc,
        )?))
    }

    fn role(&self) -> pb::StreamRole {
        match self {
            Self::Player(_) => pb::StreamRole::Player,
            Self::Spectator(_) => pb::StreamRole::Spectator,
        }
    }

    fn session_id(&self) -> &str {
        match self {
            Self::Player(play) => &play.session().info.id,
            Self::Spectator(watch) => &watch.session().info.id,
        }
    }

    async fn next(&mut self) -> Option<Delivery> {
        match self {
            Self::Player(play) => play.next().await,
            Self::Spectator(watch) => watch.next().await,
        }
    }
}

/// How the inbound half of a stream ended.
enum InputEnd {
    /// `disconnect`, or a spectator's `q`.
    Disconnect(String),
    /// A bad message: the stream ends with this status.
    Refused(Status),
    /// The client closed its side or went away.
    Closed,
}

/// What woke a stream up.
enum Step {
    Shutdown,
    Idle,
    Delivery(Option<Delivery>),
    Notice(Notice),
    Chat(ChatItem),
    Answer(String),
    AudienceCheck,
    Input(InputEnd),
    PushedOut,
    /// The caller's account was banned or its password changed.
    Revoked,
}

/// The event telling a viewer the server is shutting down.
fn shutdown_notice(session_id: &str) -> pb::GameIoResponse {
    message(Out::Event(pb::PtyEvent {
        session_id: session_id.to_owned(),
        r#type: pb::PtyEventType::ServerShutdown as i32,
        message: "the server is shutting down; the game is being saved".into(),
        ..Default::default()
    }))
}

/// The stream's responses, produced as the client reads them: tonic polls the
/// viewer's subscription directly (no task or queue in between), so a client
/// that stops reading stops its subscription, which the hub then resyncs.
/// Dropping the stream (the client gone) drops the viewer, which cleans up.
pub fn responses(
    mut viewer: Viewer,
    caller: Option<User>,
    manager: SessionManager,
    inbound: Streaming<pb::GameIoRequest>,
    revocation: Option<Arc<Revocation>>,
) -> impl Stream<Item = Result<pb::GameIoResponse, Status>> + Send + 'static {
    async_stream::stream! {
        let revoked = revocation.as_ref().map(|r| r.ended().clone()).unwrap_or_default();
        let revoked = revoked.cancelled_owned();
        let id = viewer.session_id().to_owned();
        let size = match &viewer {
            Viewer::Player(play) => play.session().hub.size(),
            Viewer::Spectator(watch) => watch.session().hub.size(),
        };
        yield Ok(message(Out::Connected(pb::ConnectPtyResponse {
            session_id: id.clone(),
            success: true,
            error: String::new(),
            role: viewer.role() as i32,
            terminal_size: Some(super::convert::terminal_size(size)),
        })));
        let (input, pushed_out, timeout) = match &viewer {
            Viewer::Player(play) => (Some(play.input().clone()), play.taken_over().clone(), Duration::MAX),
            Viewer::Spectator(watch) => (
                None,
                watch.removed().clone(),
                // Only spectators time out, and only for lack of game output.
                manager.config().session_management.spectating.spectator_timeout,
            ),
        };
        let is_spectator = input.is_none();
        let session = match &viewer {
            Viewer::Player(play) => Arc::clone(play.session()),
            Viewer::Spectator(watch) => Arc::clone(watch.session()),
        };
        // The chat: its history first, then each line; answers to this
        // stream's own lines; who is watching whenever it changes.
        // Anonymous spectators read it unless `spectating.chat.anonymous_read` is off.
        let reads_chat = caller.is_some()
            || manager.config().session_management.spectating.chat.anonymous_read;
        let (history, mut chat) = if reads_chat {
            let (history, receiver) = session.chat.join();
            (history, Some(receiver))
        } else {
            (Vec::new(), None)
        };
        for line in history {
            yield Ok(chat_event(&line, true));
        }
        let registry = session.spectators.load();
        let mut audience_version = registry.version;
        let mut audience = audience_of(&registry);
        drop(registry);
        yield Ok(message(Out::Audience(audience.clone())));
        let mut audience_check = tokio::time::interval(AUDIENCE_CHECK);
        let (answers_tx, mut answers) = tokio::sync::mpsc::channel::<String>(8);
        let speaker = Speaker {
            session: Arc::clone(&session),
            manager: manager.clone(),
            who: caller,
            answers: answers_tx,
        };
        // Messages for the player; spectators get none.
        let mut notices = match &viewer {
            Viewer::Player(play) => Some(play.session().notices()),
            Viewer::Spectator(_) => None,
        };
        let input = tokio::spawn(read_input(input, speaker, inbound));
        // Aborted however the stream ends.
        let _input = AbortOnDrop(input.abort_handle());
        let mut input = input;
        let shutting_down = manager.shutting_down();
        let shutdown = shutting_down.clone().cancelled_owned();
        // Waited on across iterations, not re-registered for every frame.
        let pushed_out = pushed_out.cancelled_owned();
        tokio::pin!(shutdown, pushed_out, revoked);
        let mut told_of_shutdown = false;
        // The spectator timeout is checked when this timer fires, and
        // re-armed from the last output then: a frame costs an `Instant`,
        // not a timer.
        let mut last_output = tokio::time::Instant::now();
        let idle = tokio::time::sleep_until(last_output + timeout.min(FAR_FUTURE));
        tokio::pin!(idle);
        loop {
            let step = tokio::select! {
                () = &mut shutdown, if !told_of_shutdown => Step::Shutdown,
                () = &mut idle => Step::Idle,
                delivery = viewer.next() => Step::Delivery(delivery),
                notice = next_notice(&mut notices) => Step::Notice(notice),
                item = next_chat(&mut chat) => Step::Chat(item),
                Some(answer) = answers.recv() => Step::Answer(answer),
                _ = audience_check.tick() => Step::AudienceCheck,
                end = &mut input => Step::Input(end.unwrap_or(InputEnd::Closed)),
                () = &mut pushed_out => Step::PushedOut,
                () = &mut revoked => Step::Revoked,
            };
            match step {
                // The game is hung up next; its exit still follows.
                Step::Shutdown => {
                    told_of_shutdown = true;
                    yield Ok(shutdown_notice(&id));
                }
                Step::Idle => {
                    let deadline = last_output + timeout.min(FAR_FUTURE);
                    if tokio::time::Instant::now() < deadline {
                        idle.as_mut().reset(deadline);
                        continue;
                    }
                    yield Ok(message(Out::Event(pb::PtyEvent {
                        session_id: id.clone(),
                        r#type: pb::PtyEventType::SpectatorTimeout as i32,
                        message: format!("no game output for {}", humantime::format_duration(timeout)),
                        ..Default::default()
                    })));
                    yield Ok(disconnected(&id, "spectator timeout"));
                    break;
                }
                Step::Delivery(Some(d)) => {
                    last_output = tokio::time::Instant::now();
                    let last = matches!(d, Delivery::Ended { .. });
                    // A game ended by the shutdown: its viewers hear why
                    // first, even when both woke this stream at once.
                    if last && shutting_down.is_cancelled() && !told_of_shutdown {
                        told_of_shutdown = true;
                        yield Ok(shutdown_notice(&id));
                    }
                    yield Ok(delivery_message(&id, &d));
                    if last {
                        break;
                    }
                }
                Step::Delivery(None) => break,
                Step::Chat(ChatItem::Line(line)) => yield Ok(chat_event(&line, false)),
                Step::Chat(ChatItem::Skipped(lines)) => {
                    for line in lines {
                        yield Ok(chat_event(&line, false));
                    }
                }
                Step::Answer(text) => {
                    yield Ok(message(Out::Chat(pb::ChatEvent {
                        text,
                        sent_at: Some(std::time::SystemTime::now().into()),
                        answer: true,
                        ..Default::default()
                    })));
                }
                Step::AudienceCheck => {
                    // Rebuilt only when the registry changed since.
                    let registry = session.spectators.load();
                    if registry.version != audience_version {
                        audience_version = registry.version;
                        let now = audience_of(&registry);
                        if now != audience {
                            audience = now;
                            yield Ok(message(Out::Audience(audience.clone())));
                        }
                    }
                }
                Step::Notice(notice) => {
                    yield Ok(message(Out::Notice(pb::PlayerNotice {
                        announcement: notice.sender.is_none(),
                        sender: notice.sender.unwrap_or_default(),
                        text: notice.text,
                        sent_at: Some(notice.sent_at.into()),
                    })));
                }
                Step::Input(end) => {
                    match end {
                        InputEnd::Disconnect(reason) => yield Ok(disconnected(&id, &reason)),
                        InputEnd::Refused(status) => yield Err(status),
                        InputEnd::Closed => {}
                    }
                    break;
                }
                Step::PushedOut => {
                    let reason = if is_spectator {
                        "removed from the session's spectators"
                    } else {
                        "another connection of yours took over this game"
                    };
                    yield Ok(disconnected(&id, reason));
                    break;
                }
                Step::Revoked => {
                    let why = revocation.as_ref().map(|r| r.why()).unwrap_or_default();
                    yield Err(Status::unauthenticated(format!("your session has ended: {why}")));
                    break;
                }
            }
        }
    }
}

/// The next chat item, if the stream reads the chat.
async fn next_chat(chat: &mut Option<ChatReceiver>) -> ChatItem {
    match chat {
        Some(chat) => chat.next().await,
        None => std::future::pending().await,
    }
}

/// The next of `notices`, if the stream has any.
async fn next_notice(notices: &mut Option<Notices>) -> Notice {
    match notices {
        Some(notices) => notices.next().await,
        None => std::future::pending().await,
    }
}

/// How often a stream looks whether its audience changed.
const AUDIENCE_CHECK: Duration = Duration::from_secs(1);

/// A chat line as its event.
fn chat_event(line: &ChatLine, history: bool) -> pb::GameIoResponse {
    message(Out::Chat(super::convert::chat_line(line, history)))
}

/// Who watches as `registry` says: names in the order they came, and the
/// anonymous count.
fn audience_of(registry: &RegistryVersion) -> pb::AudienceInfo {
    let (names, anonymous) = registry.audience();
    pb::AudienceInfo {
        names,
        anonymous: u32::try_from(anonymous).unwrap_or(u32::MAX),
    }
}

/// A stream's way into its game's chat.
struct Speaker {
    session: Arc<Session>,
    manager: SessionManager,
    who: Option<User>,
    /// Answers for this stream alone.
    answers: tokio::sync::mpsc::Sender<String>,
}

impl Speaker {
    async fn say(&self, text: &str) {
        let answer = match chat::say(&self.manager, &self.session, self.who.as_ref(), text).await {
            Ok(Said::Posted) => return,
            Ok(Said::Answer(answer)) => answer,
            Err(e) => e.to_string(),
        };
        let _ = self.answers.send(answer).await;
    }
}

/// Aborts the stream's input task when the stream goes.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn message(response: Out) -> pb::GameIoResponse {
    pb::GameIoResponse {
        response: Some(response),
    }
}

fn disconnected(session_id: &str, reason: &str) -> pb::GameIoResponse {
    message(Out::Disconnected(pb::DisconnectPtyResponse {
        session_id: session_id.to_owned(),
        reason: reason.to_owned(),
    }))
}

/// Reads a stream's inbound messages until it ends. The player's input and
/// resizes go to the game (`player` is their input path); a spectator's
/// input is dropped, except that a `q` ends its stream.
async fn read_input(
    player: Option<PlayerInput>,
    speaker: Speaker,
    mut inbound: Streaming<pb::GameIoRequest>,
) -> InputEnd {
    loop {
        let request = match inbound.message().await {
            Ok(Some(pb::GameIoRequest { request: Some(r) })) => r,
            Ok(Some(pb::GameIoRequest { request: None })) => {
                return InputEnd::Refused(Status::invalid_argument("empty GameIORequest"));
            }
            Ok(None) => return InputEnd::Closed,
            Err(status)
                if status.code() == tonic::Code::Unknown
                    || status.code() == tonic::Code::Cancelled =>
            {
                return InputEnd::Closed;
            }
            Err(status) => return InputEnd::Refused(status),
        };
        match request {
            In::Input(input) => {
                if input.data.len() > MAX_INPUT_BYTES {
                    return InputEnd::Refused(Status::invalid_argument(format!(
                        "input of {} bytes is over the limit of {MAX_INPUT_BYTES}",
                        input.data.len()
                    )));
                }
                match &player {
                    Some(player) => {
                        if player.send(input.data).await.is_err() {
                            return InputEnd::Closed;
                        }
                    }
                    None if spectator_quits(&input.data) => {
                        return InputEnd::Disconnect("spectator quit".into());
                    }
                    None => debug!(bytes = input.data.len(), "spectator input dropped"),
                }
            }
            In::Chat(line) => speaker.say(&line.text).await,
            In::Resize(resize) => {
                // Viewers never resize the game: only the player's size counts.
                let Some(player) = &player else { continue };
                let Some(size) = resize.size else {
                    return InputEnd::Refused(Status::invalid_argument("resize without a size"));
                };
                if let Err(e) = term_size(size).and_then(|s| player.resize(s)) {
                    return InputEnd::Refused(e.into());
                }
            }
            In::Disconnect(d) => {
                let reason = if d.reason.is_empty() {
                    "client disconnected".to_owned()
                } else {
                    d.reason
                };
                return InputEnd::Disconnect(reason);
            }
            In::Connect(_) => {
                return InputEnd::Refused(Status::invalid_argument(
                    "this stream is already connected",
                ));
            }
        }
    }
}

/// A spectator's only command: `q` (or Ctrl+C) ends its stream.
fn spectator_quits(data: &Bytes) -> bool {
    data.iter().any(|&b| b == b'q' || b == b'Q' || b == 0x03)
}
