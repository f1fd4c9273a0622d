//! The `dungeongate.games.v2` and `dungeongate.auth.v1` protobuf APIs:
//! generated message types, clients and servers, plus the JSON shape of a session listing that
//! the HTTP API and `dgate list --json` share.

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

pub mod listing;

pub use games as pb;
pub use prost_types::Timestamp;
