//! What a listing says about games and recordings, in domain terms: the
//! server builds these from its sessions and recording files, the client from
//! the gRPC messages at its own edge, and both menus, `GET /sessions` and
//! `dgate list --json` read them. No protobuf here.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::TermSize;

/// One game in progress (or just ended) as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionSummary {
    pub id: String,
    /// The player's account id.
    pub user_id: i32,
    pub username: String,
    pub game_id: String,
    /// `NH36`; empty when the game has none.
    pub game_short_name: String,
    pub size: TermSize,
    pub started_at: SystemTime,
    /// `Some` once the game has ended.
    pub ended_at: Option<SystemTime>,
    /// The player's last input (the start before any).
    pub last_activity: SystemTime,
    /// Earliest first.
    pub spectators: Vec<SpectatorSummary>,
    /// No player is connected; the game waits for its owner to reattach.
    pub detached: bool,
    /// Frames of output so far.
    pub frames: u64,
    /// What the game says about itself ("Dlvl:12 Val-Hum-Fem"), when its
    /// config names a file for it.
    pub extra_info: Option<ExtraInfo>,
    /// The player lets nobody watch (`/block all`).
    pub private: bool,
    /// The node of a cluster that runs it; `None` on a single server.
    pub node: Option<String>,
}

/// The one line a game writes about itself for the watch menus, and the
/// number those sort it by (higher first): dgamelaunch's `weight|text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtraInfo {
    pub weight: i64,
    pub text: String,
}

/// One registered spectator of a game, as anyone may see it: the
/// registration's id is its credential and is never listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpectatorSummary {
    /// 0 for an anonymous viewer.
    pub user_id: i32,
    /// `Anonymous` for a viewer without an account.
    pub username: String,
    pub joined_at: SystemTime,
    /// A stream is bound to the registration.
    pub connected: bool,
}

impl SessionSummary {
    pub fn is_active(&self) -> bool {
        self.ended_at.is_none()
    }

    /// The name menus show: the short name, or the id when there is none.
    pub fn game_label(&self) -> &str {
        if self.game_short_name.is_empty() {
            &self.game_id
        } else {
            &self.game_short_name
        }
    }

    /// Time since the player's last input, as seen at `now`.
    pub fn idle(&self, now: SystemTime) -> Duration {
        now.duration_since(self.last_activity).unwrap_or_default()
    }
}

/// One finished game the server recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordingSummary {
    /// `user/game/start`: what a replay asks for.
    pub id: String,
    pub username: String,
    pub game_id: String,
    pub start: Option<SystemTime>,
    pub end: Option<SystemTime>,
    /// The size the game started at.
    pub size: TermSize,
    pub frames: u64,
    /// The exit code, when the game exited by itself.
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    pub signal: Option<String>,
    /// Why it ended, when the recording says.
    pub end_reason: Option<crate::recording::EndReason>,
}

impl RecordingSummary {
    /// How the game ended, for people (`saved at shutdown`).
    pub fn ending(&self) -> String {
        crate::recording::EndReason::describe(
            self.end_reason,
            self.exit_code,
            self.signal.as_deref(),
        )
    }

    /// [`RecordingSummary::ending`] in at most 8 characters (`saved`).
    pub fn ending_short(&self) -> String {
        crate::recording::EndReason::short(self.end_reason, self.exit_code, self.signal.as_deref())
    }
}

/// `{"sessions": [...]}`: the JSON of `GET /sessions` and `dgate list --json`,
/// one format wherever scripts ask (the spectating document's response with
/// dgate's additions).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionList {
    pub sessions: Vec<SessionListing>,
}

/// One game in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionListing {
    pub id: String,
    pub username: String,
    pub game_id: String,
    /// RFC 3339, UTC.
    pub start_time: String,
    pub is_active: bool,
    pub spectators: Vec<SpectatorListing>,
    pub terminal: TerminalListing,
    /// Seconds since the player's last input.
    pub idle_seconds: u64,
    pub spectator_count: u32,
    /// No player is connected; the game waits for its owner to reattach.
    #[serde(default)]
    pub detached: bool,
    /// What the game says about itself ("Dlvl:12 Val-Hum-Fem"); empty when
    /// nothing.
    #[serde(default)]
    pub extra_info: String,
    /// The player lets nobody watch (`/block all`).
    #[serde(default)]
    pub private: bool,
    /// The node of a cluster that runs it (where it is played); absent on
    /// a single server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectatorListing {
    /// `Anonymous` for a viewer without an account.
    pub username: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalListing {
    pub cols: u32,
    pub rows: u32,
}

impl SessionList {
    /// The listing of `sessions` as seen at `now` (for idle times).
    pub fn new(sessions: &[SessionSummary], now: SystemTime) -> Self {
        Self {
            sessions: sessions
                .iter()
                .map(|s| SessionListing::new(s, now))
                .collect(),
        }
    }
}

impl SessionListing {
    pub fn new(session: &SessionSummary, now: SystemTime) -> Self {
        Self {
            id: session.id.clone(),
            username: session.username.clone(),
            game_id: session.game_id.clone(),
            start_time: rfc3339(session.started_at),
            is_active: session.is_active(),
            spectators: session
                .spectators
                .iter()
                .map(|s| SpectatorListing {
                    username: s.username.clone(),
                })
                .collect(),
            terminal: TerminalListing {
                cols: u32::from(session.size.cols),
                rows: u32::from(session.size.rows),
            },
            idle_seconds: session.idle(now).as_secs(),
            spectator_count: u32::try_from(session.spectators.len()).unwrap_or(u32::MAX),
            detached: session.detached,
            private: session.private,
            node: session.node.clone(),
            extra_info: session
                .extra_info
                .as_ref()
                .map(|e| e.text.clone())
                .unwrap_or_default(),
        }
    }
}

/// RFC 3339 in UTC with nanoseconds: `2026-11-26T12:00:00.123456789Z`.
fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}
