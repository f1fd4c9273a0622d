//! Errors of running games and watching them, matched by callers; each front
//! end says them its own way (the gRPC service maps each to a status code).

use crate::broadcast::RegistryFull;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no session with id {0:?}")]
    NotFound(String),
    #[error("no game with id {0:?}")]
    UnknownGame(String),
    #[error("game {game:?} is unavailable: {reason}")]
    GameUnavailable { game: String, reason: String },
    #[error("{username} already has an active {game} session ({session_id})")]
    AlreadyActive {
        username: String,
        game: String,
        session_id: String,
    },
    #[error("invalid {what}: {why}")]
    Invalid { what: &'static str, why: String },
    #[error("{0}")]
    LoginRequired(String),
    #[error(transparent)]
    SpectatorsFull(#[from] RegistryFull),
    #[error("not a registered spectator of this session")]
    NotRegistered,
    #[error("this spectator registration already has a stream")]
    AlreadyBound,
    #[error("this is {owner}'s game, not yours")]
    NotYours { owner: String },
    #[error("spectating is disabled on this server")]
    SpectatingDisabled,
    #[error("the game has ended")]
    Ended,
    #[error("could not start {game:?}: {reason}")]
    Spawn { game: String, reason: String },
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("{0}")]
    Limit(String),
    /// The game runs on another node of the cluster: it is played there.
    #[error("this game runs on node {node}: connect to that node to play it")]
    Elsewhere { node: String },
    /// The player's rules (or a chat's) say no, for this reason.
    #[error("{0}")]
    NotAllowed(String),
    /// The game's node (another node of the cluster) did not answer.
    #[error("the game's node did not answer ({0}); try again")]
    Unreachable(String),
}

impl SessionError {
    pub fn invalid(what: &'static str, why: impl Into<String>) -> Self {
        Self::Invalid {
            what,
            why: why.into(),
        }
    }
}
