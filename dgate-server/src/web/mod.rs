//! Watching in a browser: the lobby page (`GET /`), a game's page
//! (`GET /watch/{session_id}`) and its WebSocket (`GET /ws/spectate?session=ID`).
//! The pages and their script are compiled in (no CDN, no build step).
//!
//! The WebSocket sends screen snapshots and per-frame row deltas as JSON
//! ([`screen_json`]), never the game's bytes: the page is a small renderer of
//! rows of styled text in the DOM (selectable, copyable, readable by a screen
//! reader). A browser is a spectator like any other: read-only (what it sends
//! is ignored; oversized or binary messages close its socket), counted against
//! `max_spectators_per_session`, and resynced with a snapshot when it falls behind.

pub mod feed;
mod replay;
pub mod screen_json;

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info};

use crate::error::SessionError;
use crate::metrics::Metrics;
use crate::registry::Spectator;
use crate::session::Session;
use crate::sessions::SessionManager;
use feed::Feed;
use screen_json::Message as Out;

/// The largest message a page may send (it has nothing to say; this is a guard).
const MAX_INBOUND_BYTES: usize = 1024;
pub const WEBSOCKET: &str = "websocket";

const LOBBY: &str = include_str!("../../web/lobby.html");
const WATCH: &str = include_str!("../../web/watch.html");
const SCRIPT: &str = include_str!("../../web/term.js");
const STYLE: &str = include_str!("../../web/style.css");

pub fn routes() -> axum::Router<SessionManager> {
    axum::Router::new()
        .merge(replay::routes())
        .route("/", axum::routing::get(lobby))
        .route("/watch/{session_id}", axum::routing::get(watch_page))
        .route("/ws/spectate", axum::routing::get(spectate))
        .route("/assets/term.js", axum::routing::get(script))
        .route("/assets/style.css", axum::routing::get(style))
}

async fn lobby() -> Html<&'static str> {
    Html(LOBBY)
}

async fn watch_page(
    State(manager): State<SessionManager>,
    Path(session_id): Path<String>,
) -> Response {
    match manager.get(&session_id) {
        Ok(_) => Html(WATCH).into_response(),
        Err(e) => (
            StatusCode::NOT_FOUND,
            Html(format!(
                "<!doctype html><meta charset=utf-8><title>dgate</title>\
                 <p>{}</p><p><a href=\"/\">The games in progress</a></p>",
                escape(&e.to_string())
            )),
        )
            .into_response(),
    }
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}

async fn style() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Debug, Deserialize)]
struct SpectateQuery {
    session: String,
    /// The frame a reconnecting page last showed: it gets the frames since
    /// rather than the whole screen, when the server still has them.
    from: Option<u64>,
}

/// Registers the browser as a spectator before upgrading, so that an unknown
/// or full session is a plain HTTP error.
async fn spectate(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(manager): State<SessionManager>,
    Query(query): Query<SpectateQuery>,
) -> Response {
    if let Err(e) = manager.get(&query.session) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response();
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let (session, spectator) = match manager.add_spectator(&query.session, 0, "") {
        Ok(registered) => registered,
        Err(e) => {
            let status = match &e {
                SessionError::NotFound(_) => StatusCode::NOT_FOUND,
                SessionError::SpectatorsFull(_) => StatusCode::TOO_MANY_REQUESTS,
                SessionError::LoginRequired(_) => StatusCode::UNAUTHORIZED,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            return (status, Json(json!({ "error": e.to_string() }))).into_response();
        }
    };
    spectator.bind();
    // The page never sends more than a ping: a small read buffer, which the
    // socket would otherwise zero (128 KiB) on every read it attempts.
    ws.max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
        .read_buffer_size(4 * MAX_INBOUND_BYTES)
        .on_upgrade(move |socket| watch(socket, manager, session, spectator, query.from))
}

async fn watch(
    mut socket: WebSocket,
    manager: SessionManager,
    session: Arc<Session>,
    spectator: Arc<Spectator>,
    resume_after: Option<u64>,
) {
    let metrics = Arc::clone(manager.metrics());
    let connections = metrics
        .spectator_connections_active
        .get_or_create(&Metrics::transport(WEBSOCKET))
        .clone();
    let bytes_sent = metrics
        .bytes_sent
        .get_or_create(&Metrics::transport(WEBSOCKET))
        .clone();
    metrics
        .spectator_sessions
        .get_or_create(&Metrics::game(&session.info.game_id))
        .inc();
    connections.inc();
    let ring = manager.config().session_management.queue_frames;
    let mut follower = Feed::follow(&session, ring, resume_after).await;
    let mut frame_id = 0;
    let mut watchers = usize::MAX;
    'watching: loop {
        for item in std::mem::take(&mut follower.first) {
            if !forward(&mut socket, &item, &mut frame_id, &metrics, &bytes_sent).await {
                break 'watching;
            }
        }
        let now = session.spectators.len();
        if now != watchers {
            watchers = now;
            let status = Out::Status {
                player: session.info.username.clone(),
                game: session.info.game_id.clone(),
                watchers,
            };
            if send(&mut socket, &status).await.is_none() {
                break;
            }
        }
        let item = tokio::select! {
            item = follower.rx.recv() => match item {
                Ok(item) => item,
                Err(RecvError::Lagged(_)) => {
                    // A whole ring behind: the screen now instead.
                    follower.resync(frame_id);
                    continue;
                }
                Err(RecvError::Closed) => break,
            },
            inbound = socket.recv() => match inbound {
                // Read-only: text and pings are ignored; the rest ends this socket.
                Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => continue,
                other => {
                    debug!(?other, "web spectator socket closed");
                    break;
                }
            },
            () = spectator.removed.cancelled() => break,
        };
        if !forward(&mut socket, &item, &mut frame_id, &metrics, &bytes_sent).await {
            break;
        }
    }
    session.spectators.remove(&spectator.id);
    connections.dec();
    info!(session_id = %session.info.id, spectator_count = session.spectators.len(),
          "web spectator left");
}

/// Sends one of the feed's messages; false when the socket is gone or the
/// game is over.
async fn forward(
    socket: &mut WebSocket,
    item: &feed::Item,
    frame_id: &mut u64,
    metrics: &Metrics,
    bytes_sent: &prometheus_client::metrics::counter::Counter,
) -> bool {
    if socket.send(Message::Text(item.json.clone())).await.is_err() {
        return false;
    }
    bytes_sent.inc_by(item.json.len() as u64);
    *frame_id = item.frame_id;
    if item.frame {
        metrics.spectator_frames_sent.inc();
    }
    if item.skipped > 0 {
        metrics.spectator_resyncs.inc();
        metrics.spectator_frames_dropped.inc_by(item.skipped);
    }
    !item.end
}

/// The bytes sent, or `None` when the socket is gone.
async fn send(socket: &mut WebSocket, message: &Out) -> Option<u64> {
    let text = serde_json::to_string(message).ok()?;
    let bytes = text.len() as u64;
    socket.send(Message::Text(text.into())).await.ok()?;
    Some(bytes)
}
