//! One game's chat as a broadcast, like its frames: every line is made once
//! (an `Arc` shared by every viewer), kept in a short history for joiners,
//! and fanned out through a bounded queue. A viewer that falls behind never
//! slows anyone: it skips to the recent history, as a stalled frame viewer
//! skips to a snapshot.
//!
//! Who may say what (accounts, mutes, commands) is [`crate::viewing::chat`]'s;
//! this only carries lines. Each line may also be appended to a JSON Lines
//! file beside the game's recording, so that replays show the chat in time.

use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Lines a joiner is given before live ones.
pub const HISTORY: usize = 50;
/// Lines a viewer may fall behind by before it skips to the history.
const QUEUE: usize = 256;

/// One line of a game's chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatLine {
    /// Increasing per game, from 1.
    pub id: u64,
    /// The sender's account name (from their login, never from the line).
    pub sender: String,
    pub text: String,
    #[serde(with = "humantime_serde_compat")]
    pub sent_at: SystemTime,
    /// The game's player said it.
    pub from_player: bool,
    /// An administrator said it.
    pub from_admin: bool,
}

/// What a viewer's chat receiver gives.
#[derive(Debug, Clone)]
pub enum ChatItem {
    Line(Arc<ChatLine>),
    /// The viewer fell behind: the recent lines it has not seen, oldest first.
    Skipped(Vec<Arc<ChatLine>>),
}

/// A game's chat; its receivers share it.
#[derive(Debug, Default)]
pub struct ChatRoom(Arc<Room>);

#[derive(Debug)]
struct Room {
    history: Mutex<VecDeque<Arc<ChatLine>>>,
    sender: broadcast::Sender<Arc<ChatLine>>,
    next_id: AtomicU64,
    /// `<recording>.chat.jsonl`, while the game is recorded: its path,
    /// and the file once a line was said.
    log: Mutex<Option<(PathBuf, Option<std::fs::File>)>>,
}

impl Default for Room {
    fn default() -> Self {
        Self {
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            sender: broadcast::channel(QUEUE).0,
            next_id: AtomicU64::new(1),
            log: Mutex::new(None),
        }
    }
}

impl ChatRoom {
    /// Appends every line from now on to the file at `path` (JSON Lines),
    /// made when the first line is said.
    pub fn record_to(&self, path: PathBuf) {
        *self.0.log.lock().unwrap_or_else(|p| p.into_inner()) = Some((path, None));
    }

    /// Stops recording (the game's recording is finished).
    pub fn stop_recording(&self) {
        self.0.log.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Says a line to everyone watching; the line as sent.
    pub fn post(
        &self,
        sender: &str,
        text: String,
        from_player: bool,
        from_admin: bool,
    ) -> Arc<ChatLine> {
        // The history lock orders ids, history and the queue alike, so a
        // joiner sees each line exactly once, in history or live.
        let room = &self.0;
        let mut history = room.history.lock().unwrap_or_else(|p| p.into_inner());
        let line = Arc::new(ChatLine {
            id: room.next_id.fetch_add(1, Ordering::Relaxed),
            sender: sender.to_owned(),
            text,
            sent_at: SystemTime::now(),
            from_player,
            from_admin,
        });
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(Arc::clone(&line));
        let _ = room.sender.send(Arc::clone(&line));
        drop(history);
        if let Some((path, file)) = room.log.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            if file.is_none() {
                *file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&*path)
                    .inspect_err(|e| {
                        tracing::warn!(path = %path.display(), error = %e, "cannot record the chat");
                    })
                    .ok();
            }
            if let (Some(file), Ok(mut json)) = (file.as_mut(), serde_json::to_vec(&*line)) {
                json.push(b'\n');
                let _ = file.write_all(&json);
            }
        }
        line
    }

    /// In a mirror: a line as the game's node numbered and sent it. A line
    /// at or before the last one here (heard twice: live and in a
    /// snapshot's history) is dropped.
    pub fn relay(&self, line: ChatLine) {
        let room = &self.0;
        let mut history = room.history.lock().unwrap_or_else(|p| p.into_inner());
        if line.id < room.next_id.load(Ordering::Relaxed) {
            return;
        }
        room.next_id
            .store(line.id.saturating_add(1), Ordering::Relaxed);
        let line = Arc::new(line);
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(Arc::clone(&line));
        let _ = room.sender.send(line);
    }

    /// The recent lines, oldest first.
    pub fn recent(&self) -> Vec<Arc<ChatLine>> {
        self.0.since(0)
    }

    /// The recent lines and a receiver of every later one.
    pub fn join(&self) -> (Vec<Arc<ChatLine>>, ChatReceiver) {
        let history = self.0.history.lock().unwrap_or_else(|p| p.into_inner());
        let receiver = self.0.sender.subscribe();
        let recent: Vec<_> = history.iter().cloned().collect();
        let last = recent.last().map_or(0, |l| l.id);
        (
            recent,
            ChatReceiver {
                receiver,
                last,
                room: Arc::clone(&self.0),
            },
        )
    }
}

impl Room {
    /// The recent lines after `id`.
    fn since(&self, id: u64) -> Vec<Arc<ChatLine>> {
        self.history
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .filter(|l| l.id > id)
            .cloned()
            .collect()
    }
}

/// One viewer's place in a game's chat.
#[derive(Debug)]
pub struct ChatReceiver {
    receiver: broadcast::Receiver<Arc<ChatLine>>,
    /// The last line it was given.
    last: u64,
    room: Arc<Room>,
}

impl ChatReceiver {
    /// The next line, or the recent ones after falling behind; never
    /// resolves once the room is gone.
    pub async fn next(&mut self) -> ChatItem {
        loop {
            match self.receiver.recv().await {
                Ok(line) if line.id <= self.last => continue,
                Ok(line) => {
                    self.last = line.id;
                    return ChatItem::Line(line);
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    self.receiver = self.receiver.resubscribe();
                    let recent = self.room.since(self.last);
                    if let Some(last) = recent.last() {
                        self.last = last.id;
                    }
                    return ChatItem::Skipped(recent);
                }
                Err(broadcast::error::RecvError::Closed) => std::future::pending::<()>().await,
            }
        }
    }
}

/// The most of a chat log a replay reads (bytes)...
const LOG_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// ...and lines.
const LOG_MAX_LINES: usize = 200_000;

/// The lines of a chat log (`<recording>.chat.jsonl`), in the order said;
/// none when there is no log. A line that is not a chat line (damaged,
/// cut short by a crash) is skipped; past [`LOG_MAX_BYTES`] or
/// [`LOG_MAX_LINES`] the rest is left unread.
pub fn read_log(path: &std::path::Path) -> Vec<ChatLine> {
    use std::io::{BufRead, Read};
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read a recording's chat");
            return Vec::new();
        }
    };
    let reader = std::io::BufReader::new(file.take(LOG_MAX_BYTES));
    let mut lines = Vec::new();
    let mut skipped = 0usize;
    for text in reader.split(b'\n') {
        let Ok(text) = text else {
            skipped += 1;
            break;
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<ChatLine>(&text) {
            Ok(line) if lines.len() < LOG_MAX_LINES => lines.push(line),
            Ok(_) => break,
            Err(_) => skipped += 1,
        }
    }
    if skipped > 0 {
        tracing::warn!(path = %path.display(), skipped, "skipped damaged lines of a recording's chat");
    }
    lines
}

/// `sent_at` as RFC 3339 in the chat log.
mod humantime_serde_compat {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn joiners_get_the_history_then_every_line_once() {
        let room = ChatRoom::default();
        for i in 0..(HISTORY + 5) {
            room.post("alice", format!("line {i}"), false, false);
        }
        let (history, mut receiver) = room.join();
        assert_eq!(history.len(), HISTORY);
        assert_eq!(history[0].text, "line 5");
        room.post("bob", "live".into(), true, false);
        match receiver.next().await {
            ChatItem::Line(line) => {
                assert_eq!((line.sender.as_str(), line.text.as_str()), ("bob", "live"));
                assert!(line.from_player);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_viewer_that_falls_behind_skips_to_the_recent_lines() {
        let room = ChatRoom::default();
        let (_, mut slow) = room.join();
        for i in 0..(QUEUE + 100) {
            room.post("alice", format!("line {i}"), false, false);
        }
        match slow.next().await {
            ChatItem::Skipped(recent) => {
                assert_eq!(recent.len(), HISTORY);
                assert_eq!(recent.last().map(|l| l.text.as_str()), Some("line 355"));
            }
            other => panic!("{other:?}"),
        }
        room.post("bob", "after".into(), false, false);
        match slow.next().await {
            ChatItem::Line(line) => assert_eq!(line.text, "after"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_chat_log_is_read_skipping_what_is_not_a_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("game.chat.jsonl");
        assert!(read_log(&path).is_empty(), "no log, no chat");
        let room = ChatRoom::default();
        room.record_to(path.clone());
        room.post("alice", "first".into(), true, false);
        {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("log");
            file.write_all(b"not json\n{\"id\": 7}\n\n\xff\xfe\n")
                .expect("garbage");
        }
        room.post("bob", "second".into(), false, false);
        {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(&path)
                .expect("log");
            file.write_all(b"{\"id\": 3, \"sender\": \"cut")
                .expect("a line cut short");
        }
        let lines = read_log(&path);
        let texts: Vec<_> = lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["first", "second"]);
    }

    #[test]
    fn lines_are_recorded_as_json_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("game.chat.jsonl");
        let room = ChatRoom::default();
        room.record_to(path.clone());
        room.post("alice", "hi \"there\"".into(), false, true);
        room.stop_recording();
        room.post("alice", "not recorded".into(), false, false);
        let text = std::fs::read_to_string(&path).expect("log");
        assert_eq!(text.lines().count(), 1);
        let line: ChatLine = serde_json::from_str(text.trim()).expect("JSON");
        assert_eq!(
            (line.id, line.text.as_str(), line.from_admin),
            (1, "hi \"there\"", true)
        );
    }
}
