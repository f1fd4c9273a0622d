//! What a browser's socket carries (`/ws/spectate` and `/ws/replay`): the
//! hub's own bytes for the terminal emulator in the page, and small JSON
//! control messages beside them. No screen model of the server's is on the
//! web: the page's emulator (xterm.js) draws the bytes the player's terminal
//! drew.
//!
//! **Binary messages are terminal bytes**, exactly as the hub has them:
//! - a frame: the `Bytes` the game wrote, the hub's own (every browser is
//!   sent the same `Bytes`: axum's `Message::Binary` holds one, so nothing
//!   is copied or encoded per browser, or per frame);
//! - the body of a snapshot: the bytes that redraw the screen on a reset
//!   terminal, right after the `snapshot` control that announces it.
//!
//! **Text messages are JSON controls** (`type`):
//! - `snapshot` (`frame_id`, `cols`, `rows`, `skipped`): the next binary
//!   message is a whole screen at frame `frame_id`: reset the terminal, make
//!   it cols×rows, write it. It comes first (join), after a resync (`skipped`
//!   frames were missed) and after a resize;
//! - `resize` (`cols`, `rows`): the game's terminal changed size;
//! - `status` (`player`, `game` as menus show it, `watchers`);
//! - `end` (`message`, and `replay`, the replay page's path, when the game
//!   is recorded): nothing follows;
//! - on a replay page, `replay` and `replay_state`;
//! - `chat` (a line of the game's chat, escaped by the page, never HTML),
//!   `audience` (who watches), `answer` (for this page alone: a command's
//!   result or a refusal) and, on the play page, `notice` (a message for
//!   the player).
//!
//! **What a page sends** is JSON text too (`type`): `chat` (`text`) on
//! every page; `message` (`text`, a message for the player) on a watch
//! page; `resize` (`cols`, `rows`) on the play page, whose binary messages
//! are the player's keystrokes. A watch page's binary messages close its
//! socket: spectators never type into the game.
//!
//! **Frame ids** are implicit: the frames after a snapshot at K are K+1,
//! K+2, ... one per binary message (the hub's promise: no gap, no
//! duplicate). A page counts them, and a page that reconnects with
//! `?from=ID` gets the messages after that frame ([`super::feed`]). A
//! replay numbers its own the same way, from its first screen.
//!
//! Why no id in each frame: a header would make each frame a new buffer
//! (a copy per frame, 9 more bytes per message); counting costs nothing
//! and the ids are still exact. The load tool checks them against the
//! frames' own stamps (docs/BENCHMARKS.md).

use axum::extract::ws::Message;
use bytes::Bytes;
use serde::Serialize;

use crate::broadcast::chat::ChatLine;
use crate::config::TermSize;

/// A snapshot's two messages: the control that announces it, then its body.
pub fn snapshot(frame_id: u64, size: TermSize, skipped: u64, data: Bytes) -> [Message; 2] {
    let control = Control::Snapshot {
        frame_id,
        cols: size.cols,
        rows: size.rows,
        skipped,
    };
    [text(&control), Message::Binary(data)]
}

/// A control's message.
pub fn text(control: &Control) -> Message {
    Message::Text(control.json().into())
}

/// A control message (sent as JSON text).
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Control {
    /// The next binary message is the whole screen at `frame_id`, drawn on
    /// a reset terminal of `cols`×`rows`; `skipped` frames were missed.
    Snapshot {
        frame_id: u64,
        cols: u16,
        rows: u16,
        skipped: u64,
    },
    /// The game's terminal is now this size.
    Resize { cols: u16, rows: u16 },
    /// The session as menus list it, for the status line.
    Status {
        player: String,
        game: String,
        watchers: usize,
    },
    /// The game is over, or the stream ended; why, and where its replay is.
    End {
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        replay: Option<String>,
    },
    /// A replay begins: whose game, and how long it plays.
    Replay {
        player: String,
        game: String,
        /// The game's id, when it differs from `game`.
        game_id: String,
        /// RFC 3339, UTC.
        start: String,
        duration: f64,
    },
    /// Where a replay is: sent when it changes course (seek, speed, pause,
    /// the end) and a few times a second while it plays.
    ReplayState {
        position: f64,
        speed: f64,
        paused: bool,
        ended: bool,
    },
    /// A line of the game's chat (live, or a replay's at its moment);
    /// `history` on the lines a joiner is given before live ones.
    Chat {
        id: u64,
        sender: String,
        text: String,
        /// RFC 3339, UTC, milliseconds.
        sent_at: String,
        from_player: bool,
        from_admin: bool,
        history: bool,
    },
    /// For this page alone: a chat command's result, or why a line or a
    /// message went nowhere.
    Answer { text: String },
    /// Who watches: logged-in spectators' names (in the order they came)
    /// and how many watch anonymously.
    Audience {
        names: Vec<String>,
        anonymous: usize,
    },
    /// On the play page: a spectator's message or an administrator's
    /// announcement (`sender` empty) for the player.
    Notice {
        sender: String,
        text: String,
        announcement: bool,
    },
}

impl Control {
    /// A chat line's control.
    pub fn chat(line: &ChatLine, history: bool) -> Self {
        Self::Chat {
            id: line.id,
            sender: line.sender.clone(),
            text: line.text.clone(),
            sent_at: humantime::format_rfc3339_millis(line.sent_at).to_string(),
            from_player: line.from_player,
            from_admin: line.from_admin,
            history,
        }
    }
}

impl Control {
    pub fn json(&self) -> String {
        serde_json::to_string(self)
            .unwrap_or_else(|e| format!(r#"{{"type":"end","message":"encoding failed: {e}"}}"#))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_tagged_json() {
        let end = Control::End {
            message: "over".into(),
            replay: None,
        };
        assert_eq!(end.json(), r#"{"type":"end","message":"over"}"#);
        let resize = Control::Resize { cols: 80, rows: 24 };
        assert_eq!(resize.json(), r#"{"type":"resize","cols":80,"rows":24}"#);
        let snapshot = Control::Snapshot {
            frame_id: 7,
            cols: 180,
            rows: 50,
            skipped: 3,
        };
        assert_eq!(
            snapshot.json(),
            r#"{"type":"snapshot","frame_id":7,"cols":180,"rows":50,"skipped":3}"#
        );
    }
}
