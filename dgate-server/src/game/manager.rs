//! The session manager: the list of active sessions, starting and stopping
//! games, and the rules around them (one active session per player and game,
//! size limits, how many games run), hang-ups and shutdown.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime};

use nix::sys::signal::Signal;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::error::SessionError;
use super::pty::RunAs;
use super::session::{Session, SessionInfo};
use super::{catalog, hooks, messages, recorder, recordings};
use crate::broadcast::{HubCounters, HubOptions, SpectatorRegistry};
use crate::config::{Config, GameConfig, TermSize};
use crate::limits::{AddressLimiter, Trusted};
use crate::metrics::Metrics;
use crate::viewing::audience::Audiences;
use crate::viewing::chat::ChatLimit;
use dgate_term::recording::EndReason;

/// The games other nodes run, as the manager sees them when the server is
/// a node of a cluster (`crate::cluster` implements it; without a cluster
/// there is none and nothing changes).
pub trait RemoteGames: Send + Sync {
    /// A local game started: the cluster relays it.
    fn started(&self, session: &Arc<Session>);
    /// A session mirroring the game `id` that another node runs (made by the
    /// first viewer here), when some node lists it.
    fn mirror(&self, manager: &SessionManager, id: &str) -> Option<Arc<Session>>;
    /// Waits (a few seconds at most) until the mirror of `id`, if there is
    /// one, shows its node's screen.
    fn ready<'a>(&'a self, id: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
    /// The games the other nodes run, as their last heartbeats listed them.
    fn summaries(&self) -> Vec<dgate_term::listing::SessionSummary>;
    /// This node's name in the cluster.
    fn node_id(&self) -> &str;
    /// Asks the node of the game `session` mirrors to admit `who`, watching
    /// from `address`, as `spectator` here (which is then bound to that
    /// registration: either ending ends the other).
    fn admit<'a>(
        &'a self,
        session: &'a Arc<Session>,
        spectator: &'a Arc<crate::broadcast::Spectator>,
        who: Option<&'a crate::accounts::User>,
        address: Option<std::net::IpAddr>,
    ) -> Pin<Box<dyn Future<Output = Result<(), SessionError>> + Send + 'a>>;
    /// Says `text` as `who` in the chat of the game `session` mirrors, on
    /// its node.
    fn say<'a>(
        &'a self,
        session: &'a Session,
        who: &'a crate::accounts::User,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<crate::viewing::chat::Said, SessionError>> + Send + 'a>>;
    /// Sends `text` from `who` to the player of the game `session` mirrors,
    /// through its node: whether it also went to the game's mail spool.
    fn message<'a>(
        &'a self,
        session: &'a Session,
        who: &'a crate::accounts::User,
        text: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<bool, SessionError>> + Send + 'a>>;
}

/// What a start request asks for.
#[derive(Debug, Clone)]
pub struct StartRequest {
    pub user_id: i32,
    pub username: String,
    pub game_id: String,
    /// `None`: the configured default size.
    pub size: Option<TermSize>,
}

/// A game as offered, with why it cannot run when it cannot.
#[derive(Debug, Clone)]
pub struct GameListing {
    pub config: GameConfig,
    pub unavailable: Option<String>,
}

#[derive(Clone)]
pub struct SessionManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    data_dir: PathBuf,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    /// Stop timers (SIGHUP, then SIGKILL after the grace period).
    tasks: TaskTracker,
    /// Recorder threads, joined at shutdown so every recording is finished.
    recorders: Mutex<Vec<std::thread::JoinHandle<()>>>,
    metrics: Arc<Metrics>,
    /// Cancelled when shutdown begins: streams tell their viewers.
    shutting_down: CancellationToken,
    /// Spectators per address over every game
    /// (`max_spectators_per_address_total`).
    spectator_addresses: AddressLimiter,
    /// Finished recordings, for replay.
    library: recordings::Library,
    /// Messages to players: the senders' rate limit, the announcements.
    messenger: messages::Messenger,
    /// Players' rules for their audiences.
    audiences: Audiences,
    /// Chat lines each user said lately.
    chat_limit: ChatLimit,
    /// The other nodes' games, when this server is a node of a cluster.
    remote: OnceLock<Arc<dyn RemoteGames>>,
}

impl std::fmt::Debug for SessionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionManager")
            .field("active", &self.inner.lock().len())
            .finish_non_exhaustive()
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SessionManager {
    /// `config.data_dir` should be absolute (the binary makes it so).
    pub fn new(config: Arc<Config>) -> Self {
        let spectator_addresses = AddressLimiter::new(
            config
                .session_management
                .spectating
                .max_spectators_per_address_total,
            Trusted::new(&config.server.trusted_addresses),
        );
        let ttyrec = &config.session_management.ttyrec;
        let library = recordings::Library::new(
            ttyrec.directory.clone(),
            ttyrec.max_replays,
            ttyrec.max_replays_per_address,
            Trusted::new(&config.server.trusted_addresses),
        );
        Self {
            inner: Arc::new(Inner {
                spectator_addresses,
                library,
                data_dir: config.data_dir.clone(),
                audiences: Audiences::new(&config.data_dir),
                chat_limit: ChatLimit::new(config.session_management.spectating.chat.lines_per_10s),
                config,
                sessions: Mutex::new(HashMap::new()),
                tasks: TaskTracker::new(),
                recorders: Mutex::new(Vec::new()),
                metrics: Arc::new(Metrics::new()),
                shutting_down: CancellationToken::new(),
                messenger: messages::Messenger::default(),
                remote: OnceLock::new(),
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The configuration, for work handed to another thread.
    pub fn config_arc(&self) -> &Arc<Config> {
        &self.inner.config
    }

    /// Where recordings are written (and listed for replay).
    pub fn recordings_directory(&self) -> std::path::PathBuf {
        self.inner
            .config
            .session_management
            .ttyrec
            .directory
            .clone()
    }

    /// Players' rules for who watches them and speaks in their chats.
    pub fn audiences(&self) -> &Audiences {
        &self.inner.audiences
    }

    /// The chat's rate limit, over every game.
    pub fn chat_limit(&self) -> &ChatLimit {
        &self.inner.chat_limit
    }

    /// Messages to players ([`messages`]).
    pub fn messenger(&self) -> &messages::Messenger {
        &self.inner.messenger
    }

    /// Finished recordings: listing and replays.
    pub fn library(&self) -> &recordings::Library {
        &self.inner.library
    }

    /// Spectators' places in the server-wide per-address limit.
    pub fn spectator_addresses(&self) -> &AddressLimiter {
        &self.inner.spectator_addresses
    }

    /// Cancelled when the server starts shutting down.
    pub fn shutting_down(&self) -> CancellationToken {
        self.inner.shutting_down.clone()
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    pub fn games(&self) -> Vec<GameListing> {
        self.inner
            .config
            .games
            .iter()
            .map(|g| GameListing {
                config: g.clone(),
                unavailable: catalog::unavailable_reason(g),
            })
            .collect()
    }

    /// Checks a requested size against the configured maximum.
    pub fn check_size(&self, size: TermSize) -> Result<TermSize, SessionError> {
        let max = self.inner.config.session_management.terminal.max_size;
        if size.fits_within(max) {
            Ok(size)
        } else {
            Err(SessionError::invalid(
                "terminal size",
                format!("{size} must be between 1x1 and {max}"),
            ))
        }
    }

    /// Spawns a game for a player.
    pub fn start(&self, request: StartRequest) -> Result<Arc<Session>, SessionError> {
        let inner = &self.inner;
        if inner.shutting_down.is_cancelled() {
            return Err(SessionError::ShuttingDown);
        }
        crate::accounts::check_username(&request.username)
            .map_err(|why| SessionError::invalid("username", why))?;
        let game = inner
            .config
            .game(&request.game_id)
            .ok_or_else(|| SessionError::UnknownGame(request.game_id.clone()))?;
        if let Some(reason) = catalog::unavailable_reason(game) {
            return Err(SessionError::GameUnavailable {
                game: game.id.clone(),
                reason,
            });
        }
        let management = &inner.config.session_management;
        let size = self.check_size(request.size.unwrap_or(management.terminal.default_size))?;

        let run_as = RunAs::for_game(game, management.run_as.as_deref()).map_err(|reason| {
            SessionError::Spawn {
                game: game.id.clone(),
                reason,
            }
        })?;
        // The game_start hooks run before the lock below (an `exec` may take
        // seconds, which must not hold up every other start and listing),
        // and not for a game that is only being resumed.
        let hook_environment = if game.hooks.game_start.is_empty() {
            None
        } else {
            if let Some(existing) = self.find_running(&game.id, &request.username) {
                return Err(SessionError::AlreadyActive {
                    username: request.username,
                    game: game.id.clone(),
                    session_id: existing,
                });
            }
            Some(
                self.hooks(game, &request.username, run_as.clone())
                    .run("game_start", &game.hooks.game_start),
            )
        };

        // Held across the spawn so that two starts of one player's game cannot race.
        let mut sessions = inner.lock();
        if let Some(existing) = sessions.values().find(|s| {
            s.info.game_id == game.id && s.info.username.eq_ignore_ascii_case(&request.username)
        }) {
            return Err(SessionError::AlreadyActive {
                username: request.username,
                game: game.id.clone(),
                session_id: existing.info.id.clone(),
            });
        }
        let running = sessions.values().filter(|s| !s.is_ended());
        let (all, theirs) = running.fold((0, 0), |(all, theirs), s| {
            let mine = s.info.username.eq_ignore_ascii_case(&request.username);
            (all + 1, theirs + usize::from(mine))
        });
        if all >= management.max_sessions {
            return Err(SessionError::Limit(format!(
                "the server runs at most {} games at once; try again later",
                management.max_sessions
            )));
        }
        if theirs >= management.max_sessions_per_user {
            return Err(SessionError::Limit(format!(
                "{} already has {theirs} games running (at most {})",
                request.username, management.max_sessions_per_user
            )));
        }
        messages::prepare_spool(&inner.config, game, &request.username);
        let mut command = catalog::command_for(
            game,
            &request.username,
            &inner.data_dir,
            size,
            "xterm-256color",
            run_as,
            &management.rlimits,
        )
        .map_err(|e| {
            warn!(game = %game.id, username = %request.username, error = %e,
                  "cannot create the game's directories");
            SessionError::Spawn {
                game: game.id.clone(),
                reason: format!("cannot create the game's directories: {e}"),
            }
        })?;
        if let Some(environment) = hook_environment {
            command.environment = environment;
        }
        let audience = inner.audiences.of(&request.username);
        let info = SessionInfo {
            id: uuid::Uuid::new_v4().simple().to_string(),
            user_id: request.user_id,
            username: request.username,
            game_id: game.id.clone(),
            game_short_name: game.short_name.clone(),
            started_at: SystemTime::now(),
            node: inner.remote.get().map(|remote| remote.node_id().to_owned()),
        };
        let spectating = &management.spectating;
        let spectators = if spectating.enabled {
            SpectatorRegistry::new(
                spectating.max_spectators_per_session,
                spectating.max_spectators_per_address,
            )
        } else {
            SpectatorRegistry::new(0, 0)
        };
        let weak: Weak<Inner> = Arc::downgrade(inner);
        let metrics = Arc::clone(&inner.metrics);
        let label = Metrics::game(&game.id);
        let hub = HubOptions {
            size,
            queue_frames: management.queue_frames,
            queue_bytes: management.queue_bytes,
            counters: HubCounters {
                resyncs: inner.metrics.hub_resyncs.clone(),
                model_resets: inner.metrics.screen_model_resets.clone(),
            },
        };
        let session = Session::start(
            info,
            &command,
            hub,
            spectators,
            audience,
            Arc::clone(&metrics),
            move |s| {
                metrics.game_sessions_active.get_or_create(&label).dec();
                metrics.game_sessions_ended.get_or_create(&label).inc();
                if let Some(inner) = weak.upgrade() {
                    inner.lock().remove(&s.info.id);
                    SessionManager { inner }.game_ended(&s.info);
                }
            },
        )
        .inspect_err(|e| warn!(game = %game.id, error = %e, "cannot start the game"))?;
        if let Some(dir) = &game.inprogress_dir {
            session.write_in_progress(&inner.data_dir.join(dir));
        }
        if let Some(file) = catalog::extra_info_file(game, &session.info.username, &inner.data_dir)
        {
            session.show_extra_info(file);
        }
        // Nobody is attached yet: the game must not run unattended forever.
        self.arm_detach_timer(&session);
        let label = Metrics::game(&game.id);
        inner
            .metrics
            .game_sessions_started
            .get_or_create(&label)
            .inc();
        inner
            .metrics
            .game_sessions_active
            .get_or_create(&label)
            .inc();
        sessions.insert(session.info.id.clone(), Arc::clone(&session));
        drop(sessions);
        if let Some(remote) = inner.remote.get() {
            remote.started(&session);
        }
        let ttyrec = &management.ttyrec;
        if ttyrec.enabled {
            let weak = Arc::downgrade(inner);
            let finished = move || {
                if let Some(inner) = weak.upgrade() {
                    inner.library.forget_listing();
                }
            };
            match recorder::start(&session, ttyrec, Arc::clone(&inner.metrics), finished) {
                Ok(thread) => {
                    let mut recorders = inner.recorders.lock().unwrap_or_else(|p| p.into_inner());
                    recorders.retain(|t| !t.is_finished());
                    recorders.push(thread);
                }
                Err(e) => {
                    warn!(session_id = %session.info.id, error = %e, "cannot start the recorder")
                }
            }
        }
        Ok(session)
    }

    /// The id of `username`'s running session of `game_id`, if any.
    fn find_running(&self, game_id: &str, username: &str) -> Option<String> {
        self.inner
            .lock()
            .values()
            .find(|s| s.info.game_id == game_id && s.info.username.eq_ignore_ascii_case(username))
            .map(|s| s.info.id.clone())
    }

    /// What `game`'s hooks run with for `username`: the game's account,
    /// limits and environment, the rc file made first.
    fn hooks<'a>(
        &'a self,
        game: &'a GameConfig,
        username: &'a str,
        run_as: Option<RunAs>,
    ) -> hooks::HookRun<'a> {
        let data_dir = &self.inner.data_dir;
        let substitutions = catalog::Substitutions::new(game, username, data_dir);
        if let Some(rc) = &substitutions.rc_file
            && let Err(e) = super::rc_files::prepare(rc, game, data_dir, run_as.as_ref())
        {
            warn!(game = %game.id, %username, error = %e, "cannot make the rc file");
        }
        hooks::HookRun {
            game,
            username,
            data_dir,
            rlimits: &self.inner.config.session_management.rlimits,
            environment: game
                .environment
                .iter()
                .map(|(k, v)| (k.clone(), substitutions.expand(v)))
                .collect(),
            run_as,
        }
    }

    /// Runs the game's `game_end` hooks, on a thread of their own (the
    /// session's end is not held up by them).
    fn game_ended(&self, info: &SessionInfo) {
        let Some(game) = self.inner.config.game(&info.game_id) else {
            return;
        };
        if game.hooks.game_end.is_empty() {
            return;
        }
        let manager = self.clone();
        let (game_id, username) = (info.game_id.clone(), info.username.clone());
        let spawned = std::thread::Builder::new()
            .name("game-end-hooks".into())
            .spawn(move || {
                let config = Arc::clone(&manager.inner.config);
                let Some(game) = config.game(&game_id) else {
                    return;
                };
                let run_as = RunAs::for_game(game, config.session_management.run_as.as_deref())
                    .ok()
                    .flatten();
                manager
                    .hooks(game, &username, run_as)
                    .run("game_end", &game.hooks.game_end);
            });
        if let Err(e) = spawned {
            warn!(game = %info.game_id, error = %e, "cannot run the game_end hooks");
        }
    }

    /// Runs every game's `register` hooks for a new account `username`.
    pub fn registered(&self, username: &str) {
        let manager = self.clone();
        let username = username.to_owned();
        let config = Arc::clone(&self.inner.config);
        if config.games.iter().all(|g| g.hooks.register.is_empty()) {
            return;
        }
        tokio::task::spawn_blocking(move || {
            for game in config.games.iter().filter(|g| !g.hooks.register.is_empty()) {
                let run_as = RunAs::for_game(game, config.session_management.run_as.as_deref())
                    .ok()
                    .flatten();
                manager
                    .hooks(game, &username, run_as)
                    .run("register", &game.hooks.register);
            }
        });
    }

    /// A game running here or, in a cluster, a mirror of one another node
    /// runs (see [`Session::origin`]).
    pub fn get(&self, id: &str) -> Result<Arc<Session>, SessionError> {
        if let Ok(session) = self.get_local(id) {
            return Ok(session);
        }
        self.inner
            .remote
            .get()
            .and_then(|remote| remote.mirror(self, id))
            .ok_or_else(|| SessionError::NotFound(id.to_owned()))
    }

    /// A game running on this node.
    pub fn get_local(&self, id: &str) -> Result<Arc<Session>, SessionError> {
        self.inner
            .lock()
            .get(id)
            .cloned()
            .ok_or_else(|| SessionError::NotFound(id.to_owned()))
    }

    /// The cluster, on a node of one.
    pub fn remote(&self) -> Option<&Arc<dyn RemoteGames>> {
        self.inner.remote.get()
    }

    /// Makes this server a node of a cluster (once, before it serves).
    pub fn set_remote(&self, remote: Arc<dyn RemoteGames>) {
        if self.inner.remote.set(remote).is_err() {
            warn!("the cluster was set up twice; the first stays");
        }
    }

    /// Before a viewer joins game `id`: when another node runs it, waits
    /// (a few seconds at most) until this node's mirror shows its screen.
    pub async fn ready(&self, id: &str) {
        if self.get_local(id).is_ok() {
            return;
        }
        if let Some(remote) = self.inner.remote.get()
            && remote.mirror(self, id).is_some()
        {
            remote.ready(id).await;
        }
    }

    /// Every game to list, oldest first: this node's and, in a cluster,
    /// every other node's.
    pub fn summaries(&self) -> Vec<dgate_term::listing::SessionSummary> {
        let mut all: Vec<_> = self.list().iter().map(|s| s.summary()).collect();
        if let Some(remote) = self.inner.remote.get() {
            all.extend(remote.summaries());
            all.sort_by(|a, b| a.started_at.cmp(&b.started_at).then(a.id.cmp(&b.id)));
        }
        all
    }

    /// Active sessions, oldest first.
    pub fn list(&self) -> Vec<Arc<Session>> {
        let mut sessions: Vec<_> = self.inner.lock().values().cloned().collect();
        sessions.sort_by(|a, b| {
            a.info
                .started_at
                .cmp(&b.info.started_at)
                .then(a.info.id.cmp(&b.info.id))
        });
        sessions
    }

    pub fn active_count(&self) -> usize {
        self.inner.lock().len()
    }

    /// After `detach_grace` with no player attached (and no attach or detach in
    /// between), hangs the game up as StopGameSession does.
    pub fn arm_detach_timer(&self, session: &Arc<Session>) {
        let grace = self.inner.config.session_management.detach_grace;
        let generation = session.player_generation();
        let (manager, session) = (self.clone(), Arc::clone(session));
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(grace) => {}
                () = session.done() => return,
            }
            if session.is_detached() && session.player_generation() == generation {
                info!(session_id = %session.info.id, grace = %humantime::format_duration(grace),
                      "no player for the detach grace period; hanging the game up");
                manager.hang_up(session, false, EndReason::DetachGrace);
            }
        });
    }

    /// SIGHUP now (or SIGKILL when `force`), SIGKILL after the stop grace period.
    pub fn stop(&self, session_id: &str, reason: &str, force: bool) -> Result<(), SessionError> {
        let session = self.get(session_id)?;
        info!(session_id, reason, force, "stopping game");
        self.hang_up(session, force, EndReason::Stopped);
        Ok(())
    }

    fn hang_up(&self, session: Arc<Session>, force: bool, why: EndReason) {
        session.hanging_up(why);
        if force {
            session.signal(Signal::SIGKILL);
            return;
        }
        session.signal(Signal::SIGHUP);
        let grace = self.inner.config.session_management.stop_grace;
        self.inner.tasks.spawn(async move {
            if !session.wait_for(grace).await {
                warn!(session_id = %session.info.id, "game ignored SIGHUP; killing it");
                session.signal(Signal::SIGKILL);
            }
        });
    }

    /// Refuses new games, hangs up every game (NetHack saves on SIGHUP), waits up
    /// to `shutdown_grace`, then kills what is left and waits for it to be reaped.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.shutting_down.cancel();
        let sessions = self.list();
        if sessions.is_empty() {
            self.finish_recordings().await;
            return;
        }
        info!(sessions = sessions.len(), "hanging up every game");
        for s in &sessions {
            s.hanging_up(EndReason::Shutdown);
            s.signal(Signal::SIGHUP);
        }
        let grace = inner.config.session_management.shutdown_grace;
        let deadline = tokio::time::Instant::now() + grace;
        for s in &sessions {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if !s.wait_for(left).await {
                warn!(session_id = %s.info.id, "game did not exit after SIGHUP; killing it");
                s.signal(Signal::SIGKILL);
            }
        }
        for s in &sessions {
            s.wait_for(Duration::from_secs(5)).await;
        }
        inner.tasks.close();
        inner.tasks.wait().await;
        self.finish_recordings().await;
    }

    /// Waits for every recorder to finish (compress, write metadata).
    pub async fn finish_recordings(&self) {
        let threads = std::mem::take(
            &mut *self
                .inner
                .recorders
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let joined = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        });
        let _ = joined.await;
    }
}
