//! One spectator stream, run as its own task: `AddSpectator`, then
//! `StreamGameIO` bound to that registration, every message forwarded in order
//! to the watch loop, tagged with the view it belongs to. Dropping the handle
//! ends the stream, and the server forgets the spectator.
//!
//! The forwarding channel is bounded: a watcher that stops reading (Ctrl+Z)
//! stops this task too, the server sees the stream fall behind and resyncs it
//! with a snapshot. Nothing is dropped here.

use dgate_proto::pb;
use dgate_proto::pb::game_io_response::Response;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::connection::{Connection, describe, with_token};
use crate::tokens::Saved;

/// What a stream delivers to the watch loop.
#[derive(Debug)]
pub enum StreamItem {
    Message(Response),
    /// The server refused or broke the stream; why, in one line.
    Failed(String),
    /// The server closed the stream.
    Closed,
}

pub type Tagged = (u64, StreamItem);

/// The running stream; dropping it ends the stream.
#[derive(Debug)]
pub struct SpectatorStream {
    task: JoinHandle<()>,
    /// Lines for the game's chat.
    chat: mpsc::Sender<String>,
}

impl SpectatorStream {
    /// Says `text` in the game's chat; false when the stream is gone or
    /// lines are queued faster than they are sent.
    pub fn say(&self, text: String) -> bool {
        self.chat.try_send(text).is_ok()
    }
}

impl Drop for SpectatorStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching `session_id`; messages arrive on `out` tagged with `key`.
pub fn spawn(
    connection: Connection,
    login: Option<Saved>,
    session_id: String,
    viewer_size: (u16, u16),
    key: u64,
    out: mpsc::Sender<Tagged>,
) -> SpectatorStream {
    let (chat, lines) = mpsc::channel(8);
    let task = tokio::spawn(async move {
        let item = match forward(
            &connection,
            login.as_ref(),
            &session_id,
            viewer_size,
            key,
            &out,
            lines,
        )
        .await
        {
            Ok(()) => StreamItem::Closed,
            Err(why) => StreamItem::Failed(why),
        };
        let _ = out.send((key, item)).await;
    });
    SpectatorStream { task, chat }
}

async fn forward(
    connection: &Connection,
    login: Option<&Saved>,
    session_id: &str,
    (cols, rows): (u16, u16),
    key: u64,
    out: &mpsc::Sender<Tagged>,
    mut chat: mpsc::Receiver<String>,
) -> Result<(), String> {
    let mut client = connection.games();
    let registration = pb::AddSpectatorRequest {
        session_id: session_id.to_owned(),
        ..Default::default()
    };
    let spectator = client
        .add_spectator(with_token(registration, login))
        .await
        .map_err(|e| describe(&e))?
        .into_inner()
        .spectator
        .ok_or("the server registered no spectator")?;
    let (requests, queue) = mpsc::channel(1);
    let connect = pb::GameIoRequest {
        request: Some(pb::game_io_request::Request::Connect(
            pb::ConnectPtyRequest {
                session_id: session_id.to_owned(),
                terminal_size: Some(pb::TerminalSize {
                    width: u32::from(cols),
                    height: u32::from(rows),
                }),
                term_type: std::env::var("TERM").unwrap_or_default(),
                spectator_id: spectator.spectator_id,
                username: String::new(),
            },
        )),
    };
    requests
        .send(connect)
        .await
        .map_err(|_| "the request queue closed")?;
    let mut stream = client
        .stream_game_io(with_token(ReceiverStream::new(queue), login))
        .await
        .map_err(|e| describe(&e))?
        .into_inner();
    // `requests` stays open for as long as we watch: closing it would end the stream.
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            Some(text) = chat.recv() => {
                let line = pb::GameIoRequest {
                    request: Some(pb::game_io_request::Request::Chat(pb::ChatSend { text })),
                };
                if requests.send(line).await.is_err() {
                    return Ok(());
                }
                continue;
            }
        };
        match message {
            Ok(Some(message)) => {
                if let Some(response) = message.response
                    && out
                        .send((key, StreamItem::Message(response)))
                        .await
                        .is_err()
                {
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(e) => return Err(describe(&e)),
        }
    }
}
