//! Player accounts: the SQLite store (users, tokens, SSH keys), on a node
//! of a cluster a copy of the accounts every node shares, password
//! hashing, the limits on guessing and registering, and [`Logins`], the one
//! way in for password work. Everything here is independent of how
//! a login arrives (gRPC, SSH).

pub mod dgamelaunch;
pub mod limiter;
pub mod live;
pub mod logins;
pub mod passwords;
pub mod replica;
pub mod shared;
pub mod store;
pub mod tokens;

pub use limiter::LoginLimiter;
pub use live::{LiveUsers, Revocation};
pub use logins::{LoginError, Logins};
pub use shared::SharedAccounts;
pub use store::{
    AccountError, AccountStore, LegacyAccount, Login, NodeImport, PublicKeyInfo, User,
    check_username,
};
