//! The server under load: one started here on free loopback ports with a
//! config of our own (the firehose as its game, limits opened up), or one
//! already running that the operator names. Either way only 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::json;

use crate::firehose::FirehoseArgs;

/// Where the server listens, and its process when we can watch it.
#[derive(Debug)]
pub struct Target {
    pub grpc: SocketAddr,
    pub http: SocketAddr,
    pub ssh: SocketAddr,
    pub pid: Option<u32>,
    /// The game to start: the firehose.
    pub game_id: String,
    own: Option<OwnServer>,
}

impl Target {
    /// Warnings and errors the server we started has logged, and the first
    /// few of them.
    pub fn warnings(&self) -> (u64, Vec<String>) {
        self.own.as_ref().map_or((0, Vec::new()), |own| {
            let first = own
                .first_warnings
                .lock()
                .map(|w| w.clone())
                .unwrap_or_default();
            (own.warnings.load(Ordering::Relaxed), first)
        })
    }

    pub fn log_path(&self) -> Option<PathBuf> {
        self.own
            .as_ref()
            .map(|own| own.dir.path().join("server.log"))
    }

    /// Stops the server we started (SIGTERM, as an operator would) and says
    /// whether it exited cleanly. A server we did not start is left alone.
    pub fn stop(mut self) -> anyhow::Result<()> {
        match self.own.take() {
            Some(mut own) => own.stop(),
            None => Ok(()),
        }
    }
}

/// Refuses anything but a loopback address.
pub fn loopback(addr: SocketAddr, what: &str) -> anyhow::Result<SocketAddr> {
    if !addr.ip().is_loopback() {
        bail!("{what} {addr} is not a loopback address: dgate-bench talks only to 127.0.0.1");
    }
    Ok(addr)
}

/// A running server's addresses, given by the operator.
pub fn external(
    grpc: SocketAddr,
    http: SocketAddr,
    ssh: SocketAddr,
    pid: Option<u32>,
    game_id: String,
) -> anyhow::Result<Target> {
    Ok(Target {
        grpc: loopback(grpc, "--grpc")?,
        http: loopback(http, "--http")?,
        ssh: loopback(ssh, "--ssh")?,
        pid,
        game_id,
        own: None,
    })
}

#[derive(Debug)]
struct OwnServer {
    child: Child,
    dir: tempfile::TempDir,
    warnings: Arc<AtomicU64>,
    first_warnings: Arc<std::sync::Mutex<Vec<String>>>,
}

impl OwnServer {
    fn stop(&mut self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id())?);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("dgate-server exited with {status} after SIGTERM");
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        bail!("dgate-server did not stop within 15 s of SIGTERM; killed")
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `dgate-server` beside this binary (both are built into the same target
/// directory), or `--server-binary`.
pub fn server_binary(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path.to_owned());
    }
    let me = std::env::current_exe().context("where is dgate-bench?")?;
    let beside = me.with_file_name("dgate-server");
    if beside.is_file() {
        return Ok(beside);
    }
    // `cargo test` runs from target/<profile>/deps.
    if let Some(up) = me.parent().and_then(Path::parent) {
        let above = up.join("dgate-server");
        if above.is_file() {
            return Ok(above);
        }
    }
    bail!(
        "no dgate-server beside {}: build it (cargo build --release -p dgate-server) or pass --server-binary",
        me.display()
    )
}

/// Settings of the server we start.
#[derive(Debug, Clone)]
pub struct OwnSettings {
    pub binary: PathBuf,
    pub firehose: FirehoseArgs,
    pub record: bool,
    pub queue_frames: Option<usize>,
    /// `spectating.chat.lines_per_10s`, when the run chats faster than the
    /// default lets one user.
    pub chat_lines_per_10s: Option<usize>,
    /// The server is a node of a cluster (`--nodes`).
    pub cluster: Option<ClusterNode>,
}

/// A node's `cluster` section.
#[derive(Debug, Clone)]
pub struct ClusterNode {
    pub node_id: String,
    pub nats_url: String,
}

/// Starts `dgate-server` on free loopback ports with the firehose as its only
/// game, and waits until it listens.
pub fn start(settings: &OwnSettings) -> anyhow::Result<Target> {
    let dir = tempfile::Builder::new().prefix("dgate-bench-").tempdir()?;
    let me = std::env::current_exe()?;
    let f = &settings.firehose;
    let mut session_management = json!({
        "terminal": { "default_size": format!("{}x{}", f.cols, f.rows) },
        "spectating": { "max_spectators_per_session": 1_000_000 },
        "ttyrec": { "enabled": settings.record, "directory": dir.path().join("ttyrec") },
        "max_sessions": 100_000,
        "max_sessions_per_user": 100,
        "stop_grace": "2s",
        "shutdown_grace": "5s",
    });
    if let Some(queue) = settings.queue_frames {
        session_management["queue_frames"] = json!(queue);
    }
    if let Some(lines) = settings.chat_lines_per_10s {
        session_management["spectating"]["chat"] = json!({ "lines_per_10s": lines });
    }
    let mut args: Vec<String> = [
        "firehose",
        "--rate",
        &f.rate.to_string(),
        "--bytes",
        &f.bytes.to_string(),
        "--cols",
        &f.cols.to_string(),
        "--rows",
        &f.rows.to_string(),
        "--max-seconds",
        &f.max_seconds.to_string(),
    ]
    .iter()
    .map(|a| (*a).to_owned())
    .collect();
    if f.scroll {
        args.push("--scroll".into());
    }
    // JSON is YAML.
    let mut config = json!({
        "server": { "max_connections_per_address": 1_000_000 },
        "ssh": { "max_sessions": 1_000_000 },
        "accounts": {
            "failed_logins_per_minute": 1000,
            "registrations_per_address_per_hour": 1_000_000,
        },
        "games": [{
            "id": "firehose",
            "name": "Firehose",
            "short_name": "FIRE",
            "binary": {
                "path": me,
                "args": args,
            },
        }],
        "session_management": session_management,
    });
    if let Some(node) = &settings.cluster {
        // One NATS server keeps the shared accounts: one replica.
        config["cluster"] = json!({
            "node_id": node.node_id,
            "nats_urls": [node.nats_url],
            "account_replicas": 1,
        });
    }
    let config_path = dir.path().join("dgate.yaml");
    std::fs::write(&config_path, serde_json::to_string_pretty(&config)?)?;

    let mut child = Command::new(&settings.binary)
        .arg("--config")
        .arg(&config_path)
        .args(["--grpc-listen", "127.0.0.1:0"])
        .args(["--http-listen", "127.0.0.1:0"])
        .args(["--ssh-listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {}", settings.binary.display()))?;
    let stderr = child.stderr.take().context("server stderr")?;
    let warnings = Arc::new(AtomicU64::new(0));
    let (listening_tx, listening) = std::sync::mpsc::channel();
    let mut log = std::fs::File::create(dir.path().join("server.log"))?;
    let counted = Arc::clone(&warnings);
    let first_warnings = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = Arc::clone(&first_warnings);
    std::thread::spawn(move || {
        let mut listening_tx = Some(listening_tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if matches!(entry["level"].as_str(), Some("WARN" | "ERROR"))
                && counted.fetch_add(1, Ordering::Relaxed) < 3
                && let Ok(mut kept) = kept.lock()
            {
                kept.push(entry["fields"].to_string());
            }
            let fields = &entry["fields"];
            if fields["message"].as_str() == Some("dgate-server listening")
                && let Some(tx) = listening_tx.take()
            {
                let addr = |key: &str| fields[key].as_str().and_then(|a| a.parse().ok());
                let _ = tx.send((addr("grpc"), addr("http"), addr("ssh")));
            }
        }
    });
    let addrs = listening.recv_timeout(Duration::from_secs(30));
    let Ok((Some(grpc), Some(http), Some(ssh))) = addrs else {
        let _ = child.kill();
        let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
        bail!("dgate-server did not start listening within 30 s:\n{log}");
    };
    let pid = child.id();
    Ok(Target {
        grpc,
        http,
        ssh,
        pid: Some(pid),
        game_id: "firehose".into(),
        own: Some(OwnServer {
            child,
            dir,
            warnings,
            first_warnings,
        }),
    })
}
