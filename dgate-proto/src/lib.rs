//! The `dungeongate.games.v2` protobuf API: generated message types and the
//! GameService client and server, plus the JSON shape of a session listing that
//! the HTTP API and `dgate list --json` share.

/// Generated types of `package dungeongate.games.v2`.
pub mod games {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("dungeongate.games.v2");
}

pub mod listing;

pub use games as pb;
pub use prost_types::Timestamp;
