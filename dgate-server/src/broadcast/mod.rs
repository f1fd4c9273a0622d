//! Broadcasting one game: the hub (its ordered pipeline from the PTY reader to
//! every subscriber) and the spectator registry (who is watching).
//! Neither knows about networks, protocols or accounts.

pub mod hub;
pub mod spectators;

pub use hub::{
    Delivery, Frame, FrameId, GameExit, Hub, HubCounters, HubOptions, Publisher, Resizer, Snapshot,
    SnapshotReason, Subscription, pipeline,
};
pub use spectators::{ANONYMOUS, RegistryFull, Spectator, SpectatorRegistry};
