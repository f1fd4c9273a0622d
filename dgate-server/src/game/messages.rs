//! Messages to players, as dgamelaunch has them: a logged-in spectator's one
//! line (`m` while watching) and an admin's announcement to every player.
//!
//! A message goes two ways: appended to the game's mail spool
//! (`games[].mail_spool`) as `sender:message\n` under an `fcntl` write lock,
//! which a NetHack built with `SIMPLE_MAIL` reads as mail; and to the
//! session's notice channel, which dgate's own player views show (a spare row,
//! or when the player leaves the game). Announcements are also kept for the
//! menus for an hour.
//!
//! `dgate-server announce TEXT` runs beside the server: it leaves the text in
//! the data directory's `announcements/` queue, which the server delivers
//! from within a second ([`deliver_queued`]).

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::catalog::{Substitutions, give_to, hand_over};
use super::pty::RunAs;
use super::{Session, SessionError, SessionManager};
use crate::accounts::User;
use crate::config::{Config, GameConfig};
use crate::limits::PerName;

/// The longest message, in characters (dgamelaunch's prompt holds 80).
pub const MAX_CHARS: usize = 80;
/// Messages one sender may send per [`SENDER_WINDOW`].
pub const PER_SENDER: usize = 5;
pub const SENDER_WINDOW: Duration = Duration::from_secs(60);
/// How long an announcement stays in the menus.
pub const ANNOUNCEMENT_SHOWN_FOR: Duration = Duration::from_secs(3600);
/// The queue `dgate-server announce` writes into, under the data directory.
pub const QUEUE_DIR: &str = "announcements";
/// How long a message waits for the game to release its spool's lock.
pub const SPOOL_LOCK_WAIT: Duration = Duration::from_secs(2);
/// How often the server looks at the queue.
const QUEUE_POLL: Duration = Duration::from_secs(1);

/// One message for a player.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The sender's account name; `None` for an announcement.
    pub sender: Option<String>,
    pub text: String,
    pub sent_at: SystemTime,
}

impl Notice {
    /// `alice: hello` or `Announcement: ...`, as the player views show it.
    pub fn line(&self) -> String {
        match &self.sender {
            Some(sender) => format!("{sender}: {}", self.text),
            None => format!("Announcement: {}", self.text),
        }
    }
}

/// A player view's messages, from when it asked on.
#[derive(Debug)]
pub struct Notices(tokio::sync::broadcast::Receiver<Notice>);

impl Notices {
    pub fn new(receiver: tokio::sync::broadcast::Receiver<Notice>) -> Self {
        Self(receiver)
    }

    /// The next message; never resolves once the game is gone. Messages a
    /// slow view fell behind by are skipped.
    pub async fn next(&mut self) -> Notice {
        use tokio::sync::broadcast::error::RecvError;
        loop {
            match self.0.recv().await {
                Ok(notice) => return notice,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

/// `text` as a message: control characters removed, blanks trimmed; empty
/// or over [`MAX_CHARS`] is refused with the reason.
pub fn clean(text: &str) -> Result<String, SessionError> {
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let text = text.trim();
    if text.is_empty() {
        return Err(SessionError::invalid("message", "it is empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_CHARS {
        return Err(SessionError::invalid(
            "message",
            format!("{chars} characters; at most {MAX_CHARS}"),
        ));
    }
    Ok(text.to_owned())
}

/// The per-sender rate limit and the announcements of the last hour.
#[derive(Debug)]
pub struct Messenger {
    sent: PerName,
    announcements: Mutex<VecDeque<(Instant, Notice)>>,
}

impl Default for Messenger {
    fn default() -> Self {
        Self {
            sent: PerName::new(PER_SENDER, SENDER_WINDOW),
            announcements: Mutex::default(),
        }
    }
}

impl Messenger {
    /// Counts one message of `sender`; refused past [`PER_SENDER`] a window.
    fn allow(&self, sender: &str) -> Result<(), SessionError> {
        self.sent.allow(sender).map_err(|wait| {
            SessionError::Limit(format!(
                "at most {PER_SENDER} messages a minute; try again in {} s",
                wait.as_secs().max(1)
            ))
        })
    }

    fn remember(&self, notice: Notice) {
        let mut kept = self.announcements.lock().unwrap_or_else(|p| p.into_inner());
        kept.push_back((Instant::now(), notice));
        while kept.len() > 20 {
            kept.pop_front();
        }
    }

    /// Announcements of the last hour, oldest first.
    pub fn announcements(&self) -> Vec<Notice> {
        let mut kept = self.announcements.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|(at, _)| at.elapsed() < ANNOUNCEMENT_SHOWN_FOR);
        kept.iter().map(|(_, n)| n.clone()).collect()
    }
}

/// `sender`'s message to the player of `session_id`; true when it also went
/// to the game's mail spool.
pub async fn send(
    manager: &SessionManager,
    session_id: &str,
    sender: &User,
    text: &str,
) -> Result<bool, SessionError> {
    let text = clean(text)?;
    let session = manager.get(session_id)?;
    if session.origin().is_some() {
        // Another node's game: its node delivers it, under its rules.
        let remote = manager.remote().ok_or(SessionError::Ended)?;
        return remote.message(&session, sender, &text).await;
    }
    send_here(manager, &session, sender, text).await
}

/// [`send`] for a game of this node.
pub async fn send_here(
    manager: &SessionManager,
    session: &Arc<Session>,
    sender: &User,
    text: String,
) -> Result<bool, SessionError> {
    let text = clean(&text)?;
    let session_id = session.info.id.as_str();
    if session.is_ended() {
        return Err(SessionError::Ended);
    }
    // Whom the player keeps away or mutes does not write to them either.
    if let Some(why) = session.audience().refuses(Some(sender)) {
        return Err(SessionError::NotAllowed(why));
    }
    if session.audience().is_muted(&sender.username) {
        return Err(SessionError::NotAllowed(format!(
            "{} has muted you",
            session.info.username
        )));
    }
    manager.messenger().allow(&sender.username)?;
    let notice = Notice {
        sender: Some(sender.username.clone()),
        text,
        sent_at: SystemTime::now(),
    };
    let spooled = deliver(manager, session, &notice).await;
    manager.metrics().player_messages.inc();
    info!(session_id, from = %sender.username, to = %session.info.username, spooled,
          "message to a player");
    Ok(spooled)
}

/// An announcement to every player now playing; how many there were.
pub async fn announce(manager: &SessionManager, text: &str) -> Result<usize, SessionError> {
    let text = clean(text)?;
    let notice = Notice {
        sender: None,
        text,
        sent_at: SystemTime::now(),
    };
    let sessions: Vec<_> = manager
        .list()
        .into_iter()
        .filter(|s| !s.is_ended())
        .collect();
    for session in &sessions {
        deliver(manager, session, &notice).await;
        manager.metrics().player_messages.inc();
    }
    manager.messenger().remember(notice.clone());
    info!(players = sessions.len(), text = %notice.text, "announcement");
    Ok(sessions.len())
}

/// To the session's player views and, when the game has one, its spool;
/// true when the spool got it. A spool that cannot be written is logged.
async fn deliver(manager: &SessionManager, session: &Session, notice: &Notice) -> bool {
    session.notify(notice.clone());
    let config = manager.config();
    let Some(game) = config.game(&session.info.game_id) else {
        return false;
    };
    let Some((path, run_as)) = spool_of(config, game, &session.info.username) else {
        return false;
    };
    // dgamelaunch writes the server's id for an announcement's sender.
    let sender = notice
        .sender
        .clone()
        .unwrap_or_else(|| config.ssh.server_id.clone());
    let data_dir = config.data_dir.clone();
    let text = notice.text.clone();
    let spool = path.clone();
    // The lock may be the game's for a moment: waited for off the runtime.
    let appended = tokio::task::spawn_blocking(move || {
        append_to_spool(&spool, &data_dir, run_as.as_ref(), &sender, &text)
    })
    .await;
    match appended {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            warn!(path = %path.display(), error = %e, "cannot write to the mail spool");
            false
        }
        Err(e) => {
            warn!(path = %path.display(), error = %e, "the mail spool writer failed");
            false
        }
    }
}

/// Where `username`'s spool for `game` is, and the account the game runs
/// as; `None` when the game has no spool.
fn spool_of(
    config: &Config,
    game: &GameConfig,
    username: &str,
) -> Option<(PathBuf, Option<RunAs>)> {
    let template = game.mail_spool.as_ref()?;
    let substitutions = Substitutions::new(game, username, &config.data_dir);
    let path = config.data_dir.join(substitutions.expand(template));
    let run_as = RunAs::for_game(game, config.session_management.run_as.as_deref())
        .ok()
        .flatten();
    Some((path, run_as))
}

/// Makes `username`'s spool for `game` (empty) before the game starts, if
/// the game has one: a game that finds no mailbox at start (NetHack built
/// with `PERMANENT_MAILBOX`) never looks again.
pub fn prepare_spool(config: &Config, game: &GameConfig, username: &str) {
    let Some((path, run_as)) = spool_of(config, game, username) else {
        return;
    };
    if let Err(e) = open_spool(&path, &config.data_dir, run_as.as_ref()) {
        warn!(path = %path.display(), error = %e, "cannot make the mail spool");
    }
}

/// The spool at `path` opened for appending, made (with its directory under
/// `data_dir`) the game account's when it is new.
fn open_spool(
    path: &Path,
    data_dir: &Path,
    run_as: Option<&RunAs>,
) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| d.starts_with(data_dir)) {
        std::fs::create_dir_all(dir)?;
        if let Some(run_as) = run_as {
            hand_over(dir, data_dir, run_as)?;
        }
    }
    let created = !path.exists();
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o660)
        .open(path)?;
    if created {
        file.set_permissions(std::fs::Permissions::from_mode(0o660))?;
        if let Some(run_as) = run_as {
            give_to(path, run_as)?;
        }
    }
    Ok(file)
}

/// Appends `sender:text\n` to the spool at `path` under a whole-file `fcntl`
/// write lock, as dgamelaunch does, waiting up to [`SPOOL_LOCK_WAIT`] for the
/// game to let go of it (a game holding it longer cannot hold up the
/// server); the file (and its directory under `data_dir`) made the game
/// account's.
pub fn append_to_spool(
    path: &Path,
    data_dir: &Path,
    run_as: Option<&RunAs>,
    sender: &str,
    text: &str,
) -> std::io::Result<()> {
    let mut file = open_spool(path, data_dir, run_as)?;
    let request = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    // Held by this open file; released when it is closed below.
    let deadline = Instant::now() + SPOOL_LOCK_WAIT;
    loop {
        match fcntl(file.as_fd(), FcntlArg::F_OFD_SETLK(&request)) {
            Ok(_) => break,
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EACCES)
                if Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e.into()),
        }
    }
    file.write_all(format!("{sender}:{text}\n").as_bytes())?;
    file.flush()
}

/// Leaves `text` in `data_dir`'s announcement queue for the running server
/// (`dgate-server announce`); checked as the server would check it.
pub fn queue_announcement(data_dir: &Path, text: &str) -> Result<PathBuf, String> {
    let text = clean(text).map_err(|e| e.to_string())?;
    let dir = data_dir.join(QUEUE_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    let mut file = tempfile::Builder::new()
        .prefix(".new-")
        .tempfile_in(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    file.write_all(text.as_bytes())
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    // Readable by the server when this ran as another user (root).
    let _ = file
        .as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644));
    let stamp = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let path = dir.join(format!("{stamp}-{}.txt", std::process::id()));
    file.persist(&path)
        .map_err(|e| format!("{}: {}", path.display(), e.error))?;
    Ok(path)
}

/// Delivers what `dgate-server announce` queued, until `stop`: each file
/// once, oldest first, then removed. Files older than an hour (left while no
/// server ran) are removed unsent.
pub async fn deliver_queued(manager: SessionManager, stop: CancellationToken) {
    let dir = manager.config().data_dir.join(QUEUE_DIR);
    // The server's own, so that whoever queues (root too) leaves files it
    // can read and remove.
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
    {
        warn!(path = %dir.display(), error = %e, "cannot make the announcement queue");
    }
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(QUEUE_POLL) => {}
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut queued: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        queued.sort();
        for path in queued {
            let fresh = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age < ANNOUNCEMENT_SHOWN_FOR);
            let text = read_prefix(&path);
            if let Err(e) = std::fs::remove_file(&path) {
                warn!(path = %path.display(), error = %e, "cannot remove a queued announcement");
                continue;
            }
            match text {
                Some(text) if fresh => {
                    if let Err(e) = announce(&manager, &text).await {
                        warn!(path = %path.display(), error = %e, "a queued announcement was refused");
                    }
                }
                _ => {}
            }
        }
    }
}

fn read_prefix(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .ok()?
        .take(4096)
        .read_to_end(&mut bytes)
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_clean_line() {
        assert_eq!(clean("  hi there\r\n").expect("ok"), "hi there");
        assert_eq!(clean("a\x1b[2Jb").expect("ok"), "a[2Jb");
        assert!(clean(" \x07 ").is_err());
        assert!(clean(&"x".repeat(MAX_CHARS)).is_ok());
        let err = clean(&"x".repeat(MAX_CHARS + 1)).expect_err("long");
        assert!(err.to_string().contains("at most 80"), "{err}");
    }

    #[test]
    fn a_sender_gets_five_a_minute() {
        let messenger = Messenger::default();
        for _ in 0..PER_SENDER {
            messenger.allow("Alice").expect("allowed");
        }
        let err = messenger.allow("alice").expect_err("limited");
        assert!(
            err.to_string().contains("at most 5 messages a minute"),
            "{err}"
        );
        messenger
            .allow("bob")
            .expect("another sender is not limited");
    }

    #[test]
    fn the_spool_gets_dgamelaunchs_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = dir.path().join("mail/alice");
        append_to_spool(&spool, dir.path(), None, "bob", "hello").expect("append");
        append_to_spool(
            &spool,
            dir.path(),
            None,
            "carol",
            "watch out: a soldier ant",
        )
        .expect("append");
        assert_eq!(
            std::fs::read_to_string(&spool).expect("spool"),
            "bob:hello\ncarol:watch out: a soldier ant\n"
        );
    }

    #[test]
    fn queued_announcements_are_checked_first() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = queue_announcement(dir.path(), "Server restart at 12:00 UTC").expect("queued");
        assert_eq!(
            std::fs::read_to_string(path).expect("file"),
            "Server restart at 12:00 UTC"
        );
        assert!(queue_announcement(dir.path(), "").is_err());
    }
}
