//! The relay messages on the wire (`dungeongate.cluster.v1`, protobuf) and
//! their checked decoding: everything that comes from NATS is untrusted, so
//! a message that does not decode, or decodes to nonsense (a size of 0, a
//! frame id of 0, an id that is not a session id), is an `Err` that the
//! caller counts and drops.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dgate_proto::cluster as pb;
use prost::Message as _;

use crate::accounts::User;
use crate::broadcast::chat::ChatLine;
use crate::broadcast::{FrameId, GameExit, Snapshot};
use crate::config::TermSize;
use crate::game::SessionError;

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
    /// Who watches the game now, on every node.
    Audience(Vec<Watcher>),
    Chat(ChatLine),
}

/// One spectator of a game as its node's registry lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watcher {
    /// A hash of the registration's id (which is a credential).
    pub key: String,
    /// 0 for an anonymous spectator.
    pub user_id: i32,
    pub username: String,
    pub joined_at: SystemTime,
    /// The node it watches on.
    pub node_id: String,
}

/// What a snapshot request's answer holds: the screen, who watches, and
/// the chat's recent lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub screen: Screen,
    pub audience: Vec<Watcher>,
    pub chat: Vec<ChatLine>,
}

/// The most spectators an audience message may list.
const MAX_WATCHERS: usize = 100_000;

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

fn millis(t: SystemTime) -> u64 {
    micros(t) / 1000
}

fn from_millis(ms: u64) -> SystemTime {
    from_micros(ms.saturating_mul(1000))
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

/// The answer to a snapshot request: the screen, who watches and the
/// chat's recent lines, or `None` for a game this node does not run.
pub fn reply(
    screen: Option<(&Snapshot, Option<&GameExit>)>,
    audience: &[Watcher],
    chat: &[std::sync::Arc<ChatLine>],
) -> Bytes {
    let snapshot = screen.map(|(s, exit)| screen_message(s, exit.map(|e| (s.frame_id, e))));
    Bytes::from(
        pb::SnapshotReply {
            snapshot,
            audience: Some(audience_message(audience)),
            chat: chat.iter().map(|line| chat_message(line)).collect(),
        }
        .encode_to_vec(),
    )
}

fn audience_message(audience: &[Watcher]) -> pb::RelayAudience {
    pb::RelayAudience {
        entries: audience
            .iter()
            .map(|w| pb::AudienceEntry {
                key: w.key.clone(),
                user_id: w.user_id,
                username: w.username.clone(),
                joined_at_ms: millis(w.joined_at),
                node_id: w.node_id.clone(),
            })
            .collect(),
    }
}

fn chat_message(line: &ChatLine) -> pb::ChatLine {
    pb::ChatLine {
        id: line.id,
        sender: line.sender.clone(),
        text: line.text.clone(),
        sent_at_ms: millis(line.sent_at),
        from_player: line.from_player,
        from_admin: line.from_admin,
    }
}

/// Who watches the game now (its registry changed).
pub fn audience(audience: &[Watcher]) -> Bytes {
    encode(pb::relay_message::Event::Audience(audience_message(
        audience,
    )))
}

/// A line said in the game's chat.
pub fn chat(line: &ChatLine) -> Bytes {
    encode(pb::relay_message::Event::Chat(chat_message(line)))
}

/// A name as another node sends it: a login's (or `Anonymous`), short and
/// printable.
fn is_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| !c.is_control())
}

fn watchers_of(audience: pb::RelayAudience) -> Result<Vec<Watcher>, Malformed> {
    if audience.entries.len() > MAX_WATCHERS {
        return Err(Malformed::Nonsense("too many spectators"));
    }
    audience
        .entries
        .into_iter()
        .map(|e| {
            if e.key.is_empty() || e.key.len() > 64 || !is_name(&e.username) || e.user_id < 0 {
                return Err(Malformed::Nonsense("a spectator that cannot be"));
            }
            if !is_session_id(&e.node_id) {
                return Err(Malformed::Nonsense("not a node id"));
            }
            Ok(Watcher {
                key: e.key,
                user_id: e.user_id,
                username: e.username,
                joined_at: from_millis(e.joined_at_ms),
                node_id: e.node_id,
            })
        })
        .collect()
}

fn chat_of(line: pb::ChatLine) -> Result<ChatLine, Malformed> {
    let chars = line.text.chars().count();
    if line.id == 0
        || line.id == u64::MAX
        || !is_name(&line.sender)
        || chars == 0
        || chars > crate::viewing::chat::MAX_CHARS
        || line.text.chars().any(char::is_control)
    {
        return Err(Malformed::Nonsense("a chat line that cannot be"));
    }
    Ok(ChatLine {
        id: line.id,
        sender: line.sender,
        text: line.text,
        sent_at: from_millis(line.sent_at_ms),
        from_player: line.from_player,
        from_admin: line.from_admin,
    })
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

/// What a snapshot reply holds; `Ok(None)`: the node has no such game.
pub fn decode_reply(payload: Bytes) -> Result<Option<Reply>, Malformed> {
    let reply = pb::SnapshotReply::decode(payload)?;
    let Some(snapshot) = reply.snapshot else {
        return Ok(None);
    };
    Ok(Some(Reply {
        screen: screen_of(snapshot)?,
        audience: watchers_of(reply.audience.unwrap_or_default())?,
        chat: reply
            .chat
            .into_iter()
            .map(chat_of)
            .collect::<Result<_, _>>()?,
    }))
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
            E::Audience(a) => Event::Audience(watchers_of(a)?),
            E::Chat(line) => Event::Chat(chat_of(line)?),
        },
    )
}

// ---- Viewers' nodes and the game's node (`cluster::viewers`) ----

/// A viewer as its node sends it (anonymous: `None`).
pub fn viewer_of(who: Option<&User>) -> pb::Viewer {
    match who {
        Some(user) => pb::Viewer {
            user_id: i32::try_from(user.id).unwrap_or(0),
            username: user.username.clone(),
            is_admin: user.is_admin,
        },
        None => pb::Viewer::default(),
    }
}

/// The viewer as an account here; `None` for an anonymous one.
pub fn user_of(viewer: &pb::Viewer) -> Result<Option<User>, &'static str> {
    if viewer.user_id == 0 {
        return Ok(None);
    }
    if viewer.user_id < 0 || crate::accounts::check_username(&viewer.username).is_err() {
        return Err("a viewer that cannot be");
    }
    Ok(Some(User {
        id: i64::from(viewer.user_id),
        username: viewer.username.clone(),
        email: None,
        created_at: UNIX_EPOCH,
        last_login: None,
        is_admin: viewer.is_admin,
        is_banned: false,
        generation: 0,
    }))
}

/// Why the game's node said no, for the asking node.
pub fn refusal(e: &SessionError) -> pb::ViewerRefusal {
    use pb::RefusalKind as K;
    let kind = match e {
        SessionError::NotFound(_) => K::NotFound,
        SessionError::NotAllowed(_) | SessionError::NotYours { .. } => K::NotAllowed,
        SessionError::Limit(_) | SessionError::SpectatorsFull(_) => K::Limit,
        SessionError::LoginRequired(_) => K::LoginRequired,
        SessionError::Invalid { .. } => K::Invalid,
        SessionError::SpectatingDisabled => K::Disabled,
        _ => K::Other,
    };
    pb::ViewerRefusal {
        kind: kind as i32,
        message: e.to_string(),
    }
}

/// A refusal from the game's node as this node's error (its words kept).
pub fn error_of(session_id: &str, refused: pb::ViewerRefusal) -> SessionError {
    use pb::RefusalKind as K;
    let message: String = refused
        .message
        .chars()
        .filter(|c| !c.is_control())
        .take(300)
        .collect();
    match K::try_from(refused.kind).unwrap_or(K::Other) {
        K::NotFound => SessionError::NotFound(session_id.to_owned()),
        K::Limit => SessionError::Limit(message),
        K::LoginRequired => SessionError::LoginRequired(message),
        K::Disabled => SessionError::SpectatingDisabled,
        K::NotAllowed | K::Invalid | K::Other => SessionError::NotAllowed(message),
    }
}

/// An answer to a viewer's node.
pub fn viewer_reply(outcome: pb::viewer_reply::Outcome) -> Bytes {
    Bytes::from(
        pb::ViewerReply {
            outcome: Some(outcome),
        }
        .encode_to_vec(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broadcast::RegistryFull;
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
        let watcher = Watcher {
            key: "k1".into(),
            user_id: 3,
            username: "sam".into(),
            joined_at: UNIX_EPOCH + Duration::from_millis(5_000),
            node_id: "two".into(),
        };
        let line = ChatLine {
            id: 4,
            sender: "sam".into(),
            text: "hello <b>".into(),
            sent_at: UNIX_EPOCH + Duration::from_millis(6_000),
            from_player: false,
            from_admin: true,
        };
        let answer = reply(
            Some((&s, Some(&exit))),
            std::slice::from_ref(&watcher),
            &[std::sync::Arc::new(line.clone())],
        );
        let answer = decode_reply(answer).ok().flatten().expect("a reply");
        assert_eq!(
            answer.screen,
            Screen {
                frame_id: FrameId::new(5),
                size,
                data: Bytes::from_static(b"screen"),
                ended: Some((FrameId::new(5), exit)),
            }
        );
        assert_eq!(answer.audience, std::slice::from_ref(&watcher));
        assert_eq!(answer.chat, std::slice::from_ref(&line));
        assert!(matches!(decode_reply(reply(None, &[], &[])), Ok(None)));
        assert_eq!(
            decode(audience(std::slice::from_ref(&watcher))).ok(),
            Some(Event::Audience(vec![watcher]))
        );
        assert_eq!(decode(chat(&line)).ok(), Some(Event::Chat(line)));
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
        // A chat line with a newline, an empty one, a spectator named by
        // a control character.
        let line = |text: &str| pb::ChatLine {
            id: 1,
            sender: "x".into(),
            text: text.into(),
            ..Default::default()
        };
        for bad in [line("a\nb"), line(""), line(&"x".repeat(500))] {
            assert!(decode(encode(pb::relay_message::Event::Chat(bad))).is_err());
        }
        let entry = pb::AudienceEntry {
            key: "k".into(),
            username: "\u{1b}[2J".into(),
            node_id: "n".into(),
            ..Default::default()
        };
        let audience = pb::RelayAudience {
            entries: vec![entry],
        };
        assert!(decode(encode(pb::relay_message::Event::Audience(audience))).is_err());
    }

    #[test]
    fn refusals_cross_the_wire_with_their_words_and_kind() {
        for (e, expect) in [
            (
                SessionError::SpectatorsFull(RegistryFull::Session { max: 2 }),
                "Limit",
            ),
            (
                SessionError::NotAllowed("you were kicked".into()),
                "NotAllowed",
            ),
            (SessionError::NotFound("g".into()), "NotFound"),
            (
                SessionError::LoginRequired("log in".into()),
                "LoginRequired",
            ),
            (
                SessionError::invalid("chat line", "it is empty"),
                "NotAllowed",
            ),
        ] {
            let text = e.to_string();
            let back = error_of("g", refusal(&e));
            let kind = format!("{back:?}");
            assert!(kind.starts_with(expect), "{kind}");
            if !matches!(back, SessionError::NotFound(_)) {
                assert_eq!(back.to_string(), text);
            }
        }
    }

    #[test]
    fn hostile_viewers_are_refused() {
        let bad = |user_id, username: &str| pb::Viewer {
            user_id,
            username: username.into(),
            is_admin: true,
        };
        assert!(user_of(&bad(-1, "eve")).is_err());
        assert!(user_of(&bad(3, "../root")).is_err());
        assert!(user_of(&bad(3, "")).is_err());
        assert_eq!(user_of(&bad(0, "whoever")), Ok(None));
        let sam = user_of(&bad(3, "sam")).expect("sam").expect("an account");
        assert_eq!(
            (sam.id, sam.username.as_str(), sam.is_admin),
            (3, "sam", true)
        );
    }
}
