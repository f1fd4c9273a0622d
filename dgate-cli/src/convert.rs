//! Protobuf to domain types, at the client's edge: what the server's gRPC
//! messages say, as the `dgate-term` types that `dgate list`, the menus and
//! the game view (`dgate-tui`) read. Nothing past this module sees protobuf
//! for listings or watched streams.
//!
//! The server always fills the fields read here; a field it left out reads as
//! the documented fallback, never as an error.

use std::time::SystemTime;

use dgate_proto::pb;
use dgate_proto::pb::game_io_response::Response;
use dgate_term::listing::{ExtraInfo, RecordingSummary, SessionSummary, SpectatorSummary};
use dgate_term::recording::EndReason;
use dgate_term::{GameEvent, SnapshotReason, StreamEnd, TermSize};

/// A game in the server's listing. A missing or out-of-range start reads as
/// the Unix epoch, a missing last input as the start (no input yet), a
/// missing end as a game still running, a missing size as 1x1.
pub fn session_summary(s: &pb::GameSession) -> SessionSummary {
    let started_at = time(s.start_time).unwrap_or(SystemTime::UNIX_EPOCH);
    SessionSummary {
        id: s.id.clone(),
        user_id: s.user_id,
        username: s.username.clone(),
        game_id: s.game_id.clone(),
        game_short_name: s.game_short_name.clone(),
        size: listed_size(s.terminal_size),
        started_at,
        ended_at: time(s.end_time),
        last_activity: time(s.last_activity).unwrap_or(started_at),
        spectators: s.spectators.iter().map(spectator_summary).collect(),
        detached: s.detached,
        frames: s.frame_count,
        private: s.private,
        // Shown in a terminal: a node's name as the server's config allows it.
        node: Some(s.node_id.as_str())
            .filter(|n| {
                !n.is_empty()
                    && n.len() <= 64
                    && n.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .map(str::to_owned),
        // Drawn in a terminal: a server's control characters never are.
        extra_info: Some(
            s.extra_info
                .chars()
                .filter(|c| !c.is_control())
                .collect::<String>(),
        )
        .filter(|text| !text.is_empty())
        .map(|text| ExtraInfo {
            weight: s.extra_info_weight,
            text,
        }),
    }
}

/// A spectator of a listed game; a missing join time reads as the Unix epoch.
pub fn spectator_summary(s: &pb::SpectatorInfo) -> SpectatorSummary {
    SpectatorSummary {
        user_id: s.user_id,
        username: s.username.clone(),
        joined_at: time(s.joined_at).unwrap_or(SystemTime::UNIX_EPOCH),
        connected: s.connected,
    }
}

/// A finished game the server recorded: the exit code only when it exited,
/// the signal only when one ended it.
pub fn recording_summary(r: &pb::RecordingInfo) -> RecordingSummary {
    RecordingSummary {
        id: r.id.clone(),
        username: r.username.clone(),
        game_id: r.game_id.clone(),
        start: time(r.start),
        end: time(r.end),
        size: listed_size(r.terminal_size),
        frames: r.frames,
        exit_code: r.exited.then_some(r.exit_code),
        signal: (!r.signal.is_empty()).then(|| r.signal.clone()),
        end_reason: EndReason::parse(&r.end_reason),
    }
}

/// One message of a watched game's stream, borrowing its bytes; `None` for
/// what the game view has nothing to do with: an event of unspecified type,
/// and a resize or snapshot without its size.
pub fn game_event(response: &Response) -> Option<GameEvent<'_>> {
    Some(match response {
        Response::Connected(_) => GameEvent::Connected,
        Response::Snapshot(snapshot) => GameEvent::Snapshot {
            frame_id: snapshot.frame_id,
            size: snapshot.size.map(term_size)?,
            data: &snapshot.data,
            reason: match snapshot.reason() {
                pb::SnapshotReason::Resync => SnapshotReason::Resync,
                pb::SnapshotReason::Join | pb::SnapshotReason::Unspecified => SnapshotReason::Join,
            },
            frames_skipped: snapshot.frames_skipped,
        },
        // For the player's own view (`dgate play`), not the game's screen.
        Response::Notice(_) | Response::Chat(_) | Response::Audience(_) => return None,
        Response::Output(output) => GameEvent::Output {
            frame_id: output.frame_id,
            data: &output.data,
        },
        Response::Event(event) => match event.r#type() {
            pb::PtyEventType::Resize => GameEvent::Resize {
                size: event.size.map(term_size)?,
            },
            pb::PtyEventType::ProcessExit => GameEvent::Ended(StreamEnd::GameOver),
            pb::PtyEventType::ServerShutdown => GameEvent::Ended(StreamEnd::ServerShutdown),
            pb::PtyEventType::SpectatorTimeout => GameEvent::Ended(StreamEnd::SpectatorTimeout),
            pb::PtyEventType::Unspecified => return None,
        },
        Response::Disconnected(d) => GameEvent::Ended(StreamEnd::Disconnected(d.reason.clone())),
    })
}

/// A protobuf time (`google.protobuf.Timestamp`), when present and
/// representable.
fn time<T>(t: Option<T>) -> Option<SystemTime>
where
    SystemTime: TryFrom<T>,
{
    t.and_then(|t| SystemTime::try_from(t).ok())
}

/// A listed size; a missing one reads as 1x1.
fn listed_size(size: Option<pb::TerminalSize>) -> TermSize {
    term_size(size.unwrap_or_default())
}

/// Each side saturated to `u16` and at least 1.
fn term_size(size: pb::TerminalSize) -> TermSize {
    let side = |v: u32| u16::try_from(v).unwrap_or(u16::MAX).max(1);
    TermSize::new(side(size.width), side(size.height))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn size(width: u32, height: u32) -> Option<pb::TerminalSize> {
        Some(pb::TerminalSize { width, height })
    }

    #[test]
    fn a_listed_session_keeps_its_fields_and_times() {
        let started = at(1_751_770_604, 123_456_789);
        let session = pb::GameSession {
            id: "s1".into(),
            user_id: 7,
            username: "olga".into(),
            game_id: "nethack".into(),
            status: pb::SessionStatus::Active as i32,
            start_time: Some(started.into()),
            end_time: None,
            last_activity: Some((started + Duration::from_secs(60)).into()),
            terminal_size: size(100, 30),
            spectators: vec![pb::SpectatorInfo {
                spectator_id: "sp1".into(),
                user_id: 0,
                username: "Anonymous".into(),
                joined_at: Some((started + Duration::from_secs(5)).into()),
                connected: true,
            }],
            spectator_count: 1,
            game_short_name: "NH36".into(),
            frame_count: 42,
            detached: true,
            extra_info: "Dlvl:12\x1b[2J".into(),
            extra_info_weight: 12,
            private: true,
            node_id: "eu-1\x1b".into(),
        };
        assert_eq!(
            session_summary(&session),
            SessionSummary {
                id: "s1".into(),
                user_id: 7,
                username: "olga".into(),
                game_id: "nethack".into(),
                game_short_name: "NH36".into(),
                size: TermSize::new(100, 30),
                started_at: started,
                ended_at: None,
                last_activity: started + Duration::from_secs(60),
                spectators: vec![SpectatorSummary {
                    user_id: 0,
                    username: "Anonymous".into(),
                    joined_at: started + Duration::from_secs(5),
                    connected: true,
                }],
                detached: true,
                frames: 42,
                // A server's escape is never drawn.
                extra_info: Some(ExtraInfo {
                    weight: 12,
                    text: "Dlvl:12[2J".into(),
                }),
                private: true,
                // Not a node's name: not shown.
                node: None,
            }
        );

        // What the server left out reads as the fallbacks; an ended game has
        // its end, and sizes out of range saturate.
        let ended = pb::GameSession {
            start_time: Some(started.into()),
            end_time: Some((started + Duration::from_secs(9)).into()),
            terminal_size: size(70_000, 0),
            ..Default::default()
        };
        let summary = session_summary(&ended);
        assert_eq!(summary.ended_at, Some(started + Duration::from_secs(9)));
        assert!(!summary.is_active());
        assert_eq!(summary.last_activity, started);
        assert_eq!(summary.size, TermSize::new(u16::MAX, 1));
        let empty = session_summary(&pb::GameSession::default());
        assert_eq!(empty.started_at, SystemTime::UNIX_EPOCH);
        assert_eq!(empty.size, TermSize::new(1, 1));
    }

    #[test]
    fn a_recording_has_an_exit_code_only_when_it_exited() {
        let start = at(1_751_770_604, 0);
        let info = pb::RecordingInfo {
            id: "olga/nethack/1751770604".into(),
            username: "olga".into(),
            game_id: "nethack".into(),
            start: Some(start.into()),
            end: Some((start + Duration::from_secs(323)).into()),
            terminal_size: size(80, 24),
            frames: 100,
            exited: true,
            exit_code: 0,
            signal: String::new(),
            end_reason: "shutdown".into(),
        };
        assert_eq!(
            recording_summary(&info),
            RecordingSummary {
                id: "olga/nethack/1751770604".into(),
                username: "olga".into(),
                game_id: "nethack".into(),
                start: Some(start),
                end: Some(start + Duration::from_secs(323)),
                size: TermSize::new(80, 24),
                frames: 100,
                exit_code: Some(0),
                signal: None,
                end_reason: Some(EndReason::Shutdown),
            }
        );
        let signalled = recording_summary(&pb::RecordingInfo {
            exited: false,
            exit_code: -1,
            signal: "SIGHUP".into(),
            start: None,
            ..info
        });
        assert_eq!(signalled.exit_code, None);
        assert_eq!(signalled.signal.as_deref(), Some("SIGHUP"));
        assert_eq!(signalled.start, None);
    }

    #[test]
    fn stream_messages_become_game_events() {
        let snapshot = |reason: pb::SnapshotReason| {
            Response::Snapshot(pb::Snapshot {
                frame_id: 30,
                size: size(100, 30),
                data: b"screen".to_vec().into(),
                reason: reason as i32,
                frames_skipped: 12,
                ..Default::default()
            })
        };
        for (reason, expected) in [
            (pb::SnapshotReason::Resync, SnapshotReason::Resync),
            (pb::SnapshotReason::Join, SnapshotReason::Join),
            (pb::SnapshotReason::Unspecified, SnapshotReason::Join),
        ] {
            assert_eq!(
                game_event(&snapshot(reason)),
                Some(GameEvent::Snapshot {
                    frame_id: 30,
                    size: TermSize::new(100, 30),
                    data: b"screen",
                    reason: expected,
                    frames_skipped: 12,
                })
            );
        }
        // A snapshot without its size cannot be drawn.
        let mut sizeless = snapshot(pb::SnapshotReason::Join);
        if let Response::Snapshot(s) = &mut sizeless {
            s.size = None;
        }
        assert_eq!(game_event(&sizeless), None);
        let output = Response::Output(pb::PtyOutput {
            frame_id: 31,
            data: b"frame".to_vec().into(),
            ..Default::default()
        });
        assert_eq!(
            game_event(&output),
            Some(GameEvent::Output {
                frame_id: 31,
                data: b"frame"
            })
        );
        assert_eq!(
            game_event(&Response::Connected(pb::ConnectPtyResponse::default())),
            Some(GameEvent::Connected)
        );
        assert_eq!(
            game_event(&Response::Disconnected(pb::DisconnectPtyResponse {
                reason: "maintenance".into(),
                ..Default::default()
            })),
            Some(GameEvent::Ended(StreamEnd::Disconnected(
                "maintenance".into()
            )))
        );
    }

    #[test]
    fn pty_events_become_resizes_and_ends() {
        let event = |kind: pb::PtyEventType, size: Option<pb::TerminalSize>| {
            Response::Event(pb::PtyEvent {
                r#type: kind as i32,
                size,
                ..Default::default()
            })
        };
        assert_eq!(
            game_event(&event(pb::PtyEventType::Resize, size(132, 50))),
            Some(GameEvent::Resize {
                size: TermSize::new(132, 50)
            })
        );
        assert_eq!(game_event(&event(pb::PtyEventType::Resize, None)), None);
        for (kind, end) in [
            (pb::PtyEventType::ProcessExit, StreamEnd::GameOver),
            (pb::PtyEventType::ServerShutdown, StreamEnd::ServerShutdown),
            (
                pb::PtyEventType::SpectatorTimeout,
                StreamEnd::SpectatorTimeout,
            ),
        ] {
            assert_eq!(game_event(&event(kind, None)), Some(GameEvent::Ended(end)));
        }
        assert_eq!(
            game_event(&event(pb::PtyEventType::Unspecified, None)),
            None
        );
    }
}
