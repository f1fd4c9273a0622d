//! The servers of a run: one dgate server, or a cluster (`run --nodes N`):
//! one `nats-server` on a free loopback port and N `dgate-server` nodes on
//! it, each started as a single server is (`server::start`) with a
//! `cluster` section of its own. The games run on node 1; viewers watch on
//! the nodes `--viewers-on` names, through each node's own gRPC, HTTP or SSH
//! (a remote game's mirror is transparent to them).
//!
//! Everything started here is stopped by [`Servers::stop`] (SIGTERM to the
//! nodes, the viewers' first, then the NATS server killed), and killed when
//! dropped on an error.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::proc_stats::{self, Sample};
use crate::report::{ClusterFigures, Latency, NodeFigures};
use crate::server::{self, ClusterNode, OwnSettings, Target};
use crate::tracker::Counts;

/// The nodes of a run (node 1 first: the games' node) and the NATS server
/// between them when there are several.
#[derive(Debug)]
pub struct Servers {
    pub nodes: Vec<Target>,
    nats: Option<Nats>,
}

impl Servers {
    /// One server, as before clusters: ours or a running one.
    pub fn single(target: Target) -> Self {
        Self {
            nodes: vec![target],
            nats: None,
        }
    }

    /// A NATS server and `nodes` dgate nodes on it, each with `settings`.
    pub fn cluster(
        nodes: usize,
        settings: &OwnSettings,
        nats_binary: &Path,
    ) -> anyhow::Result<Self> {
        let nats = Nats::start(nats_binary)?;
        let mut servers = Self {
            nodes: Vec::with_capacity(nodes),
            nats: Some(nats),
        };
        let url = servers
            .nats
            .as_ref()
            .map(|n| n.url.clone())
            .unwrap_or_default();
        for n in 1..=nodes {
            let settings = OwnSettings {
                cluster: Some(ClusterNode {
                    node_id: format!("node-{n}"),
                    nats_url: url.clone(),
                }),
                ..settings.clone()
            };
            // On an error, the nodes started so far and NATS are killed
            // when `servers` drops.
            let node = server::start(&settings).with_context(|| format!("start node {n}"))?;
            servers.nodes.push(node);
        }
        Ok(servers)
    }

    /// Node 1: the one the games run on.
    pub fn first(&self) -> &Target {
        &self.nodes[0]
    }

    pub fn nats_pid(&self) -> Option<u32> {
        self.nats.as_ref().map(|n| n.child.id())
    }

    fn nats_monitor(&self) -> Option<SocketAddr> {
        self.nats.as_ref().map(|n| n.monitor)
    }

    /// Node 1's log, where a failure is most likely explained.
    pub fn log_path(&self) -> Option<PathBuf> {
        self.first().log_path()
    }

    /// Stops every node we started (the viewers' nodes first, SIGTERM) and
    /// then the NATS server; the first node that did not stop cleanly is
    /// the error, after all were stopped.
    pub fn stop(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(node) = self.nodes.pop() {
            let n = self.nodes.len() + 1;
            if let Err(e) = node.stop() {
                first_error.get_or_insert(e.context(format!("node {n}")));
            }
        }
        if let Some(mut nats) = self.nats.take() {
            nats.stop();
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// `nats-server` on a free loopback port, with JetStream in a directory of
/// its own (nodes that share accounts keep them there); killed when
/// dropped.
#[derive(Debug)]
struct Nats {
    child: Child,
    _store: tempfile::TempDir,
    url: String,
    /// Its monitoring port (`/connz`).
    monitor: SocketAddr,
}

impl Nats {
    fn start(binary: &Path) -> anyhow::Result<Self> {
        let free_port = || {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .context("a free loopback port for nats-server")
        };
        let (port, monitor) = (free_port()?, free_port()?);
        let store = tempfile::Builder::new()
            .prefix("dgate-bench-nats-")
            .tempdir()?;
        let child = Command::new(binary)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &monitor.to_string()])
            .arg("-js")
            .arg("-sd")
            .arg(store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| {
                format!(
                    "run {} (apt-get install nats-server, or pass --nats-binary)",
                    binary.display()
                )
            })?;
        let mut nats = Self {
            child,
            _store: store,
            url: format!("nats://127.0.0.1:{port}"),
            monitor: SocketAddr::from(([127, 0, 0, 1], monitor)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err()
            || TcpStream::connect_timeout(&nats.monitor, Duration::from_millis(200)).is_err()
        {
            if let Some(status) = nats.child.try_wait()? {
                bail!("nats-server exited with {status} before it listened on {port}");
            }
            if Instant::now() > deadline {
                nats.stop();
                bail!("nats-server did not listen on {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nats)
    }

    fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Debian's `nats-server`, or one on the PATH, or `--nats-binary`.
pub fn nats_binary(given: Option<&Path>) -> PathBuf {
    match given {
        Some(path) => path.to_owned(),
        None if Path::new("/usr/sbin/nats-server").is_file() => "/usr/sbin/nats-server".into(),
        None => "nats-server".into(),
    }
}

/// A node's `/metrics`: each metric's value, summed over its labels.
#[derive(Debug, Clone, Default)]
pub struct Metrics(HashMap<String, f64>);

impl Metrics {
    pub fn parse(text: &str) -> Self {
        let mut values = HashMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((name, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let Ok(value) = value.trim().parse::<f64>() else {
                continue;
            };
            let name = name.split('{').next().unwrap_or(name).trim();
            *values.entry(name.to_owned()).or_insert(0.0) += value;
        }
        Self(values)
    }

    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }

    /// How much `name` grew since `before`.
    pub fn since(&self, before: &Self, name: &str) -> u64 {
        (self.get(name) - before.get(name)).max(0.0).round() as u64
    }
}

/// The body of `GET path` at `addr` (HTTP/1.0), when it answers 200.
async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("connect to {addr} for {path}"))?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let Some((head, body)) = response.split_once("\r\n\r\n") else {
        bail!("{addr} answered {path} with no body");
    };
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        bail!(
            "{addr} answered {path} with {}",
            head.lines().next().unwrap_or("")
        );
    }
    Ok(body.to_owned())
}

/// `GET /metrics` of the server at `http`.
pub async fn scrape(http: SocketAddr) -> anyhow::Result<Metrics> {
    Ok(Metrics::parse(&http_get(http, "/metrics").await?))
}

/// Messages NATS received from and sent to each client connection, by the
/// connection's name (a dgate node's is `dgate NODE_ID`).
#[derive(Debug, Clone, Default)]
pub struct Connections(HashMap<String, (u64, u64)>);

impl Connections {
    pub fn parse(connz: &str) -> anyhow::Result<Self> {
        let connz: serde_json::Value = serde_json::from_str(connz).context("/connz is not JSON")?;
        let mut by_name = HashMap::new();
        for c in connz["connections"].as_array().into_iter().flatten() {
            let count = |key: &str| c[key].as_u64().unwrap_or(0);
            let entry = by_name
                .entry(c["name"].as_str().unwrap_or("").to_owned())
                .or_insert((0, 0));
            entry.0 += count("in_msgs");
            entry.1 += count("out_msgs");
        }
        Ok(Self(by_name))
    }

    /// What node `node_id`'s connection sent NATS and NATS sent it since
    /// `before`.
    fn since(&self, before: &Self, node_id: &str) -> (u64, u64) {
        let name = format!("dgate {node_id}");
        let at = |c: &Self| c.0.get(&name).copied().unwrap_or((0, 0));
        let (now, then) = (at(self), at(before));
        (now.0.saturating_sub(then.0), now.1.saturating_sub(then.1))
    }
}

/// The NATS server's `/connz`.
async fn connections(monitor: Option<SocketAddr>) -> Option<Connections> {
    let body = http_get(monitor?, "/connz").await.ok()?;
    Connections::parse(&body).ok()
}

/// Every node's metrics now (`None` for one that did not answer).
pub async fn scrape_all(nodes: &[Target]) -> Vec<Option<Metrics>> {
    let mut all = Vec::with_capacity(nodes.len());
    for node in nodes {
        all.push(scrape(node.http).await.ok());
    }
    all
}

/// Which node each of `viewers` viewers watches on: `on` (1-based node
/// numbers) in equal blocks, in order, so `2` puts all on node 2, `2,3`
/// the first half on node 2 and the rest on node 3, and `1,2,2` a third on
/// node 1. Returned as 0-based indices.
pub fn placement(viewers: usize, on: &[usize], nodes: usize) -> anyhow::Result<Vec<usize>> {
    if on.is_empty() {
        bail!("--viewers-on names at least one node");
    }
    if let Some(bad) = on.iter().find(|&&n| n == 0 || n > nodes) {
        bail!("--viewers-on {bad}: the nodes are numbered 1 to {nodes}");
    }
    Ok((0..viewers)
        .map(|v| on[v * on.len() / viewers] - 1)
        .collect())
}

/// Waits until every node in `nodes` lists every game in `ids` (another
/// node's games appear with its next directory beat, within a second or
/// two): a viewer's `AddSpectator` there finds them.
pub async fn wait_listed(nodes: &[&Target], ids: &[String]) -> anyhow::Result<()> {
    use dgate_proto::pb;
    use dgate_proto::pb::game_service_client::GameServiceClient;
    let deadline = Instant::now() + Duration::from_secs(30);
    for node in nodes {
        let mut games = GameServiceClient::new(crate::viewer::channel(node.grpc).await?);
        loop {
            let listed = games
                .list_game_sessions(pb::ListGameSessionsRequest::default())
                .await
                .map_err(|s| anyhow::anyhow!("ListGameSessions on {}: {}", node.grpc, s.message()))?
                .into_inner()
                .sessions;
            if ids.iter().all(|id| listed.iter().any(|s| &s.id == id)) {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "the node at {} did not list the games of node 1 within 30 s",
                    node.grpc
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(())
}

/// Every node's CPU, memory and metrics (and the NATS server's CPU) over
/// the measured window of a cluster run.
#[derive(Debug)]
pub struct Window {
    loaded: Vec<Option<Sample>>,
    metrics: Vec<Option<Metrics>>,
    nats: Option<Sample>,
    connections: Option<Connections>,
    peak_rss_kib: Vec<u64>,
}

/// What a node's viewers saw while measuring.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeViewers {
    pub viewers: usize,
    pub latency: Latency,
    pub counts: Counts,
    pub unfinished: usize,
}

fn sample_of(target: &Target) -> Option<Sample> {
    target.pid.and_then(|pid| proc_stats::sample(pid).ok())
}

impl Window {
    /// Opens the window: the metrics first, then CPU, just before measuring.
    pub async fn open(servers: &Servers) -> Self {
        let metrics = scrape_all(&servers.nodes).await;
        let connections = connections(servers.nats_monitor()).await;
        let loaded: Vec<_> = servers.nodes.iter().map(sample_of).collect();
        Self {
            connections,
            peak_rss_kib: loaded.iter().map(|s| s.map_or(0, |s| s.rss_kib)).collect(),
            loaded,
            metrics,
            nats: servers
                .nats_pid()
                .and_then(|pid| proc_stats::sample(pid).ok()),
        }
    }

    /// Keeps each node's peak memory; called while measuring.
    pub fn watch(&mut self, servers: &Servers) {
        for (peak, node) in self.peak_rss_kib.iter_mut().zip(&servers.nodes) {
            if let Some(s) = sample_of(node) {
                *peak = (*peak).max(s.rss_kib);
            }
        }
    }

    /// Closes the window: CPU first, then the metrics.
    pub async fn close(self, servers: &Servers) -> ClosedWindow {
        let finished = servers.nodes.iter().map(sample_of).collect();
        let nats = servers
            .nats_pid()
            .and_then(|pid| proc_stats::sample(pid).ok());
        let metrics = scrape_all(&servers.nodes).await;
        let connections = connections(servers.nats_monitor()).await;
        ClosedWindow {
            opened: self,
            finished,
            nats,
            metrics,
            connections,
        }
    }
}

/// A [`Window`] and what it ended with.
#[derive(Debug)]
pub struct ClosedWindow {
    opened: Window,
    finished: Vec<Option<Sample>>,
    nats: Option<Sample>,
    metrics: Vec<Option<Metrics>>,
    connections: Option<Connections>,
}

impl ClosedWindow {
    /// The figures, with what each node's viewers saw (`viewers[n]` is node
    /// n + 1's) and the frames the games drew in the window.
    pub fn figures(
        &self,
        servers: &Servers,
        viewers: &[NodeViewers],
        frames_in_window: u64,
    ) -> ClusterFigures {
        let Self {
            opened,
            finished,
            nats,
            metrics,
            connections,
        } = self;
        let mut nodes = Vec::with_capacity(servers.nodes.len());
        for (i, node) in servers.nodes.iter().enumerate() {
            let seen = viewers.get(i).copied().unwrap_or_default();
            let (cpu_seconds, cpu_per_second) = match (opened.loaded[i], finished[i]) {
                (Some(a), Some(b)) => (b.cpu_seconds - a.cpu_seconds, proc_stats::cpu_rate(&a, &b)),
                _ => (0.0, 0.0),
            };
            let empty = Metrics::default();
            let (before, after) = match (&opened.metrics[i], &metrics[i]) {
                (Some(a), Some(b)) => (a, b),
                _ => (&empty, &empty),
            };
            let (nats_in, nats_out) = match (&opened.connections, connections) {
                (Some(a), Some(b)) => b.since(a, &format!("node-{}", i + 1)),
                _ => (0, 0),
            };
            nodes.push(NodeFigures {
                nats_in_msgs: nats_in,
                nats_out_msgs: nats_out,
                node: i + 1,
                viewers: seen.viewers,
                latency: seen.latency,
                viewers_total: seen.counts,
                unfinished: seen.unfinished,
                cpu_seconds,
                cpu_per_second,
                rss_mib_peak: opened.peak_rss_kib[i] as f64 / 1024.0,
                relay_messages: after.since(before, "cluster_relay_messages_total"),
                relay_resyncs: after.since(before, "cluster_relay_resyncs_total"),
                // Since the start: the viewers' joins asked before measuring.
                snapshot_requests_served: after
                    .since(&empty, "cluster_snapshot_requests_served_total"),
                snapshot_requests_sent: after.since(&empty, "cluster_snapshot_requests_sent_total"),
                slow_consumers: after.since(before, "cluster_nats_slow_consumers_total"),
                warnings: node.warnings().0,
            });
        }
        let published = nodes.first().map_or(0, |n| n.relay_messages);
        ClusterFigures {
            nodes,
            frames_in_window,
            relay_messages_per_frame: published as f64 / frames_in_window.max(1) as f64,
            nats_cpu_per_second: match (opened.nats, nats) {
                (Some(a), Some(b)) => Some(proc_stats::cpu_rate(&a, b)),
                _ => None,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn viewers_are_placed_in_equal_blocks_over_the_named_nodes() {
        assert_eq!(placement(4, &[2], 2).ok(), Some(vec![1, 1, 1, 1]));
        assert_eq!(placement(4, &[2, 3], 3).ok(), Some(vec![1, 1, 2, 2]));
        assert_eq!(
            placement(6, &[1, 2, 2], 2).ok(),
            Some(vec![0, 0, 1, 1, 1, 1])
        );
        assert_eq!(placement(3, &[1, 2], 2).ok(), Some(vec![0, 0, 1]));
        assert!(placement(4, &[3], 2).is_err());
        assert!(placement(4, &[0], 2).is_err());
        assert!(placement(4, &[], 2).is_err());
    }

    #[test]
    fn metrics_are_summed_over_their_labels() {
        let m = Metrics::parse(
            "# HELP x\n# TYPE x counter\ncluster_relay_messages_total 42\n\
             cluster_snapshot_requests_sent_total{cause=\"join\"} 1\n\
             cluster_snapshot_requests_sent_total{cause=\"gap\"} 2\n",
        );
        assert_eq!(m.get("cluster_relay_messages_total"), 42.0);
        assert_eq!(m.get("cluster_snapshot_requests_sent_total"), 3.0);
        let before = Metrics::parse("cluster_relay_messages_total 40\n");
        assert_eq!(m.since(&before, "cluster_relay_messages_total"), 2);
        assert_eq!(m.get("nothing"), 0.0);
    }

    #[test]
    fn nats_connections_are_counted_by_node() {
        let before = Connections::parse(
            r#"{"connections":[{"name":"dgate node-1","in_msgs":10,"out_msgs":3}]}"#,
        )
        .expect("JSON");
        let after = Connections::parse(
            r#"{"connections":[{"name":"dgate node-1","in_msgs":110,"out_msgs":4},
                {"name":"dgate node-2","in_msgs":5,"out_msgs":100}]}"#,
        )
        .expect("JSON");
        assert_eq!(after.since(&before, "node-1"), (100, 1));
        assert_eq!(after.since(&before, "node-2"), (5, 100));
        assert_eq!(after.since(&before, "node-3"), (0, 0));
        assert!(Connections::parse("not JSON").is_err());
    }
}
