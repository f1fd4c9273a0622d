//! Prometheus metrics (OpenMetrics text at `GET /metrics`), with the spectating
//! document's names. Every metric is updated by a real event where it happens;
//! no label carries a user name.

use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GameLabel {
    pub game: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TransportLabel {
    pub transport: String,
}

/// Why a connection or request was refused to protect the server: a
/// [`Refusal`]'s name.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

/// Every kind of refusal the server counts in `refusals_total{reason}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Over `server.max_connections_per_address` (gRPC, SSH, HTTP).
    ConnectionsPerAddress,
    /// An SSH connection dropped by `ssh.max_startups` (in all or per address).
    SshStartups,
    /// An SSH client that did not log in within `ssh.login_grace_time`.
    SshLoginGrace,
    /// An HTTP client too slow to send its headers.
    HttpHeaderTimeout,
    /// A login over a failed-login limit.
    Logins,
    /// A registration over `accounts.registrations_per_address_per_hour`.
    Registrations,
    /// A password check refused because the hashing queue was full.
    PasswordQueue,
    /// A spectator over a per-address spectator cap.
    SpectatorsPerAddress,
    /// A browser WebSocket from a foreign origin.
    WebSocketOrigin,
    /// A replay over the concurrent replay caps.
    Replays,
}

impl Refusal {
    pub fn name(self) -> &'static str {
        match self {
            Refusal::ConnectionsPerAddress => "connections_per_address",
            Refusal::SshStartups => "ssh_startups",
            Refusal::SshLoginGrace => "ssh_login_grace",
            Refusal::HttpHeaderTimeout => "http_header_timeout",
            Refusal::Logins => "logins",
            Refusal::Registrations => "registrations",
            Refusal::PasswordQueue => "password_queue",
            Refusal::SpectatorsPerAddress => "spectators_per_address",
            Refusal::WebSocketOrigin => "websocket_origin",
            Refusal::Replays => "replays",
        }
    }
}

fn histogram_seconds() -> Histogram {
    // 1 µs to about 1 s.
    Histogram::new(exponential_buckets(1e-6, 4.0, 11))
}

/// Every metric the server exports. Cloning a metric shares it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Spectator streams started, by game.
    pub spectator_sessions: Family<GameLabel, Counter>,
    pub spectator_connections_active: Family<TransportLabel, Gauge>,
    pub spectator_frames_sent: Counter,
    /// Frames spectators skipped because a resync snapshot replaced them.
    pub spectator_frames_dropped: Counter,
    pub spectator_resyncs: Counter,
    /// One frame through the hub: numbering, screen model, fan-out.
    pub spectator_frame_processing_duration_seconds: Histogram,
    pub spectator_registry_update_duration_seconds: Histogram,
    pub game_sessions_active: Family<GameLabel, Gauge>,
    pub game_sessions_started: Family<GameLabel, Counter>,
    pub game_sessions_ended: Family<GameLabel, Counter>,
    /// Terminal bytes sent to viewers and players, by transport.
    pub bytes_sent: Family<TransportLabel, Counter>,
    pub failed_logins: Counter,
    /// Connections and requests refused to protect the server, by reason.
    pub refusals: Family<ReasonLabel, Counter>,
    /// Panics anywhere in the process (see `count_panics`).
    pub panics: Counter,
    pub recording_write_errors: Counter,
    /// Subscribers of any kind (players, spectators, recorders) resynced.
    pub hub_resyncs: Counter,
    /// Times a game's screen model panicked and was started afresh.
    pub screen_model_resets: Counter,
    /// SSH connections accepted, and open now.
    pub ssh_connections: Counter,
    pub ssh_connections_active: Gauge,
    /// Chat lines said, in every game.
    pub chat_lines: Counter,
    /// Chat lines that went nowhere, by reason.
    pub chat_refused: Family<ReasonLabel, Counter>,
    /// Players' (and admins') chat commands, by command.
    pub chat_commands: Family<CommandLabel, Counter>,
    /// Spectators' messages to players (`m`) and announcements delivered.
    pub player_messages: Counter,
    /// A cluster node's relays, mirrors and NATS connection (`cluster`).
    pub cluster: ClusterMetrics,
}

/// Why a mirror asked its game's node for a snapshot again.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CauseLabel {
    pub cause: &'static str,
}

/// The cluster's counters (all zero on a server without a cluster).
#[derive(Debug, Clone)]
pub struct ClusterMetrics {
    /// Messages relays published (frames, resizes, ends, heartbeats, resyncs).
    pub relay_messages: Counter,
    /// Times a relay fell behind its hub and published a snapshot instead.
    pub relay_resyncs: Counter,
    /// Relays running now (one per game of this node).
    pub relays_active: Gauge,
    /// Snapshot requests this node answered for its games.
    pub snapshot_requests_served: Counter,
    /// Snapshot requests this node's mirrors sent, by cause.
    pub snapshot_requests_sent: Family<CauseLabel, Counter>,
    /// Snapshot requests that failed (no answer, no such game, bad answer).
    pub snapshot_request_failures: Counter,
    /// Mirrors of other nodes' games on this node now.
    pub mirrors_active: Gauge,
    /// Messages from NATS that did not decode or made no sense, dropped.
    pub malformed_messages: Counter,
    /// Times the NATS connection came back after it was lost.
    pub nats_reconnects: Counter,
    /// NATS's slow-consumer events (a subscription here fell behind).
    pub nats_slow_consumers: Counter,
    /// How long after the game's node read a frame a mirror here took it
    /// (the clocks of both nodes in it).
    pub mirror_lag: Histogram,
}

impl Default for ClusterMetrics {
    fn default() -> Self {
        Self {
            relay_messages: Counter::default(),
            relay_resyncs: Counter::default(),
            relays_active: Gauge::default(),
            snapshot_requests_served: Counter::default(),
            snapshot_requests_sent: Family::default(),
            snapshot_request_failures: Counter::default(),
            mirrors_active: Gauge::default(),
            malformed_messages: Counter::default(),
            nats_reconnects: Counter::default(),
            nats_slow_consumers: Counter::default(),
            // 100 µs to about 3 s.
            mirror_lag: Histogram::new(exponential_buckets(1e-4, 2.0, 16)),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CommandLabel {
    pub command: &'static str,
}

impl Metrics {
    /// Counts one refusal.
    pub fn refused(&self, why: Refusal) {
        self.refusals
            .get_or_create(&ReasonLabel { reason: why.name() })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut m = Self {
            registry: Registry::default(),
            spectator_sessions: Family::default(),
            spectator_connections_active: Family::default(),
            spectator_frames_sent: Counter::default(),
            spectator_frames_dropped: Counter::default(),
            spectator_resyncs: Counter::default(),
            spectator_frame_processing_duration_seconds: histogram_seconds(),
            spectator_registry_update_duration_seconds: histogram_seconds(),
            game_sessions_active: Family::default(),
            game_sessions_started: Family::default(),
            game_sessions_ended: Family::default(),
            bytes_sent: Family::default(),
            failed_logins: Counter::default(),
            refusals: Family::default(),
            panics: Counter::default(),
            recording_write_errors: Counter::default(),
            hub_resyncs: Counter::default(),
            screen_model_resets: Counter::default(),
            ssh_connections: Counter::default(),
            ssh_connections_active: Gauge::default(),
            chat_lines: Counter::default(),
            chat_refused: Family::default(),
            chat_commands: Family::default(),
            player_messages: Counter::default(),
            cluster: ClusterMetrics::default(),
        };
        // OpenMetrics adds `_total` to counter names.
        let r = &mut m.registry;
        r.register(
            "spectator_sessions",
            "Spectator streams started, by game",
            m.spectator_sessions.clone(),
        );
        r.register(
            "spectator_connections_active",
            "Spectator streams open now, by transport",
            m.spectator_connections_active.clone(),
        );
        r.register(
            "spectator_frames_sent",
            "Frames sent to spectators",
            m.spectator_frames_sent.clone(),
        );
        r.register(
            "spectator_frames_dropped",
            "Frames spectators skipped because a resync snapshot replaced them",
            m.spectator_frames_dropped.clone(),
        );
        r.register(
            "spectator_resyncs",
            "Resync snapshots sent to spectators",
            m.spectator_resyncs.clone(),
        );
        r.register(
            "spectator_frame_processing_duration_seconds",
            "Time to number, parse and fan out one frame",
            m.spectator_frame_processing_duration_seconds.clone(),
        );
        r.register(
            "spectator_registry_update_duration_seconds",
            "Time to publish a new spectator registry version",
            m.spectator_registry_update_duration_seconds.clone(),
        );
        r.register(
            "refusals",
            "Connections and requests refused to protect the server, by reason",
            m.refusals.clone(),
        );
        r.register(
            "game_sessions_active",
            "Games running now, by game",
            m.game_sessions_active.clone(),
        );
        r.register(
            "game_sessions_started",
            "Games started, by game",
            m.game_sessions_started.clone(),
        );
        r.register(
            "game_sessions_ended",
            "Games ended, by game",
            m.game_sessions_ended.clone(),
        );
        r.register(
            "bytes_sent",
            "Terminal bytes sent, by transport",
            m.bytes_sent.clone(),
        );
        r.register(
            "failed_logins",
            "Failed login attempts",
            m.failed_logins.clone(),
        );
        r.register(
            "panics",
            "Panics caught: each ended one task, connection or thread, never the server (see the log)",
            m.panics.clone(),
        );
        r.register(
            "ssh_connections",
            "SSH connections accepted",
            m.ssh_connections.clone(),
        );
        r.register(
            "ssh_connections_active",
            "SSH connections open now",
            m.ssh_connections_active.clone(),
        );
        r.register(
            "recording_write_errors",
            "Recording writes that failed (the games went on)",
            m.recording_write_errors.clone(),
        );
        r.register(
            "hub_resyncs",
            "Resync snapshots taken for any subscriber (players, spectators, recorders) that fell behind",
            m.hub_resyncs.clone(),
        );
        r.register(
            "chat_lines",
            "Chat lines said, in every game",
            m.chat_lines.clone(),
        );
        r.register(
            "chat_refused",
            "Chat lines that went nowhere, by reason",
            m.chat_refused.clone(),
        );
        r.register(
            "chat_commands",
            "Chat commands of players and admins (mute, kick, block...), by command",
            m.chat_commands.clone(),
        );
        r.register(
            "player_messages",
            "Spectators' messages and announcements delivered to players",
            m.player_messages.clone(),
        );
        let c = &m.cluster;
        r.register(
            "cluster_relay_messages",
            "Messages this node's relays published to NATS",
            c.relay_messages.clone(),
        );
        r.register(
            "cluster_relay_resyncs",
            "Times a relay fell behind its game and published a snapshot instead of frames",
            c.relay_resyncs.clone(),
        );
        r.register(
            "cluster_relays_active",
            "Games of this node relayed to NATS now",
            c.relays_active.clone(),
        );
        r.register(
            "cluster_snapshot_requests_served",
            "Snapshot requests this node answered for its games",
            c.snapshot_requests_served.clone(),
        );
        r.register(
            "cluster_snapshot_requests_sent",
            "Snapshot requests this node's mirrors sent, by cause (join, gap, heartbeat, silence, reconnect, retry)",
            c.snapshot_requests_sent.clone(),
        );
        r.register(
            "cluster_snapshot_request_failures",
            "Snapshot requests that got no usable answer",
            c.snapshot_request_failures.clone(),
        );
        r.register(
            "cluster_mirrors_active",
            "Mirrors of other nodes' games on this node now",
            c.mirrors_active.clone(),
        );
        r.register(
            "cluster_malformed_messages",
            "Messages from NATS that were malformed, dropped",
            c.malformed_messages.clone(),
        );
        r.register(
            "cluster_nats_reconnects",
            "Times the NATS connection came back after it was lost",
            c.nats_reconnects.clone(),
        );
        r.register(
            "cluster_nats_slow_consumers",
            "NATS slow-consumer events on this node's subscriptions",
            c.nats_slow_consumers.clone(),
        );
        r.register(
            "cluster_mirror_lag_seconds",
            "From the game's node reading a frame to a mirror here taking it",
            c.mirror_lag.clone(),
        );
        r.register(
            "screen_model_resets",
            "Times a game's screen model panicked on its output and was started afresh",
            m.screen_model_resets.clone(),
        );
        m
    }

    pub fn game(game: &str) -> GameLabel {
        GameLabel {
            game: game.to_owned(),
        }
    }

    pub fn transport(transport: &str) -> TransportLabel {
        TransportLabel {
            transport: transport.to_owned(),
        }
    }

    pub fn observe(histogram: &Histogram, took: Duration) {
        histogram.observe(took.as_secs_f64());
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let seen = PANICS.load(Ordering::Relaxed);
        if let Some(new) = seen.checked_sub(self.panics.get()).filter(|n| *n > 0) {
            self.panics.inc_by(new);
        }
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Panics in this process, counted by the hook `count_panics` installs.
static PANICS: AtomicU64 = AtomicU64::new(0);

/// Installs (once per process) a panic hook that counts every panic and logs
/// it through `tracing` with the thread it ended, before the default hook
/// prints it. A panic ends only its task (a connection, a stream) or thread;
/// this makes each one visible in the log and in `panics_total`.
pub fn count_panics() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::Relaxed);
            let thread = std::thread::current();
            tracing::error!(
                thread = thread.name().unwrap_or("unnamed"),
                panic = %info,
                "a panic ended one task or thread; the server goes on"
            );
            default(info);
        }));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_thread_is_counted_and_the_process_goes_on() {
        count_panics();
        let metrics = Metrics::new();
        let ended = std::thread::Builder::new()
            .name("doomed".into())
            .spawn(|| panic!("a deliberate panic"))
            .map(|t| t.join());
        assert!(
            matches!(ended, Ok(Err(_))),
            "the thread ended with its panic"
        );
        let text = metrics.render();
        let counted = text
            .lines()
            .find_map(|l| l.strip_prefix("panics_total "))
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        assert!(counted >= 1, "{text}");
    }
}
