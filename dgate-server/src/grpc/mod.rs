//! The gRPC edge: `dungeongate.games.v2.GameService` (this file), its game
//! streams ([`game_io`]) and replays ([`recordings`]), `AuthService`
//! ([`auth`]), the listener's per-address limit ([`incoming`]), and the only
//! conversions between domain types and protobuf ([`convert`], [`status`]).
//! Nothing outside this module names `dgate_proto` or `tonic` (but the wiring
//! in `lib.rs`).

pub mod auth;
pub mod convert;
pub mod game_io;
pub mod incoming;
pub mod recordings;
pub mod status;

use dgate_proto::pb;
use dgate_proto::pb::game_io_request::Request as In;
use dgate_proto::pb::game_service_server::GameService;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status, Streaming};
use tracing::instrument;

use crate::accounts::User;
use crate::config::TermSize;
use crate::game::{Session, SessionManager, StartRequest};
use crate::game::{messages, rc_files};
use crate::viewing;
use auth::Authenticator;
use game_io::{CONNECT_TIMEOUT, Viewer};

/// The largest gRPC message the server decodes at all.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// tonic's TLS settings for the server's identity (`server.tls`).
pub fn tls_config(tls: &crate::tls::Tls) -> tonic::transport::ServerTlsConfig {
    tonic::transport::ServerTlsConfig::new()
        .identity(tonic::transport::Identity::from_pem(
            &tls.cert_pem,
            &tls.key_pem,
        ))
        .timeout(tls.handshake)
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
        if let Some(node) = session.origin() {
            return Err(crate::game::SessionError::Elsewhere {
                node: node.to_owned(),
            }
            .into());
        }
        if session.is_owned_by(&user) || (admin_may && user.is_admin) {
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
        Ok(viewing::may_watch(self.manager.config(), caller.is_some())?)
    }

    fn size(&self, size: Option<pb::TerminalSize>) -> Result<Option<TermSize>, Status> {
        size.map(|s| Ok(self.manager.check_size(convert::term_size(s)?)?))
            .transpose()
    }
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
            session: Some(convert::game_session(&session.summary())),
        }))
    }

    async fn get_game_session(
        &self,
        request: Request<pb::GetGameSessionRequest>,
    ) -> Result<Response<pb::GetGameSessionResponse>, Status> {
        let id = request.into_inner().session_id;
        // Another node's game is looked up in the directory (no mirror).
        let summary = match self.manager.get_local(&id) {
            Ok(session) => session.summary(),
            Err(e) => self
                .manager
                .summaries()
                .into_iter()
                .find(|s| s.id == id)
                .ok_or(e)?,
        };
        Ok(Response::new(pb::GetGameSessionResponse {
            session: Some(convert::game_session(&summary)),
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
        // In a cluster, every node's games.
        let matching: Vec<pb::GameSession> = self
            .manager
            .summaries()
            .iter()
            .filter(|s| r.user_id == 0 || s.user_id == r.user_id)
            .filter(|s| r.game_id.is_empty() || s.game_id == r.game_id)
            .map(convert::game_session)
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
        let peer = request.remote_addr().map(|a| a.ip());
        let r = request.into_inner();
        // Another node's game: this node's mirror of it shows its screen first.
        self.manager.ready(&r.session_id).await;
        let (_, spectator) =
            viewing::register(&self.manager, &r.session_id, caller.as_ref(), peer).await?;
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
                || session.is_owned_by(&user)
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
        // A logged-in stream ends when its account is banned or its password changes.
        let revocation = caller
            .as_ref()
            .map(|user| self.auth.live().watch(user, CancellationToken::new()));
        let viewer = Viewer::connect(&self.manager, &connect, caller.clone())?;
        Ok(Response::new(Box::pin(game_io::responses(
            viewer,
            caller,
            self.manager.clone(),
            inbound,
            revocation,
        ))))
    }

    async fn list_recordings(
        &self,
        request: Request<pb::ListRecordingsRequest>,
    ) -> Result<Response<pb::ListRecordingsResponse>, Status> {
        self.may_watch(request.metadata()).await?;
        recordings::list(&self.manager, request.into_inner()).await
    }

    type StreamRecordingStream = recordings::ReplayStream;

    #[instrument(skip_all, fields(recording_id))]
    async fn stream_recording(
        &self,
        request: Request<Streaming<pb::RecordingControl>>,
    ) -> Result<Response<Self::StreamRecordingStream>, Status> {
        self.may_watch(request.metadata()).await?;
        let peer = request.remote_addr().map(|a| a.ip());
        recordings::stream(&self.manager, request.into_inner(), peer).await
    }

    async fn get_game_options(
        &self,
        request: Request<pb::GetGameOptionsRequest>,
    ) -> Result<Response<pb::GetGameOptionsResponse>, Status> {
        let user = self.auth.require(request.metadata()).await?;
        let game_id = request.into_inner().game_id;
        let config = self.manager.config();
        let text = rc_files::load_for(config, &game_id, &user.username)?;
        let game_name = config
            .game(&game_id)
            .map(|g| g.name.clone())
            .unwrap_or_default();
        Ok(Response::new(pb::GetGameOptionsResponse {
            text,
            max_bytes: u32::try_from(rc_files::MAX_RC_BYTES).unwrap_or(u32::MAX),
            game_name,
        }))
    }

    async fn save_game_options(
        &self,
        request: Request<pb::SaveGameOptionsRequest>,
    ) -> Result<Response<pb::SaveGameOptionsResponse>, Status> {
        let user = self.auth.require(request.metadata()).await?;
        let r = request.into_inner();
        rc_files::save_for(self.manager.config(), &r.game_id, &user.username, &r.text)?;
        tracing::info!(username = %user.username, game = %r.game_id, bytes = r.text.len(),
                       "options saved");
        Ok(Response::new(pb::SaveGameOptionsResponse {}))
    }

    async fn send_player_message(
        &self,
        request: Request<pb::SendPlayerMessageRequest>,
    ) -> Result<Response<pb::SendPlayerMessageResponse>, Status> {
        // The sender is the token's user; anonymous spectators cannot send.
        let user = self.auth.require(request.metadata()).await?;
        let r = request.into_inner();
        let spooled = messages::send(&self.manager, &r.session_id, &user, &r.text).await?;
        Ok(Response::new(pb::SendPlayerMessageResponse { spooled }))
    }

    async fn announce(
        &self,
        request: Request<pb::AnnounceRequest>,
    ) -> Result<Response<pb::AnnounceResponse>, Status> {
        let user = self.auth.require(request.metadata()).await?;
        if !user.is_admin {
            return Err(Status::permission_denied("only admins announce"));
        }
        let players = messages::announce(&self.manager, &request.into_inner().text).await?;
        Ok(Response::new(pb::AnnounceResponse {
            players: u32::try_from(players).unwrap_or(u32::MAX),
        }))
    }
}
