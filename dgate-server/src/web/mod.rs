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
mod files;
mod replay;
pub mod screen_json;

pub use replay::page_control;

use std::sync::Arc;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use std::net::SocketAddr;

use axum::Extension;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use crate::broadcast::SnapshotReason;

use crate::game::{SessionError, SessionManager};
use crate::limits::loggable;
use crate::metrics::Refusal;
use crate::viewing::{Spectating, Transport};
use feed::{Feed, Feeds};
use screen_json::Message as Out;

/// The largest message a page may send (it has nothing to say; this is a guard).
const MAX_INBOUND_BYTES: usize = 1024;

const LOBBY: &str = include_str!("../../web/lobby.html");
const WATCH: &str = include_str!("../../web/watch.html");
const SCRIPT: &str = include_str!("../../web/term.js");
const LOBBY_SCRIPT: &str = include_str!("../../web/lobby.js");
const STYLE: &str = include_str!("../../web/style.css");

/// What the browser side shares: the games, and one feed per watched game.
#[derive(Debug, Clone)]
struct Web {
    manager: SessionManager,
    feeds: Arc<Feeds>,
}

pub fn routes<S: Clone + Send + Sync + 'static>(manager: SessionManager) -> axum::Router<S> {
    let web = Web {
        manager: manager.clone(),
        feeds: Arc::new(Feeds::default()),
    };
    axum::Router::new()
        .route("/", axum::routing::get(lobby))
        .route("/watch/{session_id}", axum::routing::get(watch_page))
        .route("/ws/spectate", axum::routing::get(spectate))
        .route("/assets/term.js", axum::routing::get(script))
        .route("/assets/lobby.js", axum::routing::get(lobby_script))
        .route("/assets/style.css", axum::routing::get(style))
        .with_state(web)
        .merge(replay::routes(manager.clone()))
        .merge(files::routes(manager))
}

async fn lobby() -> Html<&'static str> {
    Html(LOBBY)
}

async fn watch_page(State(web): State<Web>, Path(session_id): Path<String>) -> Response {
    match web.manager.get(&session_id) {
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

async fn lobby_script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        LOBBY_SCRIPT,
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

/// A browser WebSocket opened by a page of another site: refused (403),
/// unless that site is in `server.allowed_origins`. A client that sends no
/// `Origin` is not a browser page and is let in.
pub(crate) fn foreign_origin(manager: &SessionManager, headers: &HeaderMap) -> Option<Response> {
    let origin = headers.get(header::ORIGIN)?.to_str().unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    let allowed = &manager.config().server.allowed_origins;
    if (!host.is_empty() && authority.eq_ignore_ascii_case(host))
        || allowed.iter().any(|a| a.eq_ignore_ascii_case(origin))
    {
        return None;
    }
    manager.metrics().refused(Refusal::WebSocketOrigin);
    debug!(origin = %loggable(origin), "WebSocket from a foreign origin refused");
    Some(
        (
            StatusCode::FORBIDDEN,
            Json(
                json!({ "error": "this socket is for the server's own pages (a foreign Origin)" }),
            ),
        )
            .into_response(),
    )
}

/// Registers the browser as a spectator before upgrading, so that an unknown
/// or full session is a plain HTTP error.
async fn spectate(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(web): State<Web>,
    Query(query): Query<SpectateQuery>,
    headers: HeaderMap,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    if let Some(refusal) = foreign_origin(&web.manager, &headers) {
        return refusal;
    }
    if let Err(e) = web.manager.get(&query.session) {
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
    // Browsers watch anonymously.
    let spectating = match Spectating::open(
        &web.manager,
        &query.session,
        None,
        crate::http::peer(connection),
        Transport::WebSocket,
    ) {
        Ok(spectating) => spectating,
        Err(e) => {
            let status = match &e {
                SessionError::NotFound(_) => StatusCode::NOT_FOUND,
                SessionError::SpectatorsFull(_) | SessionError::Limit(_) => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                SessionError::LoginRequired(_) => StatusCode::UNAUTHORIZED,
                _ => StatusCode::SERVICE_UNAVAILABLE,
            };
            return (status, Json(json!({ "error": e.to_string() }))).into_response();
        }
    };
    // The page never sends more than a ping: a small read buffer, which the
    // socket would otherwise zero (128 KiB) on every read it attempts.
    ws.max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
        .read_buffer_size(4 * MAX_INBOUND_BYTES)
        .on_upgrade(move |socket| watch(socket, web, spectating, query.from))
}

/// Relays the game's feed to one browser until either goes; dropping
/// `spectating` (however this ends) removes the browser from the spectators.
async fn watch(mut socket: WebSocket, web: Web, spectating: Spectating, resume_after: Option<u64>) {
    let session = Arc::clone(spectating.session());
    let ring = web.manager.config().session_management.queue_frames;
    let mut follower = Feed::follow(&web.feeds, &session, ring, resume_after).await;
    let mut frame_id = 0;
    let mut watchers = usize::MAX;
    let removed = spectating.removed().clone();
    'watching: loop {
        for item in std::mem::take(&mut follower.first) {
            if !forward(&mut socket, &item, &mut frame_id, &spectating).await {
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
            () = removed.cancelled() => break,
        };
        if !forward(&mut socket, &item, &mut frame_id, &spectating).await {
            break;
        }
    }
}

/// Sends one of the feed's messages; false when the socket is gone or the
/// game is over.
async fn forward(
    socket: &mut WebSocket,
    item: &feed::Item,
    frame_id: &mut u64,
    spectating: &Spectating,
) -> bool {
    if socket.send(Message::Text(item.json.clone())).await.is_err() {
        return false;
    }
    *frame_id = item.frame_id;
    if item.frame {
        spectating.sent_frame(item.json.len());
    } else {
        let reason = if item.skipped > 0 {
            SnapshotReason::Resync
        } else {
            SnapshotReason::Join
        };
        spectating.sent_snapshot(item.json.len(), reason, item.skipped);
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
