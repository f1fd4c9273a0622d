//! What a page's socket carries beside the terminal, on the watch and play
//! pages alike: the game's chat (the history on joining, then each line),
//! who watches (whenever it changes), answers for this page alone; and what a
//! page says: chat lines, a message for the player (a watch page), the
//! player's terminal size (the play page). The rules are the same as on
//! every transport ([`crate::viewing::chat`], [`crate::game::messages`]):
//! the sender is the page's login, never a name in the message.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::mpsc;

use super::wire::Control;
use crate::accounts::User;
use crate::broadcast::chat::{ChatItem, ChatReceiver};
use crate::game::{Session, SessionManager, messages};
use crate::viewing::chat::{self, Said};

/// How often a socket looks whether its audience changed.
const AUDIENCE_CHECK: Duration = Duration::from_secs(1);

/// What a page sends as JSON text (`type`).
#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Inbound {
    /// A line for the game's chat (or a command, from the player).
    Chat { text: String },
    /// A message for the player (`m` on a watch page).
    Message { text: String },
    /// The player's window, in cells (the play page).
    Resize { cols: u16, rows: u16 },
}

impl Inbound {
    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("a message the server does not know: {e}"))
    }
}

/// The controls a socket sends beside the game's bytes, in order.
#[derive(Debug)]
pub struct Talk {
    chat: Option<ChatReceiver>,
    pending: VecDeque<Control>,
    answers: mpsc::Receiver<String>,
    session: Arc<Session>,
    audience_version: u64,
    audience: (Vec<String>, usize),
    check: tokio::time::Interval,
}

/// A socket's way to say things in its game; answers reach its [`Talk`].
#[derive(Debug, Clone)]
pub struct Mouth {
    session: Arc<Session>,
    manager: SessionManager,
    who: Option<User>,
    answers: mpsc::Sender<String>,
}

/// Joins `session`'s chat and audience as `who` (anonymous: `None`, who
/// reads the chat unless `spectating.chat.anonymous_read` is off).
pub fn join(manager: &SessionManager, session: &Arc<Session>, who: Option<&User>) -> (Talk, Mouth) {
    let reads = who.is_some()
        || manager
            .config()
            .session_management
            .spectating
            .chat
            .anonymous_read;
    let mut pending = VecDeque::new();
    let chat = reads.then(|| {
        let (history, receiver) = session.chat.join();
        pending.extend(history.iter().map(|line| Control::chat(line, true)));
        receiver
    });
    let registry = session.spectators.load();
    let audience = registry.audience();
    pending.push_back(Control::Audience {
        names: audience.0.clone(),
        anonymous: audience.1,
    });
    let (answers_tx, answers) = mpsc::channel(8);
    let talk = Talk {
        chat,
        pending,
        answers,
        session: Arc::clone(session),
        audience_version: registry.version,
        audience,
        check: tokio::time::interval(AUDIENCE_CHECK),
    };
    let mouth = Mouth {
        session: Arc::clone(session),
        manager: manager.clone(),
        who: who.cloned(),
        answers: answers_tx,
    };
    (talk, mouth)
}

impl Talk {
    /// The next control to send; waits for one. Safe to cancel (in a
    /// `select!`): nothing is lost.
    pub async fn next(&mut self) -> Control {
        loop {
            if let Some(control) = self.pending.pop_front() {
                return control;
            }
            tokio::select! {
                item = next_chat(&mut self.chat) => match item {
                    ChatItem::Line(line) => return Control::chat(&line, false),
                    ChatItem::Skipped(lines) => {
                        self.pending.extend(lines.iter().map(|line| Control::chat(line, false)));
                    }
                },
                Some(text) = self.answers.recv() => return Control::Answer { text },
                _ = self.check.tick() => {
                    // Rebuilt only when the registry changed since.
                    let registry = self.session.spectators.load();
                    if registry.version != self.audience_version {
                        self.audience_version = registry.version;
                        let now = registry.audience();
                        if now != self.audience {
                            self.audience = now;
                            return Control::Audience {
                                names: self.audience.0.clone(),
                                anonymous: self.audience.1,
                            };
                        }
                    }
                }
            }
        }
    }
}

impl Talk {
    /// The controls as a stream that keeps its place between polls: a
    /// socket's loop waits on it beside every frame without registering
    /// with the chat, the timer and the answers again for each frame.
    pub fn into_stream(self) -> impl futures_util::Stream<Item = Control> + Send {
        futures_util::stream::unfold(self, |mut talk| async move {
            let control = talk.next().await;
            Some((control, talk))
        })
    }
}

async fn next_chat(chat: &mut Option<ChatReceiver>) -> ChatItem {
    match chat {
        Some(chat) => chat.next().await,
        None => std::future::pending().await,
    }
}

impl Mouth {
    /// Says `text` in the game's chat; a refusal or a command's result is
    /// answered to this page.
    pub async fn chat(&self, text: &str) {
        let answer = match chat::say(&self.manager, &self.session, self.who.as_ref(), text).await {
            Ok(Said::Posted) => return,
            Ok(Said::Answer(answer)) => answer,
            Err(e) => e.to_string(),
        };
        self.answer(answer).await;
    }

    /// Sends `text` to the player as a message; says to this page whether
    /// it went.
    pub async fn message(&self, text: &str) {
        let answer = match &self.who {
            None => "log in to send the player a message".to_owned(),
            Some(user) => {
                match messages::send(&self.manager, &self.session.info.id, user, text).await {
                    Ok(_) => format!("Sent to {}.", self.session.info.username),
                    Err(e) => format!("Not sent: {e}."),
                }
            }
        };
        self.answer(answer).await;
    }

    /// A word for this page alone.
    pub async fn answer(&self, text: String) {
        // A page that says more than it reads answers to loses the extra
        // answers, and never holds up its own socket.
        let _ = self.answers.try_send(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_say_three_things() {
        assert_eq!(
            Inbound::parse(r#"{"type":"chat","text":"hi"}"#),
            Ok(Inbound::Chat { text: "hi".into() })
        );
        assert_eq!(
            Inbound::parse(r#"{"type":"resize","cols":100,"rows":30}"#),
            Ok(Inbound::Resize {
                cols: 100,
                rows: 30
            })
        );
        assert!(Inbound::parse(r#"{"type":"input","data":"x"}"#).is_err());
        assert!(Inbound::parse("not json").is_err());
        assert!(Inbound::parse(r#"{"type":"resize","cols":-1,"rows":30}"#).is_err());
    }
}
