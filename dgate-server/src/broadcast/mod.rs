//! Broadcasting one game: the hub (its ordered pipeline from the PTY reader to
//! every subscriber), the spectator registry (who is watching) and the chat
//! (its lines fanned out the same way).
//! Neither knows about networks, protocols or accounts.

pub mod chat;
pub mod hub;
pub mod spectators;

pub use hub::{
    Delivery, Feed, Frame, FrameId, GameExit, Hub, HubCounters, HubOptions, Publisher, Resizer,
    Snapshot, SnapshotReason, Subscription, mirror, pipeline,
};
pub use spectators::{ANONYMOUS, Farewell, RegistryFull, Spectator, SpectatorRegistry};
