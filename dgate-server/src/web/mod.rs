//! The browser's side: the lobby (`GET /`), a game's page
//! (`GET /watch/{session_id}`) and its WebSocket ([`watch`]), playing
//! (`GET /play/{game_id}`, [`play`]) once logged in ([`accounts`]), the chat
//! beside both ([`talk`]), replays ([`replay`]) and recordings' files.
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
//! read-only (it may chat; binary or oversized messages close its socket),
//! counted against `max_spectators_per_session`, resynced with a
//! snapshot when it falls behind, and never resizes the game: the page's
//! terminal is the game's size. A finished game's page says it ended and
//! links its replay.

pub mod accounts;
pub mod feed;
mod files;
mod options;
mod play;
mod player;
mod replay;
mod socket;
mod talk;
mod watch;
pub mod wire;

pub use replay::page_control;

use std::sync::Arc;

use axum::extract::ws::{Message, WebSocket};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use axum_extra::extract::cookie::CookieJar;
use serde_json::json;
use tracing::debug;

use crate::config::Config;
use crate::game::{Session, SessionError, SessionManager};
use crate::limits::loggable;
use crate::metrics::Refusal;
use crate::viewing;
use accounts::Accounts;
use feed::Feeds;
use wire::Control;

const LOBBY: &str = include_str!("../../web/lobby.html");
const WATCH: &str = include_str!("../../web/watch.html");
const ENDED: &str = include_str!("../../web/ended.html");
const CHAT: &str = include_str!("../../web/chat.html");
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

/// What the browser side shares: the games, one feed per watched game,
/// and the accounts (who a page's cookie is).
#[derive(Debug, Clone)]
struct Web {
    manager: SessionManager,
    feeds: Arc<Feeds>,
    accounts: Accounts,
}

pub fn routes<S: Clone + Send + Sync + 'static>(
    manager: SessionManager,
    accounts: Accounts,
) -> axum::Router<S> {
    let web = Web {
        manager: manager.clone(),
        feeds: Arc::new(Feeds::default()),
        accounts,
    };
    let forms = axum::Router::new()
        .route("/login", get(accounts::login_page).post(accounts::login))
        .route("/logout", post(accounts::logout))
        .layer(DefaultBodyLimit::max(accounts::MAX_FORM_BYTES));
    let options = axum::Router::new()
        .route(
            "/options/{game_id}",
            get(options::options_page).post(options::save),
        )
        .layer(DefaultBodyLimit::max(options::MAX_FORM_BYTES));
    axum::Router::new()
        .route("/", get(lobby))
        .route("/watch/{session_id}", get(watch_page))
        .route("/ws/spectate", get(watch::spectate))
        .route("/play/{game_id}", get(play::play_page))
        .route("/ws/play", get(play::play_socket))
        .route("/player/{name}", get(player::player_page))
        .merge(forms)
        .merge(options)
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

/// The lobby, with the games' short names (`NH36`) for its list, and who
/// the visitor is with the games they can play.
async fn lobby(State(web): State<Web>, jar: CookieJar) -> Html<String> {
    let config = web.manager.config();
    let names: serde_json::Map<String, serde_json::Value> = config
        .games
        .iter()
        .map(|g| (g.id.clone(), game_label(config, &g.id).into()))
        .collect();
    let visitor = match web.accounts.visitor(&jar).await {
        None => serde_json::Value::Null,
        Some(user) => {
            let playing = web.manager.list();
            let games: Vec<_> = config
                .games
                .iter()
                .map(|g| {
                    let running = playing
                        .iter()
                        .any(|s| s.is_owned_by(&user) && s.info.game_id == g.id);
                    json!({
                        "id": g.id,
                        "name": g.name,
                        "short_name": game_label(config, &g.id),
                        "unavailable": crate::game::catalog::unavailable_reason(g),
                        "running": running,
                        "rc": g.rc_file.is_some(),
                    })
                })
                .collect();
            json!({ "username": user.username, "games": games })
        }
    };
    let data = json!({ "names": names, "visitor": visitor });
    // JSON in a data block: `<` escaped, so no text closes the element.
    let data = data.to_string().replace('<', "\\u003c");
    Html(LOBBY.replace("{{GAMES}}", &data))
}

/// The HTTP status a refusal of the games' takes on the browser's side.
pub(crate) fn status_of(e: &SessionError) -> StatusCode {
    match e {
        SessionError::NotFound(_) | SessionError::UnknownGame(_) => StatusCode::NOT_FOUND,
        SessionError::SpectatorsFull(_) | SessionError::Limit(_) => StatusCode::TOO_MANY_REQUESTS,
        SessionError::LoginRequired(_) => StatusCode::UNAUTHORIZED,
        SessionError::NotYours { .. } | SessionError::NotAllowed(_) => StatusCode::FORBIDDEN,
        SessionError::Invalid { .. } => StatusCode::BAD_REQUEST,
        SessionError::Ended => StatusCode::GONE,
        _ => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// A page of one sentence, and a way back to the lobby.
pub(crate) fn plain_page(status: StatusCode, text: &str) -> Response {
    let page = format!(
        "<!doctype html><meta charset=utf-8><meta name=viewport \
         content=\"width=device-width, initial-scale=1\"><title>dgate</title>\
         <link rel=stylesheet href=/assets/style.css><main><p>{}</p>\
         <p><a href=\"/\">The games in progress</a></p></main>",
        escape(text)
    );
    (status, Html(page)).into_response()
}

/// The largest message a replay page sends (its controls).
const MAX_INBOUND_BYTES: usize = 1024;

/// Sends a control as JSON text: the bytes sent, or `None` when the socket
/// is gone.
async fn send(socket: &mut WebSocket, message: &Control) -> Option<u64> {
    let text = message.json();
    let bytes = text.len() as u64;
    socket.send(Message::Text(text.into())).await.ok()?;
    Some(bytes)
}

/// Tells a page why its socket is refused (the `end` control, then a
/// close whose code says whether trying again later may help): a page
/// cannot read a refused upgrade's HTTP status.
pub(crate) async fn refuse(mut socket: WebSocket, status: StatusCode, why: String) {
    let end = Control::End {
        message: why.clone(),
        replay: None,
    };
    let _ = socket.send(wire::text(&end)).await;
    // 1013 "try again later" for a full game; 1008 "policy" for the rest.
    let code = if status == StatusCode::TOO_MANY_REQUESTS {
        1013
    } else {
        1008
    };
    // A close frame's reason is at most 123 bytes.
    let mut reason = why;
    while reason.len() > 120 {
        reason.pop();
    }
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// Aborts a socket's reading task when the socket's loop ends.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
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

/// A page with a terminal in it, under [`TERMINAL_PAGE_POLICY`], with the
/// chat panel in its place (`{{CHAT}}`); `{{USER}}`, when the caller left
/// it, is an anonymous visitor.
pub(crate) fn terminal_page(html: String) -> Response {
    let html = html.replace("{{CHAT}}", CHAT).replace("{{USER}}", "");
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(TERMINAL_PAGE_POLICY),
        )],
        Html(html),
    )
        .into_response()
}

async fn watch_page(
    State(web): State<Web>,
    Path(session_id): Path<String>,
    jar: CookieJar,
) -> Response {
    match web.manager.get(&session_id) {
        Ok(session) => {
            let title = format!(
                "{} · {}",
                session.info.username,
                game_label(web.manager.config(), &session.info.game_id)
            );
            let user = web.accounts.visitor(&jar).await;
            let user = user.as_ref().map_or("", |u| u.username.as_str());
            terminal_page(
                WATCH
                    .replace("{{TITLE}}", &escape(&title))
                    .replace("{{USER}}", &escape(user))
                    .replace("{{PLAYER}}", &url_path(&session.info.username))
                    .replace("{{PLAYER_NAME}}", &escape(&session.info.username)),
            )
        }
        Err(e) => match ended_page(&web.manager, &session_id).await {
            Some(page) => page,
            None => plain_page(StatusCode::NOT_FOUND, &e.to_string()),
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
        .replace("{{PLAYER}}", &url_path(&m.username))
        .replace("{{PLAYER_NAME}}", &escape(&m.username))
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
