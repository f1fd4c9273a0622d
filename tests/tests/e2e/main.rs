//! dgate end to end: real servers on loopback, the real test game and real
//! NetHack in real PTYs, and the clients nobody here wrote (OpenSSH, tmux,
//! ttyplay, Chromium) where a user would use them.
//!
//! One test binary with a module per area, so that the shared harness
//! (`common`) is compiled and linked once. Run one area with
//! `cargo test -p dgate-tests --test e2e streaming::`.

mod common;

mod accounts;
mod bench;
mod binaries;
mod chat;
mod client;
mod cluster;
mod cluster_accounts;
mod cluster_failures;
mod cluster_viewers;
mod errors;
mod import;
mod lifecycle;
mod messages;
mod metrics;
mod nethack;
mod operators;
mod options;
mod reattach;
mod recording;
mod replay;
mod replay_chat;
mod snapshots;
mod ssh;
mod strangers;
mod streaming;
mod tls;
mod web;
mod web_play;
