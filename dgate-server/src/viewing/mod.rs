//! Every viewer's life in one place, whatever carries it: a spectator's
//! admission, registration, subscription, counting and cleanup
//! ([`watch`]), and the player's lease, input path and detach timer
//! ([`play`]). The front ends (gRPC, SSH, the browser) open one of these and
//! only encode what it yields into their own bytes.

pub mod audience;
pub mod chat;
pub mod play;
pub mod watch;

use crate::config::Config;
use crate::game::SessionError;

pub use play::{Play, PlayerInput, start_or_resume};
pub use watch::{Spectating, UNCLAIMED_SPECTATOR_GRACE, Watch, register};

/// What carries a viewer: the label of its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Grpc,
    Ssh,
    WebSocket,
}

impl Transport {
    pub fn label(self) -> &'static str {
        match self {
            Self::Grpc => "grpc",
            Self::Ssh => "ssh",
            Self::WebSocket => "websocket",
        }
    }
}

/// The rule for watching games and recordings alike: without an account
/// only when `spectating.allow_anonymous`.
pub fn may_watch(config: &Config, logged_in: bool) -> Result<(), SessionError> {
    let spectating = &config.session_management.spectating;
    if !logged_in && !spectating.allow_anonymous {
        return Err(SessionError::LoginRequired(
            "this server allows watching only when logged in".into(),
        ));
    }
    Ok(())
}
