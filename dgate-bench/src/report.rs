//! The figures of a run: a table for people, `--json` for machines.

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::run::Transport;
use crate::tracker::{ChatCounts, Counts};

/// Latency in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            samples: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct JoinFigures {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn join_figures(joins: &[Duration]) -> JoinFigures {
    let mut ms: Vec<f64> = joins.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| -> f64 {
        if ms.is_empty() {
            return 0.0;
        }
        let index = ((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1;
        ms[index]
    };
    JoinFigures {
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: ms.last().copied().unwrap_or(0.0),
    }
}

/// A run's chat (`--chat`).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ChatFigures {
    /// Lines each game's player says per second.
    pub rate: f64,
    /// Lines the players sent...
    pub sent: u64,
    /// ...the games' chats carried...
    pub said: u64,
    /// ...and the server refused (answered instead).
    pub refused: u64,
    /// `sent_at` to receipt, per line and reading viewer.
    pub latency: Latency,
    /// Summed over the reading viewers.
    pub viewers: ChatCounts,
    /// Reading viewers that received every line once, in order...
    pub viewers_complete: usize,
    /// ...of these.
    pub viewers_reading: usize,
}

impl ChatFigures {
    fn is_sound(&self) -> bool {
        self.said == self.sent
            && self.refused == 0
            && self.viewers.lost == 0
            && self.viewers.disorder == 0
            && self.viewers_complete == self.viewers_reading
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerFigures {
    /// CPU seconds per second while measuring (1.0 is one whole core).
    pub cpu_per_second: f64,
    pub rss_mib_baseline: f64,
    pub rss_mib_peak: f64,
    pub rss_kib_per_viewer: f64,
    /// When the paused viewers stopped reading, and when the run ended: with
    /// viewers that never read again, memory must not grow between them.
    pub rss_mib_at_pause: Option<f64>,
    pub rss_mib_at_end: f64,
    pub fds: u64,
    pub threads: u64,
    pub warnings: u64,
    /// The first few warnings the server logged.
    pub first_warnings: Vec<String>,
}

/// One node of a cluster run (`--nodes`), while measuring.
#[derive(Debug, Clone, Serialize)]
pub struct NodeFigures {
    /// 1 is the games' node.
    pub node: usize,
    pub viewers: usize,
    /// Its reading viewers' latency (stamp in the frame to receipt).
    pub latency: Latency,
    /// Summed over its viewers.
    pub viewers_total: Counts,
    /// Its viewers that never saw the last frame.
    pub unfinished: usize,
    /// User + system CPU seconds of its process.
    pub cpu_seconds: f64,
    /// CPU seconds per second (1.0 is one whole core).
    pub cpu_per_second: f64,
    pub rss_mib_peak: f64,
    /// `cluster_relay_messages_total` grew by this much: messages it
    /// published on NATS for its games (frames, resizes, heartbeats, ends,
    /// resync snapshots).
    pub relay_messages: u64,
    /// `cluster_relay_resyncs_total`: its relays fell behind.
    pub relay_resyncs: u64,
    /// `cluster_snapshot_requests_served_total` since the node started
    /// (the joins asked before measuring), not only while measuring.
    pub snapshot_requests_served: u64,
    /// `cluster_snapshot_requests_sent_total`, every cause, since the node
    /// started.
    pub snapshot_requests_sent: u64,
    /// `cluster_nats_slow_consumers_total`.
    pub slow_consumers: u64,
    /// Messages the NATS server received from this node (its `/connz`):
    /// relay messages, directory beats, snapshot requests and answers.
    pub nats_in_msgs: u64,
    /// Messages the NATS server sent this node.
    pub nats_out_msgs: u64,
    /// Warnings and errors it logged during the whole run.
    pub warnings: u64,
}

/// A cluster run (`--nodes`): one NATS server, the games on node 1.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterFigures {
    pub nodes: Vec<NodeFigures>,
    /// Frames the games drew while measuring (as their players received
    /// them).
    pub frames_in_window: u64,
    /// Node 1's relay messages per frame drawn while measuring: 1.0 when it
    /// publishes each frame once, whoever watches where.
    pub relay_messages_per_frame: f64,
    /// The NATS server's CPU seconds per second while measuring.
    pub nats_cpu_per_second: Option<f64>,
}

impl ClusterFigures {
    fn table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "cluster: node 1 published {} relay messages for {} frames drawn ({:.3} a frame); NATS {}",
            self.nodes.first().map_or(0, |n| n.relay_messages),
            self.frames_in_window,
            self.relay_messages_per_frame,
            self.nats_cpu_per_second
                .map_or("-".into(), |c| format!("{:.1}% of one core", c * 100.0)),
        );
        let _ = writeln!(
            out,
            "{:<5} {:>7} {:>8} {:>8} {:>7} {:>6} {:>7} {:>7} {:>8} {:>8} {:>8} {:>9} {:>5}",
            "node",
            "viewers",
            "p50 ms",
            "p99 ms",
            "CPU s",
            "CPU %",
            "RSS MiB",
            "resyncs",
            "relayed",
            "to NATS",
            "from it",
            "snap s/r",
            "warn"
        );
        for n in &self.nodes {
            let _ = writeln!(
                out,
                "{:<5} {:>7} {:>8.3} {:>8.3} {:>7.3} {:>6.1} {:>7.1} {:>7} {:>8} {:>8} {:>8} {:>9} {:>5}",
                n.node,
                n.viewers,
                n.latency.p50_ms,
                n.latency.p99_ms,
                n.cpu_seconds,
                n.cpu_per_second * 100.0,
                n.rss_mib_peak,
                n.viewers_total.resyncs,
                n.relay_messages,
                n.nats_in_msgs,
                n.nats_out_msgs,
                format!(
                    "{}/{}",
                    n.snapshot_requests_served, n.snapshot_requests_sent
                ),
                n.warnings
            );
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub transport: Transport,
    pub sessions: usize,
    pub viewers: usize,
    pub paused_viewers: usize,
    pub duration_s: f64,
    /// Frames the games drew (the players' newest stamps, summed).
    pub frames_published: u64,
    /// Viewers that kept reading; with paused viewers, the first half only.
    pub latency: Latency,
    /// The same viewers while the others were paused.
    pub latency_while_paused: Option<Latency>,
    pub player_latency: Latency,
    pub player: Counts,
    pub viewers_total: Counts,
    pub join_ms: JoinFigures,
    /// From the first connect to the last first screen.
    pub joined_within_s: f64,
    pub joined: usize,
    /// Viewers that never saw the last frame.
    pub unfinished: usize,
    pub failures: Vec<String>,
    pub screens_checked: usize,
    pub screens_differing: usize,
    pub server: Option<ServerFigures>,
    pub server_cpu_us_per_viewer_frame: Option<f64>,
    pub bench_cpu_per_second: Option<f64>,
    /// Frames all viewers received per second while measuring.
    pub viewer_frames_per_second: f64,
    /// Bytes (messages' payloads) each reading viewer received per second
    /// while measuring.
    pub bytes_per_viewer_per_second: f64,
    /// With `--chat`.
    pub chat: Option<ChatFigures>,
    /// With `--nodes` above 1.
    pub cluster: Option<ClusterFigures>,
}

impl Report {
    pub fn with_per_frame_cost(mut self) -> Self {
        if let Some(server) = &self.server
            && self.viewer_frames_per_second > 0.0
        {
            self.server_cpu_us_per_viewer_frame =
                Some(server.cpu_per_second * 1e6 / self.viewer_frames_per_second);
        }
        self
    }

    /// Whether the run kept the hub's promises: nothing lost, nothing out of
    /// order, every viewer at the end showing its player's screen.
    pub fn is_sound(&self) -> bool {
        self.viewers_total.lost == 0
            && self.viewers_total.disorder == 0
            && self.player.lost == 0
            && self.screens_differing == 0
            && self.unfinished == 0
            && self.joined == self.viewers
            && self.chat.as_ref().is_none_or(ChatFigures::is_sound)
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} session(s), {} {} viewers{}, {:.0} s",
            self.sessions,
            self.viewers,
            self.transport,
            if self.paused_viewers > 0 {
                format!(" ({} paused for the second half)", self.paused_viewers)
            } else {
                String::new()
            },
            self.duration_s
        );
        let _ = writeln!(
            out,
            "{:<28} {:>9} {:>9} {:>9} {:>9} {:>10}",
            "latency (ms)", "p50", "p99", "p99.9", "max", "samples"
        );
        let mut line = |name: &str, l: &Latency| {
            let _ = writeln!(
                out,
                "{name:<28} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>10}",
                l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.samples
            );
        };
        if let Some(paused) = &self.latency_while_paused {
            line("viewers reading, 1st half", &self.latency);
            line("viewers reading, 2nd half", paused);
        } else {
            line("viewers", &self.latency);
        }
        line("players", &self.player_latency);
        if let Some(chat) = &self.chat {
            line("chat lines at viewers", &chat.latency);
        }
        let j = &self.join_ms;
        let _ = writeln!(
            out,
            "{:<28} {:>9.3} {:>9.3} {:>9} {:>9.3} {:>10}",
            "join: connect to screen", j.p50_ms, j.p99_ms, "", j.max_ms, self.joined
        );
        let v = &self.viewers_total;
        let _ = writeln!(
            out,
            "frames: {} drawn; viewers received {} ({:.0}/s), lost {}, out of order {}, \
             resyncs {} ({} frames skipped), {:.1} MiB ({:.0} B/s per reading viewer)",
            self.frames_published,
            v.frames,
            self.viewer_frames_per_second,
            v.lost,
            v.disorder,
            v.resyncs,
            v.skipped,
            v.bytes as f64 / 1048576.0,
            self.bytes_per_viewer_per_second
        );
        let _ = writeln!(
            out,
            "players: lost {}, resyncs {}",
            self.player.lost, self.player.resyncs
        );
        if let Some(c) = &self.chat {
            let _ = writeln!(
                out,
                "chat: {} lines/s a game; {} sent, {} said, {} refused; viewers received {}, \
                 lost {}, out of order {}; {} of {} reading viewers got every line in order",
                c.rate,
                c.sent,
                c.said,
                c.refused,
                c.viewers.lines,
                c.viewers.lost,
                c.viewers.disorder,
                c.viewers_complete,
                c.viewers_reading
            );
        }
        let _ = writeln!(
            out,
            "screens: {} checked at the end, {} differ from the player's; {} viewers did not reach the last frame",
            self.screens_checked, self.screens_differing, self.unfinished
        );
        for failure in self.failures.iter().take(5) {
            let _ = writeln!(out, "  failure: {failure}");
        }
        if let Some(s) = &self.server {
            let _ = writeln!(
                out,
                "server: {:.1}% of one core, {} µs per viewer-frame; RSS {:.1} MiB (idle {:.1} MiB, {:.1} KiB per viewer); {} fds, {} threads, {} warnings",
                s.cpu_per_second * 100.0,
                self.server_cpu_us_per_viewer_frame
                    .map_or("-".into(), |us| format!("{us:.2}")),
                s.rss_mib_peak,
                s.rss_mib_baseline,
                s.rss_kib_per_viewer,
                s.fds,
                s.threads,
                s.warnings
            );
            if let Some(at_pause) = s.rss_mib_at_pause {
                let _ = writeln!(
                    out,
                    "  RSS when the paused viewers stopped reading {:.1} MiB, at the end {:.1} MiB",
                    at_pause, s.rss_mib_at_end
                );
            }
            for warning in &s.first_warnings {
                let _ = writeln!(out, "  server warning: {warning}");
            }
        }
        if let Some(cluster) = &self.cluster {
            cluster.table(&mut out);
        }
        if let Some(cpu) = self.bench_cpu_per_second {
            let _ = writeln!(out, "dgate-bench itself: {:.1}% of one core", cpu * 100.0);
        }
        let _ = writeln!(
            out,
            "{}",
            if self.is_sound() {
                "sound: nothing lost or out of order, every screen equal"
            } else {
                "NOT SOUND: see above"
            }
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_percentiles_are_taken_from_the_sorted_times() {
        let joins: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let j = join_figures(&joins);
        assert_eq!((j.p50_ms, j.p99_ms, j.max_ms), (50.0, 99.0, 100.0));
        let none = join_figures(&[]);
        assert_eq!(none.max_ms, 0.0);
    }

    #[test]
    fn latency_percentiles_come_from_the_histogram() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("histogram");
        for micros in 1..=1000 {
            h.record(micros).expect("record");
        }
        let l = Latency::of(&h);
        assert_eq!(l.samples, 1000);
        assert!((l.p50_ms - 0.5).abs() < 0.01, "{l:?}");
        assert!((l.p99_ms - 0.99).abs() < 0.01, "{l:?}");
        assert!((l.max_ms - 1.0).abs() < 0.01, "{l:?}");
    }
}
