//! Watching in a browser: the lobby page (`GET /`), a game's page
//! (`GET /watch/{session_id}`) and its WebSocket (`GET /ws/spectate?session=ID`).
//! The pages, their scripts and the terminal emulator they draw with
//! (xterm.js, vendored in `web/vendor/` by `scripts/vendor-xterm.sh`) are
//! compiled in: no CDN, no build step, the pages work offline.
//!
//! The WebSocket sends the hub's own bytes ([`wire`]): the snapshot on join
//! and resync, then each frame as the game wrote it, the same `Bytes` for
//! every browser of the game ([`feed`]); the page's emulator draws them, so its screen is the player's
//! (bold as bright, the 16 colours, line drawing, wide characters, the
//! alternate screen) and its text stays in the DOM (selectable, copyable,
//! readable by a screen reader). A browser is a spectator like any other:
//! read-only (what it sends is ignored; oversized or binary messages close
//! its socket), counted against `max_spectators_per_session`, resynced with a
//! snapshot when it falls behind, and never resizes the game: the page's
//! terminal is the game's size. A finished game's page says it ended and
//! links its replay.

pub mod feed;
mod files;
mod replay;
pub mod wire;

pub use replay::page_control;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tracing::debug;

use crate::config::Config;
use crate::game::{Session, SessionError, SessionManager};
use crate::limits::loggable;
use crate::metrics::Refusal;
use crate::viewing::{self, Spectating, Transport};
use feed::{Feed, Feeds, Kind};
use wire::Control;

/// The largest message a page may send (it has nothing to say; this is a guard).
const MAX_INBOUND_BYTES: usize = 1024;

const LOBBY: &str = include_str!("../../web/lobby.html");
const WATCH: &str = include_str!("../../web/watch.html");
const ENDED: &str = include_str!("../../web/ended.html");
const SCRIPT: &str = include_str!("../../web/term.js");
const LOBBY_SCRIPT: &str = include_str!("../../web/lobby.js");
const STYLE: &str = include_str!("../../web/style.css");
const XTERM: &str = include_str!("../../web/vendor/xterm/xterm.js");
const XTERM_STYLE: &str = include_str!("../../web/vendor/xterm/xterm.css");
const XTERM_FIT: &str = include_str!("../../web/vendor/addon-fit/addon-fit.js");

/// The pages that hold a terminal: xterm.js styles its rows with `<style>`
/// elements and `style` attributes, so these allow inline styles (never
/// inline scripts).
const TERMINAL_PAGE_POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

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
        .route("/assets/term.js", axum::routing::get(|| script(SCRIPT)))
        .route(
            "/assets/lobby.js",
            axum::routing::get(|| script(LOBBY_SCRIPT)),
        )
        .route("/assets/xterm.js", axum::routing::get(|| script(XTERM)))
        .route(
            "/assets/addon-fit.js",
            axum::routing::get(|| script(XTERM_FIT)),
        )
        .route(
            "/assets/style.css",
            axum::routing::get(|| stylesheet(STYLE)),
        )
        .route(
            "/assets/xterm.css",
            axum::routing::get(|| stylesheet(XTERM_STYLE)),
        )
        .with_state(web)
        .merge(replay::routes(manager.clone()))
        .merge(files::routes(manager))
}

/// The lobby, with the games' short names (`NH36`) for its list.
async fn lobby(State(web): State<Web>) -> Html<String> {
    let names: serde_json::Map<String, serde_json::Value> = web
        .manager
        .config()
        .games
        .iter()
        .map(|g| (g.id.clone(), game_label(web.manager.config(), &g.id).into()))
        .collect();
    // JSON in a data block: `<` escaped, so no text closes the element.
    let names = serde_json::Value::Object(names)
        .to_string()
        .replace('<', "\\u003c");
    Html(LOBBY.replace("{{GAMES}}", &names))
}

/// The name menus show for a game: its short name (`NH36`), else its id.
pub(crate) fn game_label(config: &Config, game_id: &str) -> String {
    config
        .game(game_id)
        .map(|g| g.short_name.as_str())
        .filter(|name| !name.is_empty())
        .unwrap_or(game_id)
        .to_owned()
}

/// A page with a terminal in it, under [`TERMINAL_PAGE_POLICY`].
pub(crate) fn terminal_page(html: String) -> Response {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(TERMINAL_PAGE_POLICY),
        )],
        Html(html),
    )
        .into_response()
}

async fn watch_page(State(web): State<Web>, Path(session_id): Path<String>) -> Response {
    match web.manager.get(&session_id) {
        Ok(session) => {
            let title = format!(
                "{} · {}",
                session.info.username,
                game_label(web.manager.config(), &session.info.game_id)
            );
            terminal_page(WATCH.replace("{{TITLE}}", &escape(&title)))
        }
        Err(e) => match ended_page(&web.manager, &session_id).await {
            Some(page) => page,
            None => (
                StatusCode::NOT_FOUND,
                Html(format!(
                    "<!doctype html><meta charset=utf-8><title>dgate</title>\
                     <p>{}</p><p><a href=\"/\">The games in progress</a></p>",
                    escape(&e.to_string())
                )),
            )
                .into_response(),
        },
    }
}

/// The page of a game that is over and recorded: that it ended, how, and
/// links to its replay and its file. `None` when no recording of it is
/// known (or anonymous browsers may not see recordings).
async fn ended_page(manager: &SessionManager, session_id: &str) -> Option<Response> {
    viewing::may_watch(manager.config(), false).ok()?;
    let entry = manager
        .library()
        .list("", "", i32::MAX)
        .await
        .into_iter()
        .find(|e| e.meta.session_id == session_id)?;
    let m = &entry.meta;
    let game = game_label(manager.config(), &m.game_id);
    let title = format!("{} · {game}", m.username);
    let ending = entry.summary().ending();
    let start = m.start.replace('T', " ");
    let start = start.split('.').next().unwrap_or(&start);
    let message = format!(
        "{}'s game of {game} (started {start} UTC) has ended: {ending}.",
        m.username
    );
    let path = url_path(&entry.id);
    let page = ENDED
        .replace("{{TITLE}}", &escape(&title))
        .replace("{{MESSAGE}}", &escape(&message))
        .replace("{{REPLAY}}", &format!("/replay/{path}"))
        .replace("{{DOWNLOAD}}", &format!("/recordings/{path}"));
    Some(Html(page).into_response())
}

/// Where a running game's replay will be once it has ended, when it is
/// recorded: its recording's id as the recorder names it.
fn replay_path(manager: &SessionManager, session: &Session) -> Option<String> {
    let config = manager.config();
    if !config.session_management.ttyrec.enabled || viewing::may_watch(config, false).is_err() {
        return None;
    }
    let file = crate::game::recorder::recording_path(std::path::Path::new(""), session);
    let id = file.to_str()?.strip_suffix(".ttyrec")?;
    Some(format!("/replay/{}", url_path(id)))
}

/// `id` with each `/`-separated segment percent-encoded (as the lobby's
/// `encodeURIComponent` does).
pub(crate) fn url_path(id: &str) -> String {
    id.split('/')
        .map(|segment| {
            segment
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn script(text: &'static str) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        text,
    )
}

async fn stylesheet(text: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], text)
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
    let end = Control::End {
        message: format!("{}'s game has ended.", session.info.username),
        replay: replay_path(&web.manager, &session),
    };
    let mut follower = Feed::follow(&web.feeds, &session, ring, resume_after, end).await;
    let game = game_label(web.manager.config(), &session.info.game_id);
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
            let status = Control::Status {
                player: session.info.username.clone(),
                game: game.clone(),
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

/// Sends one of the feed's messages (the same bytes every browser gets);
/// false when the socket is gone or the game is over.
async fn forward(
    socket: &mut WebSocket,
    item: &feed::Item,
    frame_id: &mut u64,
    spectating: &Spectating,
) -> bool {
    if socket.send(item.message.clone()).await.is_err() {
        return false;
    }
    if let Some(body) = &item.body
        && socket.send(body.clone()).await.is_err()
    {
        return false;
    }
    *frame_id = item.frame_id;
    match item.kind {
        Kind::Frame => spectating.sent_frame(item.wire_bytes()),
        Kind::Snapshot { skipped, reason } => {
            spectating.sent_snapshot(item.wire_bytes(), reason, skipped)
        }
        Kind::Resize => {}
        Kind::End => return false,
    }
    true
}

/// The bytes sent, or `None` when the socket is gone.
async fn send(socket: &mut WebSocket, message: &Control) -> Option<u64> {
    let text = message.json();
    let bytes = text.len() as u64;
    socket.send(Message::Text(text.into())).await.ok()?;
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_ids_become_paths_segment_by_segment() {
        assert_eq!(
            url_path("ann/nethack/2026-11-26T18:24:34.123Z"),
            "ann/nethack/2026-11-26T18%3A24%3A34.123Z"
        );
        assert_eq!(url_path("a b/<x>"), "a%20b/%3Cx%3E");
    }

    #[test]
    fn games_are_named_as_menus_name_them() {
        let config = Config::embedded();
        let nethack = config.games.first().expect("a game");
        let label = game_label(&config, &nethack.id);
        assert!(!label.is_empty());
        if !nethack.short_name.is_empty() {
            assert_eq!(label, nethack.short_name);
        }
        assert_eq!(game_label(&config, "no-such-game"), "no-such-game");
    }
}
