//! Who may say what in a game's chat, the same on every transport: logged-in
//! spectators and the player write, anonymous spectators only read; the
//! sender's name is their login's; a line is at most [`MAX_CHARS`]
//! characters without control characters; each user says at most
//! `spectating.chat.lines_per_10s` lines per [`WINDOW`]. A line starting with `/` is a
//! command of the player (or an admin): the [`audience`](super::audience)
//! rules, applied at once to whoever watches now.

use std::time::Duration;

use tracing::info;

use super::audience::{Block, Command};
use crate::accounts::User;
use crate::game::{Session, SessionError, SessionManager};
use crate::limits::PerName;
use crate::metrics::{CommandLabel, ReasonLabel};

/// The longest line, in characters.
pub const MAX_CHARS: usize = 200;
/// The rate limit's window.
pub const WINDOW: Duration = Duration::from_secs(10);

/// What came of a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// It is in the chat.
    Posted,
    /// For the sender alone: a command's result, or why the line went
    /// nowhere.
    Answer(String),
}

/// The lines each user said lately, for the rate limit of
/// `spectating.chat.lines_per_10s` per [`WINDOW`], over every game.
#[derive(Debug)]
pub struct ChatLimit(PerName);

impl ChatLimit {
    pub fn new(per_window: usize) -> Self {
        Self(PerName::new(per_window, WINDOW))
    }

    fn allow(&self, user: &str) -> Result<(), SessionError> {
        self.0.allow(user).map_err(|_| {
            SessionError::Limit(format!(
                "at most {} lines per {} s; wait a moment",
                self.0.max(),
                WINDOW.as_secs()
            ))
        })
    }
}

/// `text` from `who` (anonymous when `None`) in `session`'s chat: here,
/// or for a mirror of another node's game on that node, whose chat it is.
pub async fn say(
    manager: &SessionManager,
    session: &Session,
    who: Option<&User>,
    text: &str,
) -> Result<Said, SessionError> {
    match (session.origin(), manager.remote()) {
        (Some(_), Some(remote)) => {
            let Some(user) = who else {
                return Err(anonymous());
            };
            remote.say(session, user, text).await
        }
        _ => say_here(manager, session, who, text),
    }
}

fn anonymous() -> SessionError {
    SessionError::LoginRequired("log in to chat; anonymous spectators only read".into())
}

/// `text` from `who` in the chat of `session`, a game of this node,
/// counted in the metrics as said, refused (by reason) or a command.
pub fn say_here(
    manager: &SessionManager,
    session: &Session,
    who: Option<&User>,
    text: &str,
) -> Result<Said, SessionError> {
    let metrics = manager.metrics();
    let refused = |reason: &'static str| {
        metrics
            .chat_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    };
    let said = say_counted(manager.chat_limit(), session, who, text);
    match &said {
        Ok(Said::Posted) => {
            metrics.chat_lines.inc();
        }
        Ok(Said::Answer(_)) if text.trim_start().starts_with('/') => {
            let command = text
                .split_whitespace()
                .next()
                .and_then(|verb| {
                    ["/mute", "/unmute", "/kick", "/block", "/unblock", "/help"]
                        .into_iter()
                        .find(|known| verb.eq_ignore_ascii_case(known))
                })
                .unwrap_or("other");
            metrics
                .chat_commands
                .get_or_create(&CommandLabel {
                    command: command.trim_start_matches('/'),
                })
                .inc();
        }
        Ok(Said::Answer(_)) => refused("muted"),
        Err(SessionError::LoginRequired(_)) => refused("anonymous"),
        Err(SessionError::Limit(_)) => refused("rate"),
        Err(SessionError::NotAllowed(_)) => refused("not_the_player"),
        Err(_) => refused("invalid"),
    }
    said
}

fn say_counted(
    limit: &ChatLimit,
    session: &Session,
    who: Option<&User>,
    text: &str,
) -> Result<Said, SessionError> {
    let Some(user) = who else {
        return Err(anonymous());
    };
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    let text = text.trim();
    if text.is_empty() {
        return Err(SessionError::invalid("chat line", "it is empty"));
    }
    let chars = text.chars().count();
    if chars > MAX_CHARS {
        return Err(SessionError::invalid(
            "chat line",
            format!("{chars} characters; at most {MAX_CHARS}"),
        ));
    }
    let is_player = session.is_owned_by(user);
    if text.starts_with('/') {
        if !is_player && !user.is_admin {
            return Err(SessionError::NotAllowed(format!(
                "only {} (or an admin) gives commands in this chat",
                session.info.username
            )));
        }
        let command = Command::parse(text).map_err(|why| SessionError::invalid("command", why))?;
        return command_of(session, user, &command).map(Said::Answer);
    }
    // Whom the player keeps away (kicked, blocked) does not talk here
    // either, from a connection that was open before.
    if !is_player
        && !user.is_admin
        && let Some(why) = session.audience().refuses(Some(user))
    {
        return Err(SessionError::NotAllowed(why));
    }
    limit.allow(&user.username)?;
    if session.audience().is_muted(&user.username) {
        return Ok(Said::Answer(format!(
            "you are muted in {}'s chat",
            session.info.username
        )));
    }
    session
        .chat
        .post(&user.username, text.to_owned(), is_player, user.is_admin);
    Ok(Said::Posted)
}

/// Applies `command` of `by` to the session's player's audience, and to
/// whoever watches this game now.
fn command_of(session: &Session, by: &User, command: &Command) -> Result<String, SessionError> {
    let registry = session.spectators.load();
    let watching = registry.in_join_order();
    if let Command::Kick { name, .. } = command
        && !watching
            .iter()
            .any(|s| s.username.eq_ignore_ascii_case(name))
    {
        return Err(SessionError::invalid(
            "command",
            format!("{name} is not watching this game"),
        ));
    }
    let answer = session.audience().apply(command);
    let leaving: Vec<_> = watching
        .iter()
        .filter(|s| match command {
            Command::Kick { name, .. } => s.username.eq_ignore_ascii_case(name),
            Command::Block(Block::Anon) => s.user_id == 0,
            Command::Block(_) => true,
            _ => false,
        })
        .collect();
    for spectator in &leaving {
        session.spectators.remove(&spectator.id);
    }
    info!(session_id = %session.info.id, by = %by.username, ?command, removed = leaving.len(),
          "chat command");
    Ok(answer)
}
