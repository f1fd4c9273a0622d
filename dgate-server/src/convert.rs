//! Domain types to and from the protobuf types, at the gRPC boundary only.

use std::time::SystemTime;

use dgate_proto::pb;

use crate::config::TermSize;
use crate::error::SessionError;
use crate::hub::{Delivery, GameExit, HubEvent, Snapshot, SnapshotReason};
use crate::registry::Spectator;
use crate::session::Session;
use crate::sessions::GameListing;

pub fn terminal_size(size: TermSize) -> pb::TerminalSize {
    pb::TerminalSize {
        width: u32::from(size.cols),
        height: u32::from(size.rows),
    }
}

/// Only the representable range is checked here; limits are the manager's.
pub fn term_size(size: pb::TerminalSize) -> Result<TermSize, SessionError> {
    let side = |v: u32| {
        u16::try_from(v).map_err(|_| {
            SessionError::invalid(
                "terminal size",
                format!("{}x{} is too large", size.width, size.height),
            )
        })
    };
    Ok(TermSize::new(side(size.width)?, side(size.height)?))
}

pub fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

impl From<&Spectator> for pb::SpectatorInfo {
    fn from(s: &Spectator) -> Self {
        Self {
            spectator_id: s.id.clone(),
            user_id: s.user_id,
            username: s.username.clone(),
            joined_at: Some(timestamp(s.joined_at)),
            connected: s.connected.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

impl From<&Session> for pb::GameSession {
    fn from(s: &Session) -> Self {
        let registry = s.spectators.load();
        Self {
            id: s.info.id.clone(),
            user_id: s.info.user_id,
            username: s.info.username.clone(),
            game_id: s.info.game_id.clone(),
            status: if s.is_ended() {
                pb::SessionStatus::Ended
            } else {
                pb::SessionStatus::Active
            } as i32,
            start_time: Some(timestamp(s.info.started_at)),
            end_time: s.ended_at().map(timestamp),
            last_activity: Some(timestamp(s.last_activity())),
            terminal_size: Some(terminal_size(s.hub.size())),
            spectators: registry
                .in_join_order()
                .iter()
                .map(|sp| sp.as_ref().into())
                .collect(),
            spectator_count: registry.spectators.len() as u32,
            game_short_name: s.info.game_short_name.clone(),
            detached: s.is_detached(),
            frame_count: s
                .hub
                .stats()
                .frames
                .load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

impl From<&GameListing> for pb::Game {
    fn from(g: &GameListing) -> Self {
        Self {
            id: g.config.id.clone(),
            name: g.config.name.clone(),
            short_name: g.config.short_name.clone(),
            available: g.unavailable.is_none(),
            unavailable_reason: g.unavailable.clone().unwrap_or_default(),
        }
    }
}

impl From<SnapshotReason> for pb::SnapshotReason {
    fn from(r: SnapshotReason) -> Self {
        match r {
            SnapshotReason::Join => Self::Join,
            SnapshotReason::Resync => Self::Resync,
        }
    }
}

pub fn snapshot_message(session_id: &str, s: &Snapshot) -> pb::Snapshot {
    pb::Snapshot {
        session_id: session_id.to_owned(),
        frame_id: s.frame_id,
        size: Some(terminal_size(s.size)),
        data: s.data.clone(),
        reason: pb::SnapshotReason::from(s.reason) as i32,
        frames_skipped: s.frames_skipped,
        timestamp: Some(timestamp(s.timestamp)),
    }
}

pub fn exit_event(session_id: &str, after_frame: u64, exit: &GameExit) -> pb::PtyEvent {
    let message = match (&exit.code, &exit.signal) {
        (_, Some(signal)) => format!("the game was ended by signal {signal}"),
        (Some(code), None) => format!("the game exited with status {code}"),
        (None, None) => "the game ended".to_owned(),
    };
    pb::PtyEvent {
        session_id: session_id.to_owned(),
        r#type: pb::PtyEventType::ProcessExit as i32,
        message,
        exit_code: exit.code.unwrap_or(-1),
        signal: exit.signal.clone().unwrap_or_default(),
        size: None,
        frame_id: after_frame,
    }
}

/// The stream message for one hub delivery.
pub fn delivery_message(session_id: &str, d: &Delivery) -> pb::GameIoResponse {
    use pb::game_io_response::Response;
    let response = match d {
        Delivery::Snapshot(s) => Response::Snapshot(snapshot_message(session_id, s)),
        Delivery::Event(e) => match e.as_ref() {
            HubEvent::Frame(f) => Response::Output(pb::PtyOutput {
                session_id: session_id.to_owned(),
                data: f.data.clone(),
                frame_id: f.id,
                timestamp: Some(timestamp(f.timestamp)),
            }),
            HubEvent::Resize { after_frame, size } => Response::Event(pb::PtyEvent {
                session_id: session_id.to_owned(),
                r#type: pb::PtyEventType::Resize as i32,
                message: format!("the game's terminal is now {size}"),
                size: Some(terminal_size(*size)),
                frame_id: *after_frame,
                ..Default::default()
            }),
            HubEvent::Ended { after_frame, exit } => {
                Response::Event(exit_event(session_id, *after_frame, exit))
            }
        },
    };
    pb::GameIoResponse {
        response: Some(response),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_size_round_trips() {
        let size = TermSize::new(132, 43);
        let message = terminal_size(size);
        assert_eq!(term_size(message).expect("fits"), size);
        assert!(
            term_size(pb::TerminalSize {
                width: 70_000,
                height: 1
            })
            .is_err()
        );
    }
}
