//! Running games: the catalog of games on offer, the PTY a game runs in, the
//! session that owns one running game (its reader publishes into the hub),
//! the manager of all sessions, the recorder that writes each to disk, and
//! the finished recordings offered for replay.

pub mod catalog;
pub mod error;
pub mod extra_info;
pub mod hooks;
pub mod inprogress;
pub mod library;
pub mod manager;
pub mod messages;
pub mod pty;
pub mod rc_files;
pub mod recorder;
pub mod recordings;
pub mod session;

pub use error::SessionError;
pub use manager::{GameListing, RemoteGames, SessionManager, StartRequest};
pub use session::{PlayerLease, Session, SessionInfo};
