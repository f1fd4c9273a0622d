//! Player accounts: the SQLite store (users, tokens, SSH keys), password
//! hashing, and the failed-login limit. Everything here is independent of how
//! a login arrives (gRPC, SSH).

pub mod limiter;
pub mod passwords;
pub mod store;

pub use limiter::LoginLimiter;
pub use store::{AccountError, AccountStore, Login, PublicKeyInfo, User, check_username};
