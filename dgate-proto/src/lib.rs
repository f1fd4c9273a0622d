//! The `dungeongate.games.v2` and `dungeongate.auth.v1` protobuf APIs:
//! generated message types, clients and servers, and the limits the API
//! documents. Nothing else: the domain types both sides convert these to
//! live in `dgate-term`.

/// How long a password may be, in bytes (`Register`, `ChangePassword`):
/// the server refuses others with `INVALID_ARGUMENT`, and the client checks
/// a new one before asking for it a second time.
pub const PASSWORD_BYTES: std::ops::RangeInclusive<usize> = 8..=1024;

/// Generated types of `package dungeongate.games.v2`.
pub mod games {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("dungeongate.games.v2");
}

/// Generated types of `package dungeongate.auth.v1`.
pub mod auth {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("dungeongate.auth.v1");
}

/// Generated types of `package dungeongate.cluster.v1`: what dgate nodes
/// say to each other over NATS (never seen by clients).
pub mod cluster {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("dungeongate.cluster.v1");
}

pub use games as pb;
