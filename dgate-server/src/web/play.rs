//! Playing in a browser: the page `GET /play/{game_id}` and its socket
//! `GET /ws/play?game=ID&cols=C&rows=R`, for a logged-in page
//! ([`super::accounts`]). The socket starts the player's game of that id,
//! or resumes the one they have running, at the page's size; then it is
//! the player's view like any other ([`crate::viewing::Play`]): the hub's
//! deliveries out (a snapshot first, then each frame's bytes), keystrokes
//! in (binary messages, in order), resizes from the page (the game follows
//! the window), the chat and the player's notices beside them.
//!
//! The same rules as gRPC: only the owner's input reaches the game, a newer
//! connection of theirs takes over (this one is told and ends), closing
//! the tab detaches (the game waits `detach_grace`), a ban or a password
//! change ends it. The socket is refused unless the page is the server's
//! own (`Origin`, which a browser always sends with a WebSocket): the
//! cookie alone does not open it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::socket::{self, Out, Stops};
use super::talk::{self, Inbound, Mouth};
use super::wire::{self, Control};
use super::{Web, escape, game_label, status_of, terminal_page, url_path};
use crate::accounts::{Revocation, User};
use crate::broadcast::Delivery;
use crate::config::TermSize;
use crate::grpc::game_io::MAX_INPUT_BYTES;
use crate::viewing::{Play, PlayerInput, Transport, start_or_resume};

const PLAY: &str = include_str!("../../web/play.html");

/// `GET /play/{game_id}`: the page, for a logged-in browser (others are
/// sent to log in first and come back).
pub(super) async fn play_page(
    State(web): State<Web>,
    Path(game_id): Path<String>,
    jar: CookieJar,
) -> Response {
    let Some(user) = web.accounts.visitor(&jar).await else {
        let back = format!("/play/{}", url_path(&game_id));
        return Redirect::to(&format!("/login?next={}", url_path(&back))).into_response();
    };
    let config = web.manager.config();
    let Some(game) = config.game(&game_id) else {
        return super::plain_page(
            StatusCode::NOT_FOUND,
            &format!("There is no game {game_id:?} on this server."),
        );
    };
    if let Some(reason) = crate::game::catalog::unavailable_reason(game) {
        return super::plain_page(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{} is unavailable: {reason}", game.name),
        );
    }
    let title = format!("{} · {}", user.username, game_label(config, &game_id));
    terminal_page(
        PLAY.replace("{{TITLE}}", &escape(&title))
            .replace("{{USER}}", &escape(&user.username)),
    )
}

#[derive(Debug, Deserialize)]
pub(super) struct PlayQuery {
    game: String,
    cols: u16,
    rows: u16,
}

/// Checks where the request comes from, then starts or resumes the game
/// before upgrading; what a page should show (no login, a game that cannot
/// start) is said on the socket, since a page cannot read an upgrade's
/// HTTP status.
pub(super) async fn play_socket(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(web): State<Web>,
    Query(query): Query<PlayQuery>,
    headers: HeaderMap,
    jar: CookieJar,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    let http_error = |status: StatusCode, error: String| {
        (status, Json(json!({ "error": error }))).into_response()
    };
    if headers.get(header::ORIGIN).is_none() {
        return http_error(
            StatusCode::FORBIDDEN,
            "this socket is for the server's own pages (no Origin)".into(),
        );
    }
    if let Some(refusal) = super::foreign_origin(&web.manager, &headers) {
        return refusal;
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => return rejection.into_response(),
    };
    let Some(user) = web.accounts.visitor(&jar).await else {
        let why = "Log in to play: your login has ended or was never made.".to_owned();
        return ws.on_upgrade(move |socket| super::refuse(socket, StatusCode::UNAUTHORIZED, why));
    };
    let size = match fitted(&web, query.cols, query.rows) {
        Ok(size) => size,
        Err(e) => return http_error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let peer = crate::http::peer(connection);
    let started = start_or_resume(&web.manager, &user, &query.game, Some(size));
    let (session, resumed) = match started {
        Ok(started) => started,
        Err(e) => return cannot(ws, &e),
    };
    let play = match Play::attach(&web.manager, session, &user, Transport::WebSocket) {
        Ok(play) => play,
        Err(e) => return cannot(ws, &e),
    };
    // A resumed game takes this window's size, as a new one did.
    if resumed && let Err(e) = play.input().resize(size) {
        debug!(error = %e, "a resumed game kept its size");
    }
    debug!(username = %user.username, game = %query.game, resumed, ?peer, "playing in a browser");
    let revoked = CancellationToken::new();
    let revocation = web.accounts.auth.live().watch(&user, revoked.clone());
    ws.max_message_size(MAX_INPUT_BYTES)
        .max_frame_size(MAX_INPUT_BYTES)
        .on_upgrade(move |socket| async move {
            playing(socket, web, play, user, revoked, revocation).await;
        })
}

/// The page's window in cells, within the server's largest terminal (a
/// window larger than that gets the largest); no side may be 0.
fn fitted(web: &Web, cols: u16, rows: u16) -> Result<TermSize, crate::game::SessionError> {
    let max = web.manager.config().session_management.terminal.max_size;
    web.manager
        .check_size(TermSize::new(cols.min(max.cols), rows.min(max.rows)))
}

/// The game cannot start or be played: the page is told why on the socket
/// (it cannot read an upgrade's status).
fn cannot(ws: WebSocketUpgrade, e: &crate::game::SessionError) -> Response {
    let status = status_of(e);
    let why = format!("Cannot play: {e}.");
    ws.on_upgrade(move |socket| super::refuse(socket, status, why))
}

/// Relays the game to the page and the page's keys to the game until the
/// game ends, the page goes, or another connection takes over; dropping
/// `play` then detaches the player (the game waits for them).
async fn playing(
    socket: WebSocket,
    web: Web,
    mut play: Play,
    user: User,
    revoked: CancellationToken,
    revocation: Arc<Revocation>,
) {
    let session = Arc::clone(play.session());
    let (mut out, inbound) = socket.split();
    let (talk, mouth) = talk::join(&web.manager, &session, Some(&user));
    let talk = talk.into_stream();
    let mut notices = session.notices();
    // Keys stop the moment this socket is no longer the player's: taken
    // over, the login ended, or this loop done (even while the page's
    // writes wait).
    let taken_over = play.taken_over().clone();
    let done = CancellationToken::new();
    let stops = Stops(vec![taken_over.clone(), revoked.clone(), done.clone()]);
    let reader = tokio::spawn(read_keys(inbound, play.input().clone(), mouth, stops));
    let _reader = super::AbortOnDrop(reader.abort_handle());
    let mut reader = reader;
    let mut pings = socket::keepalive();
    let status = Control::Status {
        player: session.info.username.clone(),
        game: game_label(web.manager.config(), &session.info.game_id),
        watchers: session.spectators.len(),
    };
    if socket::control(&mut out, &status).await.is_none() {
        return;
    }
    let (taken_over_token, revoked_token) = (taken_over.clone(), revoked.clone());
    let taken_over = taken_over.cancelled_owned();
    let revoked = revoked.cancelled_owned();
    tokio::pin!(talk, taken_over, revoked);
    let end = loop {
        tokio::select! {
            delivery = play.next() => {
                let Some(delivery) = delivery else { break None };
                let last = matches!(delivery, Delivery::Ended { .. });
                if deliver(&mut out, &web, &session, delivery).await.is_none() || last {
                    break None;
                }
            }
            Some(control) = talk.next() => {
                if socket::control(&mut out, &control).await.is_none() {
                    break None;
                }
            }
            notice = notices.next() => {
                let control = Control::Notice {
                    announcement: notice.sender.is_none(),
                    sender: notice.sender.unwrap_or_default(),
                    text: notice.text,
                };
                if socket::control(&mut out, &control).await.is_none() {
                    break None;
                }
            }
            _ = pings.tick() => {
                if socket::send(&mut out, Message::Ping(Default::default())).await.is_none() {
                    break None;
                }
            }
            // The reader also stops when the socket is taken over or the
            // login ends: the page is told why below all the same.
            _ = &mut reader => break None,
            () = &mut taken_over => break None,
            () = &mut revoked => break None,
        }
    };
    let end = end.or_else(|| {
        if taken_over_token.is_cancelled() {
            Some("Another connection of yours took over this game.".to_owned())
        } else if revoked_token.is_cancelled() {
            Some(format!(
                "Your login has ended: {}. Log in again.",
                revocation.why()
            ))
        } else {
            None
        }
    });
    done.cancel();
    reader.abort();
    let end = end.map(|message| Control::End {
        message,
        replay: None,
    });
    socket::finish(&mut out, end.as_ref()).await;
}

/// Sends one of the hub's deliveries in the page's wire format.
async fn deliver(
    out: &mut Out,
    web: &Web,
    session: &Arc<crate::game::Session>,
    delivery: Delivery,
) -> Option<()> {
    match delivery {
        Delivery::Snapshot(s) => {
            let [control, body] =
                wire::snapshot(s.frame_id.get(), s.size, s.frames_skipped, s.data);
            socket::send(out, control).await?;
            socket::send(out, body).await?;
        }
        Delivery::Frame(frame) => socket::send(out, Message::Binary(frame.data.clone())).await?,
        Delivery::Resize { size, .. } => {
            let resize = Control::Resize {
                cols: size.cols,
                rows: size.rows,
            };
            socket::control(out, &resize).await?;
        }
        Delivery::Ended { .. } => {
            let end = Control::End {
                message: "Your game has ended.".into(),
                replay: super::replay_path(&web.manager, session),
            };
            socket::control(out, &end).await?;
        }
    }
    Some(())
}

/// The page's messages: keystrokes (binary) into the game in order, its
/// size, its chat lines. Returns when the page goes, goes silent, or any of
/// `stops` comes (checked again before each key is typed).
async fn read_keys(
    mut inbound: SplitStream<WebSocket>,
    input: PlayerInput,
    mouth: Mouth,
    stops: Stops,
) {
    while let Some(message) = socket::next(&mut inbound, &stops).await {
        match message {
            Message::Binary(keys) => {
                if stops.any() {
                    return;
                }
                tokio::select! {
                    sent = input.send(keys) => if sent.is_err() { return },
                    () = stops.wait() => return,
                }
            }
            Message::Text(text) => match Inbound::parse(text.as_str()) {
                Ok(Inbound::Chat { text }) => mouth.chat(&text).await,
                Ok(Inbound::Resize { cols, rows }) => {
                    let resized = fitted_size(&input, cols, rows);
                    if let Err(e) = resized {
                        mouth.answer(format!("The game keeps its size: {e}.")).await;
                    }
                }
                Ok(Inbound::Message { .. }) => {
                    mouth
                        .answer("You are the player: your messages go to the chat.".into())
                        .await;
                }
                Err(why) => mouth.answer(why).await,
            },
            Message::Ping(_) | Message::Pong(_) => {}
            Message::Close(_) => return,
        }
    }
}

/// Resizes the game to the page's window, within the server's largest.
fn fitted_size(input: &PlayerInput, cols: u16, rows: u16) -> Result<(), crate::game::SessionError> {
    let max = input.max_size();
    input.resize(TermSize::new(cols.min(max.cols), rows.min(max.rows)))
}
