//! What every page's socket shares: writing with a deadline (a page that
//! stops reading is let go, not waited for), a ping every [`KEEPALIVE`] and
//! the end of a socket that says nothing for [`SILENCE`] (browsers answer
//! pings by themselves, so a silent socket is a page that went away without
//! closing: a phone off the network), and the reading loop's stops.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, SplitStream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::wire::{self, Control};

/// How long one message may take to leave before the page is let go.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a page is pinged.
pub const KEEPALIVE: Duration = Duration::from_secs(30);
/// How long a page may say nothing (not even a pong) before it is gone.
pub const SILENCE: Duration = Duration::from_secs(75);

/// The writing half of a page's socket.
pub type Out = SplitSink<WebSocket, Message>;

/// Sends `message` within [`SEND_TIMEOUT`]; `None` when the page is gone
/// or does not read.
pub async fn send(out: &mut Out, message: Message) -> Option<()> {
    tokio::time::timeout(SEND_TIMEOUT, out.send(message))
        .await
        .ok()?
        .ok()
}

/// A control as JSON text, as [`send`].
pub async fn control(out: &mut Out, control: &Control) -> Option<()> {
    send(out, wire::text(control)).await
}

/// The last word: `end` (when there is one), then the close, each within
/// the deadline.
pub async fn finish(out: &mut Out, end: Option<&Control>) {
    if let Some(end) = end {
        let _ = control(out, end).await;
    }
    let _ = tokio::time::timeout(SEND_TIMEOUT, out.close()).await;
}

/// A ping timer for a socket's loop (the first tick after [`KEEPALIVE`]).
pub fn keepalive() -> tokio::time::Interval {
    let mut every = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every
}

/// Why a page's reading loop stops at once: any of these tokens.
#[derive(Debug, Clone)]
pub struct Stops(pub Vec<CancellationToken>);

impl Stops {
    pub fn any(&self) -> bool {
        self.0.iter().any(CancellationToken::is_cancelled)
    }

    /// Resolves when any token is cancelled.
    pub async fn wait(&self) {
        if self.0.is_empty() {
            return std::future::pending().await;
        }
        let waits = self.0.iter().map(|t| Box::pin(t.cancelled()));
        futures_util::future::select_all(waits).await;
    }
}

/// The page's next message, or `None` when it closed, went silent for
/// [`SILENCE`], or a stop came first.
pub async fn next(inbound: &mut SplitStream<WebSocket>, stops: &Stops) -> Option<Message> {
    tokio::select! {
        read = tokio::time::timeout(SILENCE, inbound.next()) => match read {
            Ok(Some(Ok(message))) => Some(message),
            _ => None,
        },
        () = stops.wait() => None,
    }
}
