//! Finished games in the browser: the list (`GET /recordings`, JSON, newest
//! first), a recording's file (`GET /recordings/{id}`, ttyrec, for `dgate
//! replay` or `ttyplay`), its replay page (`GET /replay/{id}`) and that
//! page's WebSocket (`GET /ws/replay?id=ID`).
//!
//! The replay is played by the same player as `StreamRecording`
//! ([`recordings::play`]), with the same cap on idle stretches as `dgate
//! replay` and SSH ([`MAX_IDLE`]), and drawn by the watch page's terminal:
//! the socket sends the recording's bytes as live watching sends the game's
//! ([`super::wire`]: a snapshot after opening and after each seek, then each
//! frame), plus `replay` (what is playing), `replay_state` (position,
//! speed, pause) and the game's chat: `chat` for each line when the replay
//! reaches the moment it was said, and after each opening or seek's
//! snapshot (its two messages), the lines said up to that position with
//! `history` (a resize's snapshot has none). The page steers it with
//! `{"seek": seconds}`, `{"speed": x}` and `{"paused": bool}`; anything else
//! it sends is ignored. Ids are looked up in the recordings directory, never
//! used as paths.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use bytes::Bytes;
use dgate_term::ScreenModel;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::wire::{self, Control as Out};
use super::{MAX_INBOUND_BYTES, escape, game_label, send, terminal_page};
use crate::game::SessionManager;
use crate::game::recordings::{self, Entry, RecordingError, ReplayControl, ReplayEvent};
use crate::viewing;

const REPLAY: &str = include_str!("../../web/replay.html");
/// How often a playing replay tells the page where it is.
const POSITION_EVERY: Duration = Duration::from_millis(250);
/// Pauses longer than this are shortened, as `dgate replay` (its
/// `replay.max_idle` default) and SSH replays shorten them, so that a
/// moment (`?at=`, `g`) and a chat line's place are the same in all three.
pub const MAX_IDLE: Duration = dgate_term::recording::MAX_IDLE;
/// Recordings the lobby lists.
const LISTED: i32 = 20;

pub fn routes<S: Clone + Send + Sync + 'static>(manager: SessionManager) -> axum::Router<S> {
    axum::Router::new()
        .route("/recordings", axum::routing::get(list))
        .route("/recordings/{*id}", axum::routing::get(download))
        .route("/replay/{*id}", axum::routing::get(page))
        .route("/ws/replay", axum::routing::get(replay))
        .with_state(manager)
}

/// Anonymous browsers may see recordings only where they may watch games.
fn refused(manager: &SessionManager) -> Option<Response> {
    viewing::may_watch(manager.config(), false).err()?;
    let error = "this server shows games to logged-in players only (use dgate or ssh)";
    Some((StatusCode::UNAUTHORIZED, Json(json!({ "error": error }))).into_response())
}

async fn entries(manager: &SessionManager, limit: i32) -> Vec<Entry> {
    manager.library().list("", "", limit).await
}

async fn find(manager: &SessionManager, id: String) -> Option<Entry> {
    manager.library().find(&id).await
}

fn not_found(id: &str) -> Response {
    let error = format!("no recording with id {id:?}");
    (StatusCode::NOT_FOUND, Json(json!({ "error": error }))).into_response()
}

async fn list(State(manager): State<SessionManager>) -> Response {
    if let Some(refusal) = refused(&manager) {
        return refusal;
    }
    let recordings: Vec<_> = entries(&manager, LISTED)
        .await
        .iter()
        .map(|e| {
            let m = &e.meta;
            json!({
                "id": e.id,
                "username": m.username,
                "game_id": m.game_id,
                "start": m.start,
                "end": m.end,
                "cols": m.terminal.cols,
                "rows": m.terminal.rows,
                "frames": m.frames,
                "exit_code": m.exit_code,
                "signal": m.signal,
                "end_reason": m.end_reason,
                "ended": e.summary().ending(),
            })
        })
        .collect();
    Json(json!({ "recordings": recordings })).into_response()
}

/// The recording file as the recorder wrote it (gzip or plain ttyrec).
async fn download(State(manager): State<SessionManager>, Path(id): Path<String>) -> Response {
    if let Some(refusal) = refused(&manager) {
        return refusal;
    }
    let Some(entry) = find(&manager, id.clone()).await else {
        return not_found(&id);
    };
    let file = match tokio::fs::File::open(&entry.path).await {
        Ok(file) => file,
        Err(e) => return not_found(&format!("{id} ({e})")),
    };
    let name = entry.meta.recording.replace(['"', '\\'], "_");
    let kind = if name.ends_with(".gz") {
        "application/gzip"
    } else {
        "application/octet-stream"
    };
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}-{name}\"", entry.meta.username),
            ),
        ],
        body,
    )
        .into_response()
}

async fn page(State(manager): State<SessionManager>, Path(id): Path<String>) -> Response {
    if let Some(refusal) = refused(&manager) {
        return refusal;
    }
    match find(&manager, id.clone()).await {
        Some(entry) => {
            let game = game_label(manager.config(), &entry.meta.game_id);
            let title = format!("{}'s {game}", entry.meta.username);
            terminal_page(REPLAY.replace("{{TITLE}}", &escape(&title)))
        }
        None => not_found(&id),
    }
}

#[derive(Debug, Deserialize)]
struct ReplayQuery {
    id: String,
    /// Where to start, in seconds (a page reconnecting goes on from there).
    at: Option<f64>,
}

/// What the page may send.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Steer {
    Seek(f64),
    Speed(f64),
    Paused(bool),
}

/// What a replay page's message asks for (`{"seek": s}`, `{"speed": x}`,
/// `{"paused": b}`), or why it is ignored.
pub fn page_control(text: &str) -> Result<ReplayControl, serde_json::Error> {
    Ok(match serde_json::from_str::<Steer>(text)? {
        Steer::Seek(seconds) => ReplayControl::Seek(seconds),
        Steer::Speed(speed) => ReplayControl::Speed(speed),
        Steer::Paused(paused) => ReplayControl::Paused(paused),
    })
}

async fn replay(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(manager): State<SessionManager>,
    Query(query): Query<ReplayQuery>,
    headers: axum::http::HeaderMap,
    connection: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
) -> Response {
    if let Some(refusal) = super::foreign_origin(&manager, &headers) {
        return refusal;
    }
    if let Some(refusal) = refused(&manager) {
        return refusal;
    }
    let Some(entry) = find(&manager, query.id.clone()).await else {
        return not_found(&query.id);
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let library = manager.library();
    let replay = match library.admit(crate::http::peer(connection)) {
        Ok(permit) => library.open(entry, Some(MAX_IDLE), permit).await,
        Err(e) => Err(e),
    };
    let replay = match replay {
        Ok(replay) => replay,
        Err(e) => {
            let status = match e {
                RecordingError::TooManyReplays(_) => StatusCode::TOO_MANY_REQUESTS,
                RecordingError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            return (status, Json(json!({ "error": e.to_string() }))).into_response();
        }
    };
    info!(recording_id = %replay.entry().id, frames = replay.frame_count(), "replaying in a browser");
    let (events_tx, events) = mpsc::channel(64);
    let (steer, steering) = mpsc::channel(8);
    let meta = replay.entry().meta.clone();
    let header = Out::Replay {
        player: meta.username.clone(),
        game: game_label(manager.config(), &meta.game_id),
        game_id: meta.game_id.clone(),
        start: meta.start.clone(),
        duration: replay.duration().as_secs_f64(),
    };
    if let Some(at) = query.at.filter(|at| *at > 0.0) {
        let _ = steer.try_send(ReplayControl::Seek(at));
    }
    tokio::spawn(recordings::play(
        replay,
        steering,
        events_tx,
        manager.shutting_down(),
    ));
    ws.max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
        .read_buffer_size(4 * MAX_INBOUND_BYTES)
        .on_upgrade(move |socket| relay(socket, header, events, steer))
}

/// Sends what the player plays as the page's messages, and passes the
/// page's steering to the player.
async fn relay(
    mut socket: WebSocket,
    header: Out,
    mut events: mpsc::Receiver<Result<ReplayEvent, RecordingError>>,
    steer: mpsc::Sender<ReplayControl>,
) {
    if send(&mut socket, &header).await.is_none() {
        return;
    }
    let mut view = ReplayView::default();
    loop {
        let out = tokio::select! {
            event = events.recv() => match event {
                Some(Ok(event)) => view.draw(event),
                Some(Err(e)) => vec![text(&Out::End { message: e.to_string(), replay: None })],
                None => break,
            },
            inbound = socket.recv() => match inbound {
                Some(Ok(Message::Text(text))) => {
                    match page_control(&text) {
                        // Never waits: a page flooding controls while the
                        // player waits for this relay would jam both.
                        Ok(control) => { let _ = steer.try_send(control); }
                        Err(e) => debug!(error = %e, "ignored a replay page's message"),
                    }
                    continue;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => {
                    debug!(?other, "replay socket closed");
                    break;
                }
            },
        };
        for message in out {
            if socket.send(message).await.is_err() {
                return;
            }
        }
    }
}

fn text(control: &Out) -> Message {
    wire::text(control)
}

/// Where the replay is, to tell the page; and the messages' numbers.
///
/// A recording holds no snapshot where the game was resized, and the page's
/// emulator need not resize as the player's terminal did: after a resize
/// the page gets the whole screen, as live pages get the hub's. For that
/// the view keeps the replay's screen model (one per replaying page, fed
/// the frames it sends; live watching has none).
struct ReplayView {
    model: Option<ScreenModel>,
    /// Numbers the messages as frames, for the page's order.
    frame_id: u64,
    position: f64,
    speed: f64,
    paused: bool,
    ended: bool,
    told_position: Instant,
}

impl Default for ReplayView {
    fn default() -> Self {
        Self {
            model: None,
            frame_id: 0,
            position: 0.0,
            speed: 1.0,
            paused: false,
            ended: false,
            told_position: Instant::now(),
        }
    }
}

impl ReplayView {
    fn draw(&mut self, event: ReplayEvent) -> Vec<Message> {
        match event {
            ReplayEvent::Opened { .. } => Vec::new(),
            ReplayEvent::Screen {
                position,
                size,
                data,
            } => {
                self.position = position.as_secs_f64();
                self.ended = false;
                self.frame_id += 1;
                let mut model = ScreenModel::new(size);
                model.process(&data);
                self.model = Some(model);
                let [control, body] = wire::snapshot(self.frame_id, size, 0, data);
                vec![control, body, self.state()]
            }
            ReplayEvent::Frame {
                position,
                resize,
                data,
            } => {
                let Some(model) = &mut self.model else {
                    return Vec::new();
                };
                self.frame_id += 1;
                self.position = position.as_secs_f64();
                let mut out = Vec::with_capacity(3);
                if let Some(size) = resize {
                    model.resize(size);
                    model.process(&data);
                    let screen = Bytes::from(model.snapshot());
                    out.extend(wire::snapshot(self.frame_id, size, 0, screen));
                } else {
                    model.process(&data);
                    out.push(Message::Binary(data));
                }
                if self.told_position.elapsed() >= POSITION_EVERY {
                    out.push(self.state());
                }
                out
            }
            ReplayEvent::State {
                position,
                speed,
                paused,
                ended,
            } => {
                self.position = position.as_secs_f64();
                self.speed = speed;
                self.paused = paused;
                self.ended = ended;
                vec![self.state()]
            }
            ReplayEvent::Chat { line, history, .. } => vec![text(&Out::chat(&line, history))],
        }
    }

    fn state(&mut self) -> Message {
        self.told_position = Instant::now();
        text(&Out::ReplayState {
            position: self.position,
            speed: self.speed,
            paused: self.paused,
            ended: self.ended,
        })
    }
}
