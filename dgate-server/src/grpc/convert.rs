//! Domain types to and from the protobuf types, at the gRPC boundary only.

use std::time::{Duration, SystemTime};

use dgate_proto::pb;
use dgate_term::listing::{RecordingSummary, SessionSummary, SpectatorSummary};

use crate::broadcast::chat::ChatLine;
use crate::broadcast::{Delivery, GameExit, Snapshot, SnapshotReason, Spectator};
use crate::config::TermSize;
use crate::game::SessionError;
use crate::game::manager::GameListing;
use crate::game::recordings::{ReplayControl, ReplayEvent};

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

fn seconds(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// A listed spectator: without its id, which only its registrant holds.
pub fn spectator_info(s: &SpectatorSummary) -> pb::SpectatorInfo {
    pb::SpectatorInfo {
        spectator_id: String::new(),
        user_id: s.user_id,
        username: s.username.clone(),
        joined_at: Some(timestamp(s.joined_at)),
        connected: s.connected,
    }
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

pub fn game_session(s: &SessionSummary) -> pb::GameSession {
    pb::GameSession {
        id: s.id.clone(),
        user_id: s.user_id,
        username: s.username.clone(),
        game_id: s.game_id.clone(),
        status: if s.is_active() {
            pb::SessionStatus::Active
        } else {
            pb::SessionStatus::Ended
        } as i32,
        start_time: Some(timestamp(s.started_at)),
        end_time: s.ended_at.map(timestamp),
        last_activity: Some(timestamp(s.last_activity)),
        terminal_size: Some(terminal_size(s.size)),
        spectators: s.spectators.iter().map(spectator_info).collect(),
        spectator_count: u32::try_from(s.spectators.len()).unwrap_or(u32::MAX),
        game_short_name: s.game_short_name.clone(),
        detached: s.detached,
        frame_count: s.frames,
        extra_info: s
            .extra_info
            .as_ref()
            .map(|e| e.text.clone())
            .unwrap_or_default(),
        extra_info_weight: s.extra_info.as_ref().map_or(0, |e| e.weight),
        private: s.private,
        node_id: s.node.clone().unwrap_or_default(),
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
            has_options: g.config.rc_file.is_some(),
        }
    }
}

pub fn recording_info(r: &RecordingSummary) -> pb::RecordingInfo {
    pb::RecordingInfo {
        id: r.id.clone(),
        username: r.username.clone(),
        game_id: r.game_id.clone(),
        start: r.start.map(timestamp),
        end: r.end.map(timestamp),
        terminal_size: Some(terminal_size(r.size)),
        frames: r.frames,
        exited: r.exit_code.is_some(),
        exit_code: r.exit_code.unwrap_or_default(),
        signal: r.signal.clone().unwrap_or_default(),
        end_reason: r
            .end_reason
            .map(|e| e.as_str().to_owned())
            .unwrap_or_default(),
    }
}

fn snapshot_reason(r: SnapshotReason) -> pb::SnapshotReason {
    match r {
        SnapshotReason::Resync => pb::SnapshotReason::Resync,
        // A redraw the viewer asked for is, to the client, a fresh start.
        SnapshotReason::Join | SnapshotReason::Requested => pb::SnapshotReason::Join,
    }
}

pub fn snapshot_message(session_id: &str, s: &Snapshot) -> pb::Snapshot {
    pb::Snapshot {
        session_id: session_id.to_owned(),
        frame_id: s.frame_id.get(),
        size: Some(terminal_size(s.size)),
        data: s.data.clone(),
        reason: snapshot_reason(s.reason) as i32,
        frames_skipped: s.frames_skipped,
        timestamp: Some(timestamp(s.timestamp)),
    }
}

pub fn exit_event(session_id: &str, after_frame: u64, exit: &GameExit) -> pb::PtyEvent {
    pb::PtyEvent {
        session_id: session_id.to_owned(),
        r#type: pb::PtyEventType::ProcessExit as i32,
        message: exit.to_string(),
        exit_code: exit.code().unwrap_or(-1),
        signal: exit.signal().unwrap_or_default().to_owned(),
        size: None,
        frame_id: after_frame,
    }
}

/// The stream message for one hub delivery.
pub fn delivery_message(session_id: &str, d: &Delivery) -> pb::GameIoResponse {
    use pb::game_io_response::Response;
    let response = match d {
        Delivery::Snapshot(s) => Response::Snapshot(snapshot_message(session_id, s)),
        Delivery::Frame(f) => Response::Output(pb::PtyOutput {
            session_id: session_id.to_owned(),
            data: f.data.clone(),
            frame_id: f.id.get(),
            timestamp: Some(timestamp(f.timestamp)),
        }),
        Delivery::Resize { after, size } => Response::Event(pb::PtyEvent {
            session_id: session_id.to_owned(),
            r#type: pb::PtyEventType::Resize as i32,
            message: format!("the game's terminal is now {size}"),
            size: Some(terminal_size(*size)),
            frame_id: after.get(),
            ..Default::default()
        }),
        Delivery::Ended { after, exit } => {
            Response::Event(exit_event(session_id, after.get(), exit))
        }
    };
    pb::GameIoResponse {
        response: Some(response),
    }
}

/// A replay's steering, from its protobuf message; `None` for `open`, which
/// only starts a replay.
pub fn replay_control(control: pb::recording_control::Control) -> Option<ReplayControl> {
    use pb::recording_control::Control;
    match control {
        Control::SeekSeconds(seconds) => Some(ReplayControl::Seek(seconds)),
        Control::Speed(speed) => Some(ReplayControl::Speed(speed)),
        Control::Paused(paused) => Some(ReplayControl::Paused(paused)),
        Control::Open(_) => None,
    }
}

/// The stream message for one replay event.
pub fn replay_event(event: ReplayEvent) -> pb::RecordingEvent {
    use pb::recording_event::Event;
    let event = match event {
        ReplayEvent::Opened {
            summary,
            duration,
            chat_lines,
        } => Event::Opened(pb::RecordingOpened {
            info: Some(recording_info(&summary)),
            duration_seconds: seconds(duration),
            chat_lines: u32::try_from(chat_lines).unwrap_or(u32::MAX),
        }),
        ReplayEvent::Screen {
            position,
            size,
            data,
        } => Event::Screen(pb::RecordingScreen {
            position_seconds: seconds(position),
            size: Some(terminal_size(size)),
            data,
        }),
        ReplayEvent::Frame {
            position,
            resize,
            data,
        } => Event::Frame(pb::RecordingFrame {
            position_seconds: seconds(position),
            resize: resize.map(terminal_size),
            data,
        }),
        ReplayEvent::State {
            position,
            speed,
            paused,
            ended,
        } => Event::State(pb::RecordingState {
            position_seconds: seconds(position),
            speed,
            paused,
            ended,
        }),
        ReplayEvent::Chat {
            position,
            line,
            history,
        } => Event::Chat(pb::RecordingChat {
            position_seconds: seconds(position),
            line: Some(chat_line(&line, history)),
        }),
    };
    pb::RecordingEvent { event: Some(event) }
}

/// A line of a game's chat as its event (live, or a replay's).
pub fn chat_line(line: &ChatLine, history: bool) -> pb::ChatEvent {
    pb::ChatEvent {
        id: line.id,
        sender: line.sender.clone(),
        text: line.text.clone(),
        sent_at: Some(line.sent_at.into()),
        from_player: line.from_player,
        from_admin: line.from_admin,
        answer: false,
        history,
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

    #[test]
    fn a_session_summary_becomes_its_message() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let summary = SessionSummary {
            id: "s1".into(),
            user_id: 7,
            username: "alice".into(),
            game_id: "nethack".into(),
            game_short_name: "NH36".into(),
            size: TermSize::new(80, 24),
            started_at: start,
            ended_at: None,
            last_activity: start + Duration::from_secs(5),
            spectators: vec![SpectatorSummary {
                user_id: 0,
                username: "Anonymous".into(),
                joined_at: start,
                connected: true,
            }],
            detached: true,
            frames: 42,
            extra_info: Some(dgate_term::listing::ExtraInfo {
                weight: 12,
                text: "Dlvl:12".into(),
            }),
            private: true,
            node: Some("eu-1".into()),
        };
        let message = game_session(&summary);
        assert_eq!(message.node_id, "eu-1");
        assert_eq!(
            (message.extra_info.as_str(), message.extra_info_weight),
            ("Dlvl:12", 12)
        );
        assert!(message.private);
        assert_eq!(message.status(), pb::SessionStatus::Active);
        assert_eq!(message.spectator_count, 1);
        assert_eq!(
            message.spectators[0].spectator_id, "",
            "ids are never listed"
        );
        assert!(message.spectators[0].connected);
        assert_eq!(message.terminal_size, Some(terminal_size(summary.size)));
        assert_eq!(
            message.start_time.map(SystemTime::try_from),
            Some(Ok(start))
        );
        assert_eq!((message.frame_count, message.detached), (42, true));
        assert_eq!(message.game_short_name, "NH36");
    }

    #[test]
    fn a_recording_summary_becomes_its_message() {
        let summary = RecordingSummary {
            id: "alice/nethack/x".into(),
            username: "alice".into(),
            game_id: "nethack".into(),
            start: None,
            end: None,
            size: TermSize::new(100, 30),
            frames: 9,
            exit_code: None,
            signal: Some("Hangup".into()),
            end_reason: Some(dgate_term::recording::EndReason::DetachGrace),
        };
        let message = recording_info(&summary);
        assert!(!message.exited);
        assert_eq!(message.signal, "Hangup");
        assert_eq!(message.terminal_size, Some(terminal_size(summary.size)));
    }

    #[test]
    fn an_exit_says_how_the_game_ended() {
        let killed = exit_event(
            "s",
            3,
            &GameExit::Killed {
                signal: "Hangup".into(),
            },
        );
        assert_eq!((killed.exit_code, killed.signal.as_str()), (-1, "Hangup"));
        assert_eq!(killed.message, "the game was ended by signal Hangup");
        let exited = exit_event("s", 3, &GameExit::Exited { code: 2 });
        assert_eq!((exited.exit_code, exited.frame_id), (2, 3));
    }
}
