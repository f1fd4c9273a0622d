//! Player accounts: the SQLite store (users, tokens, SSH keys), password
//! hashing, the limits on guessing and registering, and [`Logins`], the one
//! way in for password work. Everything here is independent of how
//! a login arrives (gRPC, SSH).

pub mod dgamelaunch;
pub mod limiter;
pub mod live;
pub mod logins;
pub mod passwords;
pub mod store;

pub use limiter::LoginLimiter;
pub use live::{LiveUsers, Revocation};
pub use logins::{LoginError, Logins};
pub use store::{
    AccountError, AccountStore, LegacyAccount, Login, PublicKeyInfo, User, check_username,
};
