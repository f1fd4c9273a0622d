//! The `dungeongate.games.v2` and `dungeongate.auth.v1` protobuf APIs:
//! generated message types, clients and servers. Nothing else: the domain
//! types both sides convert these to live in `dgate-term`.

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

pub use games as pb;
