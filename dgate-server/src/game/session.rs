//! One game session: the game's process in its PTY, the reader thread that
//! owns the hub's [`Publisher`], the writer thread that types the owner's
//! input, the spectator registry, and the player's lease.
//!
//! Lifecycle: `Session::start` spawns the game and both threads. When the game
//! exits, the reader reaps it, closes the PTY, ends the hub (every stream gets
//! the exit event) and calls the manager's `on_end`, which drops the session
//! from the active list. `done()` resolves after all of that.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use portable_pty::MasterPty;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::error::SessionError;
use super::extra_info::ExtraInfoFile;
use super::inprogress::InProgress;
use super::messages::{Notice, Notices};
use super::pty::{GameCommand, GameProcess, pty_size, spawn};
use crate::accounts::User;
use crate::broadcast::chat::ChatRoom;
use crate::broadcast::{
    GameExit, Hub, HubOptions, Publisher, Resizer, SpectatorRegistry, pipeline,
};
use crate::config::TermSize;
use crate::metrics::Metrics;
use crate::viewing::audience::Audience;
use dgate_term::listing::{ExtraInfo, SessionSummary, SpectatorSummary};
use dgate_term::recording::EndReason;

/// Bytes read from the PTY at once: one frame at most.
const READ_CHUNK: usize = 16 * 1024;
/// Messages to the player a slow view may fall behind by (older ones are
/// skipped).
const NOTICE_QUEUE: usize = 16;
/// Input chunks waiting for the writer thread; senders wait when it is full.
const INPUT_QUEUE: usize = 64;

/// Who plays and what, fixed at start.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub user_id: i32,
    pub username: String,
    pub game_id: String,
    pub game_short_name: String,
    pub started_at: SystemTime,
    /// The node of a cluster that runs it; `None` on a single server.
    pub node: Option<String>,
}

pub struct Session {
    pub info: SessionInfo,
    /// Subscribe here; only the reader thread publishes.
    pub hub: Arc<Hub>,
    pub spectators: SpectatorRegistry,
    pid: Option<u32>,
    /// To the writer thread; taken (closing it) when the game ends.
    input: Mutex<Option<mpsc::Sender<Bytes>>>,
    /// Taken (closing the PTY) when the game ends.
    pty: Mutex<Option<Pty>>,
    last_input_ms: AtomicU64,
    exit: OnceLock<GameExit>,
    /// Why the server hung the game up, when it did (set before the signal).
    hung_up: OnceLock<EndReason>,
    ended_at: OnceLock<SystemTime>,
    done: CancellationToken,
    player: Mutex<PlayerSlot>,
    /// dgamelaunch's in-progress file, when the game has an `inprogress_dir`.
    in_progress: Mutex<Option<InProgress>>,
    /// The game's extra-info or `.where` file, when its config names one.
    extra_info: Mutex<Option<ExtraInfoFile>>,
    /// Messages for the player's views (spectators' `m`, announcements).
    notices: tokio::sync::broadcast::Sender<Notice>,
    /// The game's chat.
    pub chat: ChatRoom,
    /// The player's rules for their audience (shared by their games).
    audience: Arc<Audience>,
    /// For a mirror of a game another node runs (`cluster`): that node's
    /// id. Such a session has no process, no input and no player here.
    origin: Option<String>,
}

/// The PTY's master side and the hub's resizer: the terminal's size changes
/// through both together.
struct Pty {
    master: Box<dyn MasterPty + Send>,
    resizer: Resizer,
}

/// Which player stream, if any, is attached. Only the newest one is: a new
/// connection of the owner takes over and the older stream is told so.
#[derive(Debug, Default)]
struct PlayerSlot {
    current: Option<CancellationToken>,
    /// Bumped on every attach and detach, so stale detach timers do nothing.
    generation: u64,
}

/// A player stream's hold on its session; its token is cancelled when a newer
/// stream takes over.
#[derive(Debug)]
pub struct PlayerLease {
    pub taken_over: CancellationToken,
    generation: u64,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("info", &self.info)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Spawns the game and its reader and writer threads. `on_end` runs once,
    /// on the reader thread, after the game was reaped and its PTY closed.
    pub fn start(
        info: SessionInfo,
        command: &GameCommand,
        hub: HubOptions,
        spectators: SpectatorRegistry,
        audience: Arc<Audience>,
        metrics: Arc<Metrics>,
        on_end: impl FnOnce(&Arc<Session>) + Send + 'static,
    ) -> Result<Arc<Self>, SessionError> {
        let GameProcess {
            pid,
            reader,
            writer,
            master,
            child,
        } = spawn(command).map_err(|e| SessionError::Spawn {
            game: info.game_id.clone(),
            reason: format!("{e:#}"),
        })?;
        let (input_tx, input_rx) = mpsc::channel(INPUT_QUEUE);
        let (publisher, resizer) = pipeline(HubOptions {
            size: command.size,
            ..hub
        });
        let session = Arc::new(Session {
            hub: Arc::clone(publisher.hub()),
            spectators,
            pid,
            input: Mutex::new(Some(input_tx)),
            pty: Mutex::new(Some(Pty { master, resizer })),
            last_input_ms: AtomicU64::new(unix_ms(info.started_at)),
            exit: OnceLock::new(),
            hung_up: OnceLock::new(),
            ended_at: OnceLock::new(),
            done: CancellationToken::new(),
            player: Mutex::new(PlayerSlot::default()),
            in_progress: Mutex::new(None),
            extra_info: Mutex::new(None),
            notices: tokio::sync::broadcast::channel(NOTICE_QUEUE).0,
            chat: ChatRoom::default(),
            audience,
            origin: None,
            info,
        });
        let spawned = std::thread::Builder::new()
            .name(format!("pty-write-{}", &session.info.id[..8]))
            .spawn(move || write_input(writer, input_rx))
            .and_then(|_| {
                let session = Arc::clone(&session);
                std::thread::Builder::new()
                    .name(format!("pty-read-{}", &session.info.id[..8]))
                    .spawn(move || read_output(session, publisher, reader, child, &metrics, on_end))
            });
        if let Err(e) = spawned {
            // Without its threads the game cannot be played: end it now.
            session.signal(Signal::SIGKILL);
            return Err(SessionError::Spawn {
                game: session.info.game_id.clone(),
                reason: format!("cannot start session threads: {e}"),
            });
        }
        info!(session_id = %session.info.id, username = %session.info.username,
              game = %session.info.game_id, pid = ?pid, size = %command.size, "game started");
        Ok(session)
    }

    /// A mirror of a game that node `origin` runs, watched through `hub`
    /// (which the cluster feeds): no process, no input, no player here.
    /// [`Session::remote_ended`] ends it.
    pub fn remote(
        info: SessionInfo,
        hub: Arc<Hub>,
        spectators: SpectatorRegistry,
        audience: Arc<Audience>,
        origin: String,
    ) -> Arc<Self> {
        Arc::new(Session {
            last_input_ms: AtomicU64::new(unix_ms(info.started_at)),
            hub,
            spectators,
            pid: None,
            input: Mutex::new(None),
            pty: Mutex::new(None),
            exit: OnceLock::new(),
            hung_up: OnceLock::new(),
            ended_at: OnceLock::new(),
            done: CancellationToken::new(),
            player: Mutex::new(PlayerSlot::default()),
            in_progress: Mutex::new(None),
            extra_info: Mutex::new(None),
            notices: tokio::sync::broadcast::channel(NOTICE_QUEUE).0,
            chat: ChatRoom::default(),
            audience,
            origin: Some(origin),
            info,
        })
    }

    /// The node that runs this game, when it is a mirror of another node's.
    pub fn origin(&self) -> Option<&str> {
        self.origin.as_deref()
    }

    /// A mirror's game ended on its node (after its hub was ended).
    pub fn remote_ended(&self, exit: GameExit) {
        if self.origin.is_none() {
            return;
        }
        let _ = self.exit.set(exit);
        let _ = self.ended_at.set(SystemTime::now());
        self.done.cancel();
    }

    /// Queues the owner's keystrokes for the game, in order. Waits while the
    /// game is not reading its input.
    pub async fn send_input(&self, data: Bytes) -> Result<(), SessionError> {
        let sender = self
            .input
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(SessionError::Ended)?;
        self.last_input_ms
            .store(unix_ms(SystemTime::now()), Ordering::Relaxed);
        sender.send(data).await.map_err(|_| SessionError::Ended)
    }

    /// Resizes the game's terminal: the hub first, so that the game's redraw
    /// for the new size is parsed at that size, then the PTY (SIGWINCH).
    pub fn resize(&self, size: TermSize) -> Result<(), SessionError> {
        let pty = self.pty.lock().unwrap_or_else(|p| p.into_inner());
        let pty = pty.as_ref().ok_or(SessionError::Ended)?;
        pty.resizer.resize(size);
        if let Some(file) = self
            .in_progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            && let Err(e) = file.write(size)
        {
            warn!(session_id = %self.info.id, path = %file.path().display(), error = %e,
                  "cannot update the in-progress file");
        }
        pty.master
            .resize(pty_size(size))
            .map_err(|e| SessionError::invalid("terminal size", format!("{e:#}")))
    }

    /// Writes dgamelaunch's in-progress file for this game into `dir`, kept
    /// locked until the game ends. A failure is logged; the game goes on.
    pub fn write_in_progress(&self, dir: &std::path::Path) {
        let Some(pid) = self.pid else { return };
        match InProgress::create(
            dir,
            &self.info.username,
            self.info.started_at,
            pid,
            self.hub.size(),
        ) {
            Ok(file) => {
                *self.in_progress.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
            }
            Err(e) => warn!(session_id = %self.info.id, dir = %dir.display(), error = %e,
                            "cannot write the in-progress file"),
        }
    }

    /// Listings show what the game writes about itself in `file` from now on.
    pub fn show_extra_info(&self, file: ExtraInfoFile) {
        *self.extra_info.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
    }

    /// What the game says about itself now, if it says anything.
    pub fn extra_info(&self) -> Option<ExtraInfo> {
        self.extra_info
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            .and_then(ExtraInfoFile::current)
    }

    /// The player's rules for who watches and speaks.
    pub fn audience(&self) -> &Arc<Audience> {
        &self.audience
    }

    /// Tells the player's views (if any are attached) of `notice`.
    pub fn notify(&self, notice: Notice) {
        let _ = self.notices.send(notice);
    }

    /// The messages for the player from now on.
    pub fn notices(&self) -> Notices {
        Notices::new(self.notices.subscribe())
    }

    /// Sends `signal` to the game's process group, unless it has been reaped.
    pub fn signal(&self, signal: Signal) {
        if self.is_ended() {
            return;
        }
        let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) else {
            return;
        };
        if let Err(e) = killpg(Pid::from_raw(pid), signal) {
            warn!(session_id = %self.info.id, %signal, error = %e, "cannot signal the game");
        }
    }

    /// True when `user` is the player whose game this is.
    /// Never for a mirror: accounts are each node's own, and a game is
    /// played on its node.
    pub fn is_owned_by(&self, user: &User) -> bool {
        self.origin.is_none() && i64::from(self.info.user_id) == user.id
    }

    /// Attaches a player stream, taking over from any attached one.
    pub fn attach_player(&self) -> PlayerLease {
        let mut slot = self.player.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(previous) = slot.current.take() {
            previous.cancel();
        }
        let token = CancellationToken::new();
        slot.current = Some(token.clone());
        slot.generation += 1;
        PlayerLease {
            taken_over: token,
            generation: slot.generation,
        }
    }

    /// Detaches a player stream; true when that left the game without a player.
    pub fn detach_player(&self, lease: &PlayerLease) -> bool {
        let mut slot = self.player.lock().unwrap_or_else(|p| p.into_inner());
        if slot.generation != lease.generation {
            return false;
        }
        slot.current = None;
        slot.generation += 1;
        true
    }

    /// No player stream is attached.
    pub fn is_detached(&self) -> bool {
        self.player
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .current
            .is_none()
    }

    /// Changes on every attach and detach.
    pub fn player_generation(&self) -> u64 {
        self.player
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .generation
    }

    /// Resolves once the game was reaped and every stream was told.
    pub async fn done(&self) {
        self.done.cancelled().await;
    }

    /// Waits up to `limit` for the game to end; true when it did.
    pub async fn wait_for(&self, limit: Duration) -> bool {
        tokio::time::timeout(limit, self.done()).await.is_ok()
    }

    pub fn is_ended(&self) -> bool {
        self.exit.get().is_some()
    }

    /// Notes why the server is hanging the game up (the first reason given
    /// stands), before it signals it.
    pub fn hanging_up(&self, why: EndReason) {
        let _ = self.hung_up.set(why);
    }

    /// Why the game ended, given how its process ended.
    pub fn end_reason(&self, exit: &GameExit) -> EndReason {
        match (self.hung_up.get(), exit) {
            (Some(why), _) => *why,
            (None, GameExit::Exited { .. }) => EndReason::Exited,
            (None, GameExit::Killed { .. }) => EndReason::Killed,
        }
    }

    pub fn exit(&self) -> Option<&GameExit> {
        self.exit.get()
    }

    pub fn ended_at(&self) -> Option<SystemTime> {
        self.ended_at.get().copied()
    }

    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// The owner's last input (the start time before any).
    pub fn last_activity(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.last_input_ms.load(Ordering::Relaxed))
    }
}

impl Session {
    /// The session as listings show it (menus, `GET /sessions`, gRPC).
    pub fn summary(&self) -> SessionSummary {
        let registry = self.spectators.load();
        SessionSummary {
            id: self.info.id.clone(),
            user_id: self.info.user_id,
            username: self.info.username.clone(),
            game_id: self.info.game_id.clone(),
            game_short_name: self.info.game_short_name.clone(),
            size: self.hub.size(),
            started_at: self.info.started_at,
            ended_at: self.ended_at(),
            last_activity: self.last_activity(),
            spectators: registry
                .in_join_order()
                .iter()
                .map(|s| SpectatorSummary {
                    user_id: s.user_id,
                    username: s.username.clone(),
                    joined_at: s.joined_at,
                    connected: s.connected.load(Ordering::Relaxed),
                })
                .collect(),
            detached: self.is_detached(),
            frames: self.hub.last_frame_id().get(),
            extra_info: self.extra_info(),
            private: self.audience.block() == crate::viewing::audience::Block::All,
            node: self.info.node.clone(),
        }
    }
}

/// The writer thread: types queued input into the PTY until the session closes
/// the queue.
fn write_input(mut writer: Box<dyn Write + Send>, mut input: mpsc::Receiver<Bytes>) {
    while let Some(data) = input.blocking_recv() {
        if writer
            .write_all(&data)
            .and_then(|()| writer.flush())
            .is_err()
        {
            break;
        }
    }
}

/// The reader thread: it owns the session's [`Publisher`], so it is the only
/// one that publishes into the hub, and the one that ends it.
fn read_output(
    session: Arc<Session>,
    publisher: Publisher,
    mut reader: Box<dyn Read + Send>,
    mut child: Box<dyn portable_pty::Child + Send + Sync>,
    metrics: &Metrics,
    on_end: impl FnOnce(&Arc<Session>),
) {
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let started = std::time::Instant::now();
                publisher.publish(Bytes::copy_from_slice(&buf[..n]));
                Metrics::observe(
                    &metrics.spectator_frame_processing_duration_seconds,
                    started.elapsed(),
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            // EIO: every holder of the slave side is gone.
            Err(_) => break,
        }
    }
    drop(reader);
    let exit = match child.wait() {
        Ok(status) => match status.signal() {
            Some(signal) => GameExit::Killed {
                signal: signal.to_owned(),
            },
            None => GameExit::Exited {
                code: i32::try_from(status.exit_code()).unwrap_or(i32::MAX),
            },
        },
        Err(e) => {
            // Only a process that is not our child cannot be waited for.
            warn!(session_id = %session.info.id, error = %e, "cannot reap the game");
            GameExit::Exited { code: -1 }
        }
    };
    let _ = session.ended_at.set(SystemTime::now());
    let _ = session.exit.set(exit.clone());
    // Close the PTY: the writer thread ends when its queue closes.
    session
        .input
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    session.pty.lock().unwrap_or_else(|p| p.into_inner()).take();
    // Gone before anyone hears of the end: bots never list a finished game.
    session
        .in_progress
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take();
    let frames = session.hub.last_frame_id();
    publisher.end(exit.clone());
    info!(session_id = %session.info.id, code = ?exit.code(), signal = ?exit.signal(),
          %frames, "game ended");
    on_end(&session);
    session.done.cancel();
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
