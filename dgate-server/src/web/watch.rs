//! A game's page's socket, `GET /ws/spectate?session=ID[&from=FRAME]`: a
//! spectator like any other ([`crate::viewing::Spectating`]), anonymous or
//! logged in by the page's cookie. It sends the game's feed ([`super::feed`],
//! the same bytes to every browser), the chat and who watches
//! ([`super::talk`]); it hears chat lines and messages for the player, never
//! keys: a binary message (what a page would send to type) closes it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Json, Response};
use axum_extra::extract::cookie::CookieJar;
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::feed::{self, Feed, Kind};
use super::socket::{self, Out, Stops};
use super::talk::{self, Inbound, Mouth};
use super::wire::{self, Control};
use super::{Web, game_label, replay_path, status_of};
use crate::accounts::Revocation;
use crate::viewing::{Spectating, Transport};

/// The largest message a watch page sends: a chat line or a message for
/// the player (200 characters of up to 4 bytes, in JSON).
const MAX_INBOUND_BYTES: usize = 2048;

#[derive(Debug, Deserialize)]
pub(super) struct SpectateQuery {
    session: String,
    /// The frame a reconnecting page last showed: it gets the frames since
    /// rather than the whole screen, when the server still has them.
    from: Option<u64>,
}

/// Registers the browser as a spectator before upgrading, so that an unknown
/// or full session is a plain HTTP error (404, 429: cheap for the server,
/// and a page retries later); a refusal the page must show (kicked,
/// blocked, login required) is said on the socket, since a page cannot read
/// an upgrade's status.
pub(super) async fn spectate(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(web): State<Web>,
    Query(query): Query<SpectateQuery>,
    headers: HeaderMap,
    jar: CookieJar,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    if let Some(refusal) = super::foreign_origin(&web.manager, &headers) {
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
    // A game of another node: its mirror's first screen before joining.
    web.manager.ready(&query.session).await;
    // Logged in when the page's cookie says so; else anonymous.
    let who = web.accounts.visitor(&jar).await;
    let spectating = match Spectating::open(
        &web.manager,
        &query.session,
        who.as_ref(),
        crate::http::peer(connection),
        Transport::WebSocket,
    )
    .await
    {
        Ok(spectating) => spectating,
        // A page cannot read a refused upgrade's status: it is told why
        // on the socket, which then closes (and the page does not retry).
        Err(e) => {
            let status = status_of(&e);
            if status == StatusCode::TOO_MANY_REQUESTS {
                return (status, Json(json!({ "error": e.to_string() }))).into_response();
            }
            return ws.on_upgrade(move |socket| {
                super::refuse(socket, status, format!("You cannot watch this game: {e}."))
            });
        }
    };
    let (talk, mouth) = talk::join(&web.manager, spectating.session(), who.as_ref());
    // A logged-in page ends when its account is banned or its password
    // changes, as every logged-in connection does.
    let revoked = CancellationToken::new();
    let revocation = who
        .as_ref()
        .map(|user| web.accounts.auth.live().watch(user, revoked.clone()));
    // The page sends little: a read buffer of one largest message, which
    // the socket would otherwise make 128 KiB (and zero on every read); it
    // is most of what a watching browser costs the server in memory.
    ws.max_message_size(MAX_INBOUND_BYTES)
        .max_frame_size(MAX_INBOUND_BYTES)
        .read_buffer_size(MAX_INBOUND_BYTES)
        .on_upgrade(move |socket| async move {
            let live = Live {
                revoked,
                revocation,
            };
            watch(socket, web, spectating, talk, mouth, query.from, live).await;
        })
}

/// A logged-in page's tie to its account (none for an anonymous one).
struct Live {
    revoked: CancellationToken,
    revocation: Option<Arc<Revocation>>,
}

/// Relays the game's feed and its chat to one browser until either goes;
/// dropping `spectating` (however this ends) removes the browser from the
/// spectators.
async fn watch(
    socket: WebSocket,
    web: Web,
    spectating: Spectating,
    talk: talk::Talk,
    mouth: Mouth,
    resume_after: Option<u64>,
    live: Live,
) {
    let session = Arc::clone(spectating.session());
    let ring = web.manager.config().session_management.queue_frames;
    let end = Control::End {
        message: format!("{}'s game has ended.", session.info.username),
        replay: replay_path(&web.manager, &session),
    };
    let mut follower = Feed::follow(&web.feeds, &session, ring, resume_after, end).await;
    let game = game_label(web.manager.config(), &session.info.game_id);
    let (mut out, inbound) = socket.split();
    // Everything but the frames is the page task's: what the page says, the
    // chat and audience, pings, and the reasons to stop. It hands the loop
    // below what to send through one queue, so a frame costs the loop two
    // waits (the feed, the queue), not one per reason to wake up.
    let done = CancellationToken::new();
    let stops = Stops(vec![
        spectating.removed().clone(),
        live.revoked.clone(),
        done.clone(),
    ]);
    let (events_tx, mut events) = mpsc::channel(EVENTS);
    let page = PageTask {
        inbound,
        mouth,
        talk: Box::pin(talk.into_stream()),
        stops,
        events: events_tx,
        removed: spectating.removed().clone(),
        player: session.info.username.clone(),
        live,
    };
    let page = tokio::spawn(page.run());
    let _page = super::AbortOnDrop(page.abort_handle());
    let mut frame_id = 0;
    let mut watchers = usize::MAX;
    let end = 'watching: loop {
        for item in std::mem::take(&mut follower.first) {
            if !forward(&mut out, &item, &mut frame_id, &spectating).await {
                break 'watching None;
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
            if socket::control(&mut out, &status).await.is_none() {
                break None;
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
                Err(RecvError::Closed) => break None,
            },
            event = events.recv() => {
                let message = match event {
                    Some(Event::Send(message)) => message,
                    Some(Event::End(why)) => break why,
                    None => break None,
                };
                if socket::send(&mut out, message).await.is_none() {
                    break None;
                }
                continue;
            }
        };
        if !forward(&mut out, &item, &mut frame_id, &spectating).await {
            break None;
        }
    };
    done.cancel();
    page.abort();
    let end = end.map(|message| Control::End {
        message,
        replay: None,
    });
    socket::finish(&mut out, end.as_ref()).await;
}

/// What the page task hands the socket's loop (small: the queue holds its
/// slots for the socket's life).
enum Event {
    /// A control (encoded) or a ping.
    Send(Message),
    /// The page is done; why, when the page should be told.
    End(Option<String>),
}

/// Events waiting for the loop (it sends them between frames).
const EVENTS: usize = 16;

/// A watch page's side of its socket.
struct PageTask {
    inbound: SplitStream<WebSocket>,
    mouth: Mouth,
    talk: std::pin::Pin<Box<dyn futures_util::Stream<Item = Control> + Send>>,
    stops: Stops,
    events: mpsc::Sender<Event>,
    removed: CancellationToken,
    player: String,
    live: Live,
}

impl PageTask {
    /// Until the page goes, is removed, its login ends, or the loop is done;
    /// then the last event says why.
    async fn run(mut self) {
        let mut pings = socket::keepalive();
        loop {
            let event = tokio::select! {
                message = socket::next(&mut self.inbound, &self.stops) => {
                    let Some(message) = message else { break };
                    if heard(&self.mouth, message).await {
                        continue;
                    }
                    break;
                }
                Some(control) = self.talk.next() => Event::Send(wire::text(&control)),
                _ = pings.tick() => Event::Send(Message::Ping(Default::default())),
            };
            if self.events.send(event).await.is_err() {
                return;
            }
        }
        let why = if self.removed.is_cancelled() {
            Some(format!(
                "You are no longer watching {}'s game (removed from its spectators).",
                self.player
            ))
        } else if self.live.revoked.is_cancelled() {
            let why = self
                .live
                .revocation
                .as_ref()
                .map(|r| r.why())
                .unwrap_or_default();
            Some(format!("Your login has ended: {why}."))
        } else {
            None
        };
        let _ = self.events.send(Event::End(why)).await;
    }
}

/// What a watch page said: chat lines and messages for the player; false
/// when it must go (a binary message: spectators never type into the game;
/// a close).
async fn heard(mouth: &Mouth, message: Message) -> bool {
    match message {
        Message::Text(text) => match Inbound::parse(text.as_str()) {
            Ok(Inbound::Chat { text }) => mouth.chat(&text).await,
            Ok(Inbound::Message { text }) => mouth.message(&text).await,
            Ok(Inbound::Resize { .. }) => {
                mouth
                    .answer("Spectators never resize the game.".into())
                    .await;
            }
            Err(why) => mouth.answer(why).await,
        },
        Message::Ping(_) | Message::Pong(_) => {}
        other => {
            debug!(?other, "web spectator socket closed");
            return false;
        }
    }
    true
}

/// Sends one of the feed's messages (the same bytes every browser gets);
/// false when the socket is gone or the game is over.
async fn forward(
    out: &mut Out,
    item: &feed::Item,
    frame_id: &mut u64,
    spectating: &Spectating,
) -> bool {
    if socket::send(out, item.message.clone()).await.is_none() {
        return false;
    }
    if let Some(body) = &item.body
        && socket::send(out, body.clone()).await.is_none()
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
