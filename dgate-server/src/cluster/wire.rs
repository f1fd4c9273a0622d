//! The relay messages on the wire (`dungeongate.cluster.v1`, protobuf) and
//! their checked decoding: everything that comes from NATS is untrusted, so
//! a message that does not decode, or decodes to nonsense (a size of 0, a
//! frame id of 0, an id that is not a session id), is an `Err` that the
//! caller counts and drops.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dgate_proto::cluster as pb;
use prost::Message as _;

use crate::broadcast::{FrameId, GameExit, Snapshot};
use crate::config::TermSize;

/// The longest side of a terminal a node accepts from another (the
/// protocol's sizes are u16; anything past this is nonsense).
const MAX_SIDE: u32 = 1000;

/// One event of a remote game's pipeline, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Frame {
        id: FrameId,
        timestamp: SystemTime,
        data: Bytes,
    },
    Resize {
        after: FrameId,
        size: TermSize,
    },
    End {
        after: FrameId,
        exit: GameExit,
    },
    Heartbeat {
        last: FrameId,
    },
    Snapshot(Screen),
}

/// A remote game's whole screen at a frame, and its end if it ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Screen {
    pub frame_id: FrameId,
    pub size: TermSize,
    pub data: Bytes,
    pub ended: Option<(FrameId, GameExit)>,
}

/// Why a message was dropped.
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    #[error("does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("{0}")]
    Nonsense(&'static str),
}

pub fn micros(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

fn from_micros(us: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_micros(us))
        .unwrap_or(UNIX_EPOCH)
}

fn size(cols: u32, rows: u32) -> Result<TermSize, Malformed> {
    if !(1..=MAX_SIDE).contains(&cols) || !(1..=MAX_SIDE).contains(&rows) {
        return Err(Malformed::Nonsense("a terminal size out of range"));
    }
    Ok(TermSize::new(cols as u16, rows as u16))
}

/// True for what a session id can be (and so a safe NATS subject token).
pub fn is_session_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn end_message(after: FrameId, exit: &GameExit) -> pb::RelayEnd {
    pb::RelayEnd {
        after: after.get(),
        code: exit.code(),
        signal: exit.signal().unwrap_or_default().to_owned(),
    }
}

fn end_of(end: &pb::RelayEnd) -> (FrameId, GameExit) {
    let exit = match end.code {
        Some(code) => GameExit::Exited { code },
        None => GameExit::Killed {
            signal: end.signal.chars().take(32).collect(),
        },
    };
    (FrameId::new(end.after), exit)
}

fn encode(event: pb::relay_message::Event) -> Bytes {
    Bytes::from(pb::RelayMessage { event: Some(event) }.encode_to_vec())
}

pub fn frame(id: FrameId, timestamp: SystemTime, data: Bytes) -> Bytes {
    encode(pb::relay_message::Event::Frame(pb::RelayFrame {
        id: id.get(),
        timestamp_us: micros(timestamp),
        data,
    }))
}

pub fn resize(after: FrameId, size: TermSize) -> Bytes {
    encode(pb::relay_message::Event::Resize(pb::RelayResize {
        after: after.get(),
        cols: u32::from(size.cols),
        rows: u32::from(size.rows),
    }))
}

pub fn end(after: FrameId, exit: &GameExit) -> Bytes {
    encode(pb::relay_message::Event::End(end_message(after, exit)))
}

pub fn heartbeat(last: FrameId) -> Bytes {
    encode(pb::relay_message::Event::Heartbeat(pb::RelayHeartbeat {
        last_frame_id: last.get(),
    }))
}

fn screen_message(snapshot: &Snapshot, ended: Option<(FrameId, &GameExit)>) -> pb::RelaySnapshot {
    pb::RelaySnapshot {
        frame_id: snapshot.frame_id.get(),
        cols: u32::from(snapshot.size.cols),
        rows: u32::from(snapshot.size.rows),
        timestamp_us: micros(snapshot.timestamp),
        data: snapshot.data.clone(),
        ended: ended.map(|(after, exit)| end_message(after, exit)),
    }
}

/// A relay's resync: the screen instead of the frames it skipped.
pub fn snapshot(snapshot: &Snapshot) -> Bytes {
    encode(pb::relay_message::Event::Snapshot(screen_message(
        snapshot, None,
    )))
}

/// The answer to a snapshot request: the screen, or `None` for a game this
/// node does not run.
pub fn reply(screen: Option<(&Snapshot, Option<&GameExit>)>) -> Bytes {
    let snapshot = screen.map(|(s, exit)| screen_message(s, exit.map(|e| (s.frame_id, e))));
    Bytes::from(pb::SnapshotReply { snapshot }.encode_to_vec())
}

pub fn request(session_id: &str, node_id: &str) -> Bytes {
    Bytes::from(
        pb::SnapshotRequest {
            session_id: session_id.to_owned(),
            node_id: node_id.to_owned(),
        }
        .encode_to_vec(),
    )
}

/// The session id a snapshot request asks about.
pub fn decode_request(payload: Bytes) -> Result<String, Malformed> {
    let request = pb::SnapshotRequest::decode(payload)?;
    if !is_session_id(&request.session_id) {
        return Err(Malformed::Nonsense("not a session id"));
    }
    Ok(request.session_id)
}

fn screen_of(s: pb::RelaySnapshot) -> Result<Screen, Malformed> {
    let ended = s.ended.as_ref().map(end_of);
    Ok(Screen {
        frame_id: FrameId::new(s.frame_id),
        size: size(s.cols, s.rows)?,
        data: s.data,
        ended,
    })
}

/// The screen a snapshot reply holds; `Ok(None)`: the node has no such game.
pub fn decode_reply(payload: Bytes) -> Result<Option<Screen>, Malformed> {
    pb::SnapshotReply::decode(payload)?
        .snapshot
        .map(screen_of)
        .transpose()
}

pub fn decode(payload: Bytes) -> Result<Event, Malformed> {
    use pb::relay_message::Event as E;
    let message = pb::RelayMessage::decode(payload)?;
    Ok(
        match message.event.ok_or(Malformed::Nonsense("no event"))? {
            E::Frame(f) => {
                if f.id == 0 {
                    return Err(Malformed::Nonsense("frame id 0"));
                }
                Event::Frame {
                    id: FrameId::new(f.id),
                    timestamp: from_micros(f.timestamp_us),
                    data: f.data,
                }
            }
            E::Resize(r) => Event::Resize {
                after: FrameId::new(r.after),
                size: size(r.cols, r.rows)?,
            },
            E::End(e) => {
                let (after, exit) = end_of(&e);
                Event::End { after, exit }
            }
            E::Heartbeat(h) => Event::Heartbeat {
                last: FrameId::new(h.last_frame_id),
            },
            E::Snapshot(s) => Event::Snapshot(screen_of(s)?),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::SnapshotReason;

    #[test]
    fn every_event_survives_the_wire() {
        let at = UNIX_EPOCH + Duration::from_micros(1_234_567);
        let data = Bytes::from_static(b"\x1b[1mhi");
        assert_eq!(
            decode(frame(FrameId::new(7), at, data.clone())).ok(),
            Some(Event::Frame {
                id: FrameId::new(7),
                timestamp: at,
                data
            })
        );
        let size = TermSize::new(80, 24);
        assert_eq!(
            decode(resize(FrameId::new(3), size)).ok(),
            Some(Event::Resize {
                after: FrameId::new(3),
                size
            })
        );
        for exit in [
            GameExit::Exited { code: 3 },
            GameExit::Killed {
                signal: "Hangup".into(),
            },
        ] {
            assert_eq!(
                decode(end(FrameId::new(9), &exit)).ok(),
                Some(Event::End {
                    after: FrameId::new(9),
                    exit
                })
            );
        }
        assert_eq!(
            decode(heartbeat(FrameId::new(4))).ok(),
            Some(Event::Heartbeat {
                last: FrameId::new(4)
            })
        );
        let s = Snapshot {
            frame_id: FrameId::new(5),
            size,
            timestamp: at,
            data: Bytes::from_static(b"screen"),
            reason: SnapshotReason::Requested,
            frames_skipped: 0,
        };
        let exit = GameExit::Exited { code: 0 };
        let screen = decode_reply(reply(Some((&s, Some(&exit))))).ok().flatten();
        assert_eq!(
            screen,
            Some(Screen {
                frame_id: FrameId::new(5),
                size,
                data: Bytes::from_static(b"screen"),
                ended: Some((FrameId::new(5), exit)),
            })
        );
        assert!(matches!(decode_reply(reply(None)), Ok(None)));
        assert_eq!(
            decode_request(request("abc-1", "n1")).ok().as_deref(),
            Some("abc-1")
        );
    }

    #[test]
    fn garbage_and_nonsense_are_errors_never_panics() {
        for payload in [
            &b"\xff\xff\xff"[..],
            b"",
            b"\x0a\x03\x08\x00\x10",
            b"\x12\x04\x08\x01\x10\x00",
        ] {
            assert!(decode(Bytes::copy_from_slice(payload)).is_err());
        }
        // A frame id of 0, and a size of 0 columns.
        assert!(
            decode(encode(pb::relay_message::Event::Frame(pb::RelayFrame {
                id: 0,
                ..Default::default()
            })))
            .is_err()
        );
        assert!(
            decode(encode(pb::relay_message::Event::Resize(pb::RelayResize {
                after: 1,
                cols: 0,
                rows: 24
            })))
            .is_err()
        );
        assert!(decode_request(request("a.b>", "n")).is_err());
        assert!(decode_request(request("", "n")).is_err());
        assert!(decode_reply(Bytes::from_static(b"\x0a\xff")).is_err());
    }
}
