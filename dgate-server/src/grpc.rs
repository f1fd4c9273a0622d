//! The `dungeongate.games.v2.GameService` gRPC service: the edge where domain
//! errors become status codes and hub deliveries become stream messages.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dgate_proto::pb;
use dgate_proto::pb::game_io_request::Request as In;
use dgate_proto::pb::game_io_response::Response as Out;
use dgate_proto::pb::game_service_server::GameService;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, instrument};

use crate::accounts::User;
use crate::auth::Authenticator;
use crate::config::TermSize;
use crate::convert::delivery_message;
use crate::error::SessionError;
use crate::hub::{Delivery, HubEvent, SnapshotReason, Subscription};
use crate::metrics::{self, Metrics};
use crate::recordings;
use crate::registry::Spectator;
use crate::session::{PlayerLease, Session};
use crate::sessions::{SessionManager, StartRequest};
use prometheus_client::metrics::counter::Counter;

/// The largest input message a stream accepts.
pub const MAX_INPUT_BYTES: usize = 64 * 1024;
/// The largest gRPC message the server decodes at all.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// How long a new stream may take to send its connect request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages buffered per stream between its task and the transport.
const OUTBOUND_QUEUE: usize = 32;

impl From<SessionError> for Status {
    fn from(e: SessionError) -> Self {
        let message = e.to_string();
        match e {
            SessionError::NotFound(_) | SessionError::UnknownGame(_) => Status::not_found(message),
            SessionError::GameUnavailable { .. }
            | SessionError::Ended
            | SessionError::SpectatingDisabled
            | SessionError::Spawn { .. } => Status::failed_precondition(message),
            SessionError::AlreadyActive { .. } => Status::already_exists(message),
            SessionError::Invalid { .. } => Status::invalid_argument(message),
            SessionError::LoginRequired(_) => Status::unauthenticated(message),
            SessionError::SpectatorsFull(_) | SessionError::Limit(_) => {
                Status::resource_exhausted(message)
            }
            SessionError::ShuttingDown => Status::unavailable(message),
        }
    }
}

#[derive(Debug, Clone)]
pub struct GameServiceImpl {
    manager: SessionManager,
    auth: Authenticator,
}

impl GameServiceImpl {
    pub fn new(manager: SessionManager, auth: Authenticator) -> Self {
        Self { manager, auth }
    }

    /// The caller, who must own `session` (or, when `admin_may`, be an admin).
    async fn require_owner(
        &self,
        metadata: &tonic::metadata::MetadataMap,
        session: &Session,
        admin_may: bool,
    ) -> Result<User, Status> {
        let user = self.auth.require(metadata).await?;
        if is_owner(&user, session) || (admin_may && user.is_admin) {
            Ok(user)
        } else {
            Err(Status::permission_denied(format!(
                "this is {}'s game, not yours",
                session.info.username
            )))
        }
    }

    /// Recordings are watched like games: anonymously when the server allows it.
    async fn may_watch(&self, metadata: &tonic::metadata::MetadataMap) -> Result<(), Status> {
        let caller = self.auth.caller(metadata).await?;
        self.check_may_watch(caller.as_ref())
    }

    /// Watching needs a login unless `spectating.allow_anonymous`.
    fn check_may_watch(&self, caller: Option<&User>) -> Result<(), Status> {
        let anonymous_allowed = self
            .manager
            .config()
            .session_management
            .spectating
            .allow_anonymous;
        if caller.is_none() && !anonymous_allowed {
            return Err(Status::unauthenticated(
                "this server allows watching only when logged in",
            ));
        }
        Ok(())
    }

    fn size(&self, size: Option<pb::TerminalSize>) -> Result<Option<TermSize>, Status> {
        size.map(|s| Ok(self.manager.check_size(crate::convert::term_size(s)?)?))
            .transpose()
    }
}

fn is_owner(user: &User, session: &Session) -> bool {
    i64::from(session.info.user_id) == user.id
}

/// Who a stream is.
enum Role {
    /// The owner; the lease is cancelled when a newer stream of theirs takes over.
    Player(PlayerLease),
    Spectator(Arc<Spectator>),
}

#[tonic::async_trait]
impl GameService for GameServiceImpl {
    async fn list_games(
        &self,
        _: Request<pb::ListGamesRequest>,
    ) -> Result<Response<pb::ListGamesResponse>, Status> {
        let games = self.manager.games().iter().map(pb::Game::from).collect();
        Ok(Response::new(pb::ListGamesResponse { games }))
    }

    async fn start_game_session(
        &self,
        request: Request<pb::StartGameSessionRequest>,
    ) -> Result<Response<pb::StartGameSessionResponse>, Status> {
        // Who plays is the token's user, never the request's user_id/username.
        let user = self.auth.require(request.metadata()).await?;
        let user_id =
            i32::try_from(user.id).map_err(|_| Status::internal("user id out of range"))?;
        let r = request.into_inner();
        let size = self.size(r.terminal_size)?;
        let session = self.manager.start(StartRequest {
            user_id,
            username: user.username,
            game_id: r.game_id,
            size,
        })?;
        Ok(Response::new(pb::StartGameSessionResponse {
            session: Some(session.as_ref().into()),
        }))
    }

    async fn get_game_session(
        &self,
        request: Request<pb::GetGameSessionRequest>,
    ) -> Result<Response<pb::GetGameSessionResponse>, Status> {
        let session = self.manager.get(&request.into_inner().session_id)?;
        Ok(Response::new(pb::GetGameSessionResponse {
            session: Some(session.as_ref().into()),
        }))
    }

    async fn list_game_sessions(
        &self,
        request: Request<pb::ListGameSessionsRequest>,
    ) -> Result<Response<pb::ListGameSessionsResponse>, Status> {
        let r = request.into_inner();
        let (Ok(limit), Ok(offset)) = (usize::try_from(r.limit), usize::try_from(r.offset)) else {
            return Err(Status::invalid_argument(
                "limit and offset must not be negative",
            ));
        };
        let wanted_status = pb::SessionStatus::try_from(r.status).map_err(|_| {
            Status::invalid_argument(format!("unknown session status {}", r.status))
        })?;
        let matching: Vec<pb::GameSession> = self
            .manager
            .list()
            .iter()
            .filter(|s| r.user_id == 0 || s.info.user_id == r.user_id)
            .filter(|s| r.game_id.is_empty() || s.info.game_id == r.game_id)
            .map(|s| pb::GameSession::from(s.as_ref()))
            .filter(|s| {
                wanted_status == pb::SessionStatus::Unspecified || s.status() == wanted_status
            })
            .collect();
        let total_count = i32::try_from(matching.len()).unwrap_or(i32::MAX);
        let limit = if limit == 0 { usize::MAX } else { limit };
        let sessions = matching.into_iter().skip(offset).take(limit).collect();
        Ok(Response::new(pb::ListGameSessionsResponse {
            sessions,
            total_count,
        }))
    }

    async fn stop_game_session(
        &self,
        request: Request<pb::StopGameSessionRequest>,
    ) -> Result<Response<pb::StopGameSessionResponse>, Status> {
        let session = self.manager.get(&request.get_ref().session_id)?;
        self.require_owner(request.metadata(), &session, true)
            .await?;
        let r = request.into_inner();
        self.manager.stop(&r.session_id, &r.reason, r.force)?;
        Ok(Response::new(pb::StopGameSessionResponse { success: true }))
    }

    async fn resize_terminal(
        &self,
        request: Request<pb::ResizeTerminalRequest>,
    ) -> Result<Response<pb::ResizeTerminalResponse>, Status> {
        let session = self.manager.get(&request.get_ref().session_id)?;
        self.require_owner(request.metadata(), &session, false)
            .await?;
        let r = request.into_inner();
        let size = self
            .size(r.new_size)?
            .ok_or_else(|| Status::invalid_argument("new_size is required"))?;
        session.resize(size)?;
        Ok(Response::new(pb::ResizeTerminalResponse { success: true }))
    }

    async fn health(
        &self,
        _: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        Ok(Response::new(pb::HealthResponse {
            status: "SERVING".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            active_sessions: self.manager.active_count() as u32,
        }))
    }

    async fn add_spectator(
        &self,
        request: Request<pb::AddSpectatorRequest>,
    ) -> Result<Response<pb::AddSpectatorResponse>, Status> {
        // A spectator is who its token says, or Anonymous: a name in the
        // request is never trusted.
        let caller = self.auth.caller(request.metadata()).await?;
        let r = request.into_inner();
        let (user_id, username) = match &caller {
            Some(user) => (i32::try_from(user.id).unwrap_or(0), user.username.as_str()),
            None => (0, ""),
        };
        let (_, spectator) = self
            .manager
            .add_spectator(&r.session_id, user_id, username)?;
        Ok(Response::new(pb::AddSpectatorResponse {
            success: true,
            error: String::new(),
            spectator: Some(spectator.as_ref().into()),
        }))
    }

    async fn remove_spectator(
        &self,
        request: Request<pb::RemoveSpectatorRequest>,
    ) -> Result<Response<pb::RemoveSpectatorResponse>, Status> {
        let caller = self.auth.caller(request.metadata()).await?;
        let r = request.into_inner();
        let session = self.manager.get(&r.session_id)?;
        let removed = if r.spectator_id.is_empty() {
            // All of a user's registrations: that user, the owner or an admin.
            let user = caller.ok_or_else(|| {
                Status::unauthenticated(
                    "removing by user id needs a token (or give the spectator_id)",
                )
            })?;
            let allowed = user.id == i64::from(r.spectator_user_id)
                || is_owner(&user, &session)
                || user.is_admin;
            if !allowed {
                return Err(Status::permission_denied(
                    "not your registration, game or server",
                ));
            }
            session.spectators.remove_user(r.spectator_user_id)
        } else {
            // The id is unguessable: whoever holds it may end its registration.
            usize::from(session.spectators.remove(&r.spectator_id))
        };
        if removed == 0 {
            return Err(Status::not_found("no such spectator in this session"));
        }
        Ok(Response::new(pb::RemoveSpectatorResponse {
            success: true,
            removed: removed as u32,
        }))
    }

    type StreamGameIOStream = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = Result<pb::GameIoResponse, Status>> + Send>,
    >;

    #[instrument(skip_all, fields(session_id))]
    async fn stream_game_io(
        &self,
        request: Request<Streaming<pb::GameIoRequest>>,
    ) -> Result<Response<Self::StreamGameIOStream>, Status> {
        let caller = self.auth.caller(request.metadata()).await?;
        let mut inbound = request.into_inner();
        let first = tokio::time::timeout(CONNECT_TIMEOUT, inbound.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no connect request arrived in time"))??;
        let Some(pb::GameIoRequest {
            request: Some(In::Connect(connect)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message of a stream must be `connect`",
            ));
        };
        tracing::Span::current().record("session_id", connect.session_id.as_str());
        let session = self.manager.get(&connect.session_id)?;
        let role = if !connect.spectator_id.is_empty() {
            self.check_may_watch(caller.as_ref())?;
            let spectator = session
                .spectators
                .get(&connect.spectator_id)
                .ok_or_else(|| {
                    Status::permission_denied("not a registered spectator of this session")
                })?;
            if !spectator.bind() {
                return Err(Status::already_exists(
                    "this spectator registration already has a stream",
                ));
            }
            Role::Spectator(spectator)
        } else {
            let Some(user) = caller else {
                return Err(Status::unauthenticated(
                    "playing needs the owner's token; watching needs AddSpectator's spectator_id",
                ));
            };
            if !is_owner(&user, &session) {
                return Err(Status::permission_denied(
                    "neither the session's owner nor a registered spectator (call AddSpectator first)",
                ));
            }
            Role::Player(session.attach_player())
        };

        let subscription = session.hub.subscribe();
        let connected = pb::ConnectPtyResponse {
            session_id: session.info.id.clone(),
            success: true,
            error: String::new(),
            role: match role {
                Role::Player(_) => pb::StreamRole::Player,
                Role::Spectator(_) => pb::StreamRole::Spectator,
            } as i32,
            terminal_size: Some(crate::convert::terminal_size(session.hub.size())),
        };
        let spectator_timeout = self
            .manager
            .config()
            .session_management
            .spectating
            .spectator_timeout;
        let stream = GameStream {
            session,
            role,
            spectator_timeout,
            manager: self.manager.clone(),
        };
        let first = message(Out::Connected(connected));
        Ok(Response::new(Box::pin(stream.responses(
            first,
            subscription,
            inbound,
        ))))
    }

    async fn list_recordings(
        &self,
        request: Request<pb::ListRecordingsRequest>,
    ) -> Result<Response<pb::ListRecordingsResponse>, Status> {
        self.may_watch(request.metadata()).await?;
        let r = request.into_inner();
        let directory = self.manager.recordings_directory();
        let entries = tokio::task::spawn_blocking(move || {
            recordings::list(&directory, &r.username, &r.game_id, r.limit)
        })
        .await
        .map_err(|e| Status::internal(format!("listing recordings failed: {e}")))?;
        Ok(Response::new(pb::ListRecordingsResponse {
            recordings: entries.iter().map(recordings::Entry::info).collect(),
        }))
    }

    type StreamRecordingStream = tokio_stream::adapters::Map<
        ReceiverStream<Result<pb::recording_event::Event, Status>>,
        fn(Result<pb::recording_event::Event, Status>) -> Result<pb::RecordingEvent, Status>,
    >;

    #[instrument(skip_all, fields(recording_id))]
    async fn stream_recording(
        &self,
        request: Request<Streaming<pb::RecordingControl>>,
    ) -> Result<Response<Self::StreamRecordingStream>, Status> {
        self.may_watch(request.metadata()).await?;
        let mut controls = request.into_inner();
        let first = tokio::time::timeout(CONNECT_TIMEOUT, controls.message())
            .await
            .map_err(|_| Status::deadline_exceeded("no open request arrived in time"))??;
        let Some(pb::RecordingControl {
            control: Some(pb::recording_control::Control::Open(open)),
        }) = first
        else {
            return Err(Status::invalid_argument(
                "the first message must be `open` with a recording id",
            ));
        };
        tracing::Span::current().record("recording_id", open.recording_id.as_str());
        let directory = self.manager.recordings_directory();
        let max_idle = (open.max_idle_seconds > 0.0)
            .then(|| recordings::seconds_to_duration(open.max_idle_seconds));
        let (recording, info) = tokio::task::spawn_blocking(move || {
            let entry = recordings::find(&directory, &open.recording_id).ok_or_else(|| {
                Status::not_found(format!("no recording with id {:?}", open.recording_id))
            })?;
            Ok::<_, Status>((entry.open(max_idle)?, entry.info()))
        })
        .await
        .map_err(|e| Status::internal(format!("opening the recording failed: {e}")))??;
        info!(frames = recording.frame_count(), "replaying a recording");
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        let (steer, steering) = mpsc::channel(8);
        tokio::spawn(async move {
            // A broken or closed control stream ends the replay; the end of
            // the replay (shutdown) lets go of the control stream.
            loop {
                let message = tokio::select! {
                    message = controls.message() => message,
                    () = steer.closed() => break,
                };
                let Ok(Some(message)) = message else { break };
                if let Some(control) = message.control
                    && steer.send(control).await.is_err()
                {
                    break;
                }
            }
        });
        let shutdown = self.manager.shutting_down();
        tokio::spawn(recordings::play(recording, info, steering, tx, shutdown));
        let events: fn(_) -> _ = |played: Result<pb::recording_event::Event, Status>| {
            played.map(|event| pb::RecordingEvent { event: Some(event) })
        };
        Ok(Response::new(tokio_stream::StreamExt::map(
            ReceiverStream::new(rx),
            events,
        )))
    }
}

fn message(response: Out) -> pb::GameIoResponse {
    pb::GameIoResponse {
        response: Some(response),
    }
}

/// A timeout that never comes (`Instant + Duration::MAX` would overflow).
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// How the inbound half of a stream ended.
enum InputEnd {
    /// `disconnect`, or a spectator's `q`.
    Disconnect(String),
    /// A bad message: the stream ends with this status.
    Refused(Status),
    /// The client closed its side or went away.
    Closed,
}

/// One StreamGameIO stream, from connect to its end.
struct GameStream {
    session: Arc<Session>,
    role: Role,
    spectator_timeout: Duration,
    manager: SessionManager,
}

/// What woke a stream up.
enum Step {
    Shutdown,
    Idle,
    Delivery(Option<Delivery>),
    Input(InputEnd),
    PushedOut,
}

/// Leaves the session when the stream ends, however it ends: finished, or
/// dropped because the client went away (the response stream is simply not
/// polled again).
struct Leaving {
    session: Arc<Session>,
    role: Role,
    manager: SessionManager,
    input: tokio::task::AbortHandle,
    connections: prometheus_client::metrics::gauge::Gauge,
}

impl Drop for Leaving {
    fn drop(&mut self) {
        self.input.abort();
        let id = &self.session.info.id;
        match &self.role {
            Role::Player(lease) => {
                if self.session.detach_player(lease) {
                    info!(session_id = %id, "player detached; the game runs on for the detach grace period");
                    self.manager.arm_detach_timer(&self.session);
                }
            }
            Role::Spectator(spectator) => {
                self.connections.dec();
                let started = std::time::Instant::now();
                self.session.spectators.remove(&spectator.id);
                Metrics::observe(
                    &self
                        .manager
                        .metrics()
                        .spectator_registry_update_duration_seconds,
                    started.elapsed(),
                );
                info!(session_id = %id, spectator_username = %spectator.username,
                      spectator_count = self.session.spectators.len(), "spectator left");
            }
        }
    }
}

fn disconnected(session_id: &str, reason: &str) -> pb::GameIoResponse {
    message(Out::Disconnected(pb::DisconnectPtyResponse {
        session_id: session_id.to_owned(),
        reason: reason.to_owned(),
    }))
}

impl GameStream {
    /// The stream's responses, produced as the client reads them: tonic polls
    /// the hub subscription directly (no task or queue in between), so a
    /// client that stops reading stops the subscription, which the hub then
    /// resyncs.
    fn responses(
        self,
        first: pb::GameIoResponse,
        mut subscription: Subscription,
        inbound: Streaming<pb::GameIoRequest>,
    ) -> impl tokio_stream::Stream<Item = Result<pb::GameIoResponse, Status>> + Send + 'static {
        async_stream::stream! {
            yield Ok(first);
            let GameStream { session, role, spectator_timeout, manager } = self;
            let id = session.info.id.clone();
            let is_spectator = matches!(role, Role::Spectator(_));
            let mut input = tokio::spawn(read_input(
                Arc::clone(&session),
                !is_spectator,
                manager.clone(),
                inbound,
            ));
            let pushed_out = match &role {
                Role::Spectator(s) => s.removed.clone(),
                Role::Player(lease) => lease.taken_over.clone(),
            };
            // Only spectators time out, and only for lack of game output.
            let timeout = if is_spectator { spectator_timeout } else { Duration::MAX };
            let metrics = Arc::clone(manager.metrics());
            let bytes_sent = metrics
                .bytes_sent
                .get_or_create(&Metrics::transport(metrics::GRPC))
                .clone();
            let connections = metrics
                .spectator_connections_active
                .get_or_create(&Metrics::transport(metrics::GRPC))
                .clone();
            if is_spectator {
                metrics
                    .spectator_sessions
                    .get_or_create(&Metrics::game(&session.info.game_id))
                    .inc();
                connections.inc();
            }
            let shutdown = manager.shutting_down().cancelled_owned();
            let _leaving = Leaving {
                session: Arc::clone(&session),
                role,
                manager,
                input: input.abort_handle(),
                connections,
            };
            // Waited on across iterations, not re-registered for every frame.
            let pushed_out = pushed_out.cancelled_owned();
            tokio::pin!(shutdown, pushed_out);
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
                    delivery = subscription.next() => Step::Delivery(delivery),
                    end = &mut input => Step::Input(end.unwrap_or(InputEnd::Closed)),
                    () = &mut pushed_out => Step::PushedOut,
                };
                match step {
                    // The game is hung up next; its exit still follows.
                    Step::Shutdown => {
                        told_of_shutdown = true;
                        yield Ok(message(Out::Event(pb::PtyEvent {
                            session_id: id.clone(),
                            r#type: pb::PtyEventType::ServerShutdown as i32,
                            message: "the server is shutting down; the game is being saved".into(),
                            ..Default::default()
                        })));
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
                        let last = matches!(&d, Delivery::Event(e) if matches!(**e, HubEvent::Ended { .. }));
                        yield Ok(delivery_message(&id, &d));
                        count_sent(&metrics, &bytes_sent, is_spectator, &d);
                        if last {
                            break;
                        }
                    }
                    Step::Delivery(None) => break,
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
                }
            }
        }
    }
}

/// Counts one delivery handed to a stream.
fn count_sent(metrics: &Metrics, bytes_sent: &Counter, is_spectator: bool, d: &Delivery) {
    match d {
        Delivery::Snapshot(s) => {
            bytes_sent.inc_by(s.data.len() as u64);
            if is_spectator && s.reason == SnapshotReason::Resync {
                metrics.spectator_resyncs.inc();
                metrics.spectator_frames_dropped.inc_by(s.frames_skipped);
            }
        }
        Delivery::Event(e) => {
            if let HubEvent::Frame(f) = e.as_ref() {
                bytes_sent.inc_by(f.data.len() as u64);
                if is_spectator {
                    metrics.spectator_frames_sent.inc();
                }
            }
        }
    }
}

/// Reads a stream's inbound messages until it ends. The player's input and
/// resizes go to the game; a spectator's input is dropped, except that a `q`
/// ends its stream.
async fn read_input(
    session: Arc<Session>,
    is_player: bool,
    manager: SessionManager,
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
                if is_player {
                    if session.send_input(input.data).await.is_err() {
                        return InputEnd::Closed;
                    }
                } else if spectator_quits(&input.data) {
                    return InputEnd::Disconnect("spectator quit".into());
                } else {
                    debug!(bytes = input.data.len(), "spectator input dropped");
                }
            }
            In::Resize(resize) => {
                // Viewers never resize the game: only the player's size counts.
                if !is_player {
                    continue;
                }
                let Some(size) = resize.size else {
                    return InputEnd::Refused(Status::invalid_argument("resize without a size"));
                };
                let checked = crate::convert::term_size(size).and_then(|s| manager.check_size(s));
                match checked.and_then(|s| session.resize(s)) {
                    Ok(()) => {}
                    Err(e) => return InputEnd::Refused(e.into()),
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
