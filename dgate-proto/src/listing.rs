//! The JSON shape of the session list, shared by `GET /sessions` and
//! `dgate list --json` so that scripts see one format wherever they ask.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::pb;

/// `{"sessions": [...]}`, the spectating document's response with dgate's additions.
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpectatorListing {
    pub spectator_id: String,
    /// `Anonymous` for a viewer without an account.
    pub username: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalListing {
    pub cols: u32,
    pub rows: u32,
}

impl SessionList {
    /// Builds the listing of `sessions` as seen at `now` (for idle times).
    pub fn from_sessions(sessions: &[pb::GameSession], now: SystemTime) -> Self {
        Self {
            sessions: sessions
                .iter()
                .map(|s| SessionListing::from_session(s, now))
                .collect(),
        }
    }
}

impl SessionListing {
    pub fn from_session(session: &pb::GameSession, now: SystemTime) -> Self {
        let size = session.terminal_size.unwrap_or_default();
        Self {
            id: session.id.clone(),
            username: session.username.clone(),
            game_id: session.game_id.clone(),
            start_time: session
                .start_time
                .map(|t| t.to_string())
                .unwrap_or_default(),
            is_active: session.status() == pb::SessionStatus::Active,
            spectators: session
                .spectators
                .iter()
                .map(|s| SpectatorListing {
                    spectator_id: s.spectator_id.clone(),
                    username: s.username.clone(),
                })
                .collect(),
            terminal: TerminalListing {
                cols: size.width,
                rows: size.height,
            },
            idle_seconds: idle_since(session.last_activity, now).as_secs(),
            spectator_count: session.spectator_count,
            detached: session.detached,
        }
    }
}

/// Time from `last` to `now`; zero when either is missing or `last` is later.
pub fn idle_since(last: Option<prost_types::Timestamp>, now: SystemTime) -> Duration {
    last.and_then(|t| SystemTime::try_from(t).ok())
        .and_then(|t| now.duration_since(t).ok())
        .unwrap_or_default()
}
