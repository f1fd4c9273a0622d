//! dgate-bench: load for a dgate server, and the figures it holds up under.
//!
//! `dgate-bench run` starts a server of its own on free loopback ports (or
//! uses one you name), starts firehose games as their players, joins N
//! viewers at once over gRPC or WebSocket, measures for a fixed time, and
//! prints latency (stamp in the frame to receipt), loss, resyncs, join time,
//! the server's CPU and memory, and whether every checked viewer ended on its
//! player's screen. `dgate-bench firehose` is the game itself.
//!
//! `dgate-bench run --nodes N` starts a cluster instead (`cluster`): one
//! `nats-server` and N nodes, the games on node 1 and the viewers on the
//! nodes `--viewers-on` names, and adds each node's CPU, its viewers'
//! latency and node 1's NATS messages per frame to the figures.

mod alis;
mod cluster;
mod firehose;
mod player;
mod proc_stats;
mod report;
mod run;
mod server;
mod soak;
mod stamp;
mod tracker;
mod viewer;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};

use crate::run::{Plan, Transport};

#[derive(Debug, Parser)]
#[command(
    name = "dgate-bench",
    version,
    about = "Load and latency figures for a dgate server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// One measured run: games, viewers, a table (or --json) at the end.
    Run(RunArgs),
    /// A long run: games starting and ending, viewers joining and leaving
    /// all the time; the server's memory and files must stay flat and be
    /// released at the end.
    Soak(SoakArgs),
    /// The firehose game (what the server runs in a PTY).
    Firehose(firehose::FirehoseArgs),
    /// Viewers of an asciinema live stream (`asciinema stream --local`
    /// running the firehose), measured as `run` measures dgate's.
    Alis(alis::AlisArgs),
}

#[derive(Debug, clap::Args)]
struct SoakArgs {
    /// Seconds the soak lasts (at most 3,600).
    #[arg(long, default_value_t = 600.0)]
    seconds: f64,
    /// Games running at once.
    #[arg(long, default_value_t = 8)]
    sessions: usize,
    /// Each game lives between these many seconds.
    #[arg(long, num_args = 2, default_values_t = [5.0, 30.0])]
    game_seconds: Vec<f64>,
    /// Viewers joining per second.
    #[arg(long, default_value_t = 200.0)]
    joins_per_second: f64,
    /// Each viewer stays between these many seconds.
    #[arg(long, num_args = 2, default_values_t = [0.2, 3.0])]
    stay_seconds: Vec<f64>,
    /// Viewers connected at most at once.
    #[arg(long, default_value_t = 1000)]
    max_viewers: usize,
    /// Transports the viewers take turns with.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Transport::Grpc, Transport::WebSocket])]
    transports: Vec<Transport>,
    /// Frames per second each game draws.
    #[arg(long, default_value_t = 30.0)]
    rate: f64,
    /// Games are recorded (as on a public server) unless this is given.
    #[arg(long)]
    no_record: bool,
    #[arg(long)]
    json: bool,
    /// Exit 1 unless the soak was sound.
    #[arg(long)]
    require_sound: bool,
    #[arg(long)]
    server_binary: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// How viewers watch.
    #[arg(long, value_enum, default_value_t = Transport::Grpc)]
    transport: Transport,
    /// Viewers in all, spread evenly over the sessions (at most 20,000).
    #[arg(long, default_value_t = 100)]
    viewers: usize,
    /// Games running at once (at most 1,000).
    #[arg(long, default_value_t = 1)]
    sessions: usize,
    /// Seconds measured, after every viewer has joined (at most 3,600).
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Frames per second each game draws.
    #[arg(long, default_value_t = 30.0)]
    rate: f64,
    /// Bytes per frame.
    #[arg(long, default_value_t = 200)]
    bytes: usize,
    /// The games' terminal size.
    #[arg(long, default_value = "80x24")]
    size: dgate_term::TermSize,
    /// The games print scrolling lines (a frame a line) instead of
    /// NetHack-like frames.
    #[arg(long)]
    scroll: bool,
    /// Fraction of viewers that stop reading for the second half (0 to 1):
    /// the table then shows the others' latency in both halves.
    #[arg(long, default_value_t = 0.0)]
    paused: f64,
    /// Viewers whose screens are compared with the player's at the end.
    #[arg(long, default_value_t = 10)]
    check: usize,
    /// Print the figures as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Exit 1 unless the run was sound (nothing lost, every screen equal).
    #[arg(long)]
    require_sound: bool,
    /// Our own server records every game (ttyrec), as a public one would.
    #[arg(long)]
    record: bool,
    /// Our own server's `session_management.queue_frames`.
    #[arg(long)]
    queue_frames: Option<usize>,
    /// Each game's player says this many chat lines a second while
    /// measuring (gRPC viewers): the chat's latency at the viewers, and
    /// whether each got every line in order. Our own server lets a user say
    /// that many; a running one must allow it
    /// (`spectating.chat.lines_per_10s`).
    #[arg(long, default_value_t = 0.0)]
    chat: f64,
    /// The dgate-server binary to start (default: beside this one).
    #[arg(long)]
    server_binary: Option<PathBuf>,
    /// Start a cluster of this many nodes (at most 16) on one nats-server;
    /// the games run on node 1. 1 is a single server without NATS.
    #[arg(long, default_value_t = 1, conflicts_with = "grpc")]
    nodes: usize,
    /// The nodes the viewers watch on, in equal blocks: `2` all on node 2,
    /// `2,3` half on each, `1,2` half local to the game and half remote,
    /// `1,2,2` a third local (default: every node but 1, or 1 alone).
    #[arg(long, value_delimiter = ',')]
    viewers_on: Vec<usize>,
    /// The nats-server binary (default: /usr/sbin/nats-server, else PATH).
    #[arg(long)]
    nats_binary: Option<PathBuf>,
    /// Use a running server at this gRPC address instead of starting one;
    /// it must offer the firehose as --game.
    #[arg(long, requires = "http")]
    grpc: Option<SocketAddr>,
    /// The running server's HTTP address (WebSocket viewers).
    #[arg(long)]
    http: Option<SocketAddr>,
    /// The running server's SSH address (SSH viewers).
    #[arg(long, default_value = "127.0.0.1:2222")]
    ssh: SocketAddr,
    /// The running server's process id, for its CPU and memory figures.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The running server's firehose game id.
    #[arg(long, default_value = "firehose")]
    game: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Firehose(args) => firehose::run(&args).map(|()| true),
        Command::Run(args) => run_command(&args),
        Command::Soak(args) => soak_command(&args),
        Command::Alis(args) => alis::run(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("dgate-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Lets this process hold as many sockets as the hard limit allows (the
/// server we start inherits it).
fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn run_command(args: &RunArgs) -> anyhow::Result<bool> {
    if args.viewers > 20_000 || args.sessions > 1_000 || !(0.0..=3600.0).contains(&args.seconds) {
        bail!("a run is bounded: at most 20,000 viewers, 1,000 sessions and 3,600 seconds");
    }
    if !(0.0..=1.0).contains(&args.paused) {
        bail!("--paused is a fraction between 0 and 1");
    }
    if !(args.rate > 0.0 && args.rate <= 100_000.0) {
        bail!("--rate is frames per second, above 0 and at most 100,000");
    }
    if !(0.0..=1000.0).contains(&args.chat) {
        bail!("--chat is lines per second, at most 1,000");
    }
    if args.chat > 0.0 && args.transport != Transport::Grpc {
        bail!("--chat is measured at gRPC viewers (--transport grpc)");
    }
    if !(1..=16).contains(&args.nodes) {
        bail!("--nodes is 1 to 16");
    }
    let viewers_on = match (&args.viewers_on[..], args.nodes) {
        ([], 1) => vec![1],
        ([], nodes) => (2..=nodes).collect(),
        (on, nodes) => {
            cluster::placement(args.viewers.max(1), on, nodes)?;
            on.to_vec()
        }
    };
    raise_file_limit();
    let firehose = firehose::FirehoseArgs {
        rate: args.rate,
        bytes: args.bytes,
        cols: args.size.cols,
        rows: args.size.rows,
        max_seconds: args.seconds as u64 + 300,
        scroll: args.scroll,
    };
    let own = || -> anyhow::Result<server::OwnSettings> {
        Ok(server::OwnSettings {
            binary: server::server_binary(args.server_binary.as_deref())?,
            firehose: firehose.clone(),
            record: args.record,
            queue_frames: args.queue_frames,
            // Ten times what the run says, so that no line is refused.
            chat_lines_per_10s: (args.chat > 0.0).then(|| (args.chat * 100.0).ceil() as usize),
            cluster: None,
        })
    };
    let servers = match (args.grpc, args.http) {
        (Some(grpc), Some(http)) => cluster::Servers::single(server::external(
            grpc,
            http,
            args.ssh,
            args.server_pid,
            args.game.clone(),
        )?),
        _ if args.nodes > 1 => cluster::Servers::cluster(
            args.nodes,
            &own()?,
            &cluster::nats_binary(args.nats_binary.as_deref()),
        )?,
        _ => cluster::Servers::single(server::start(&own()?)?),
    };
    let plan = Plan {
        transport: args.transport,
        sessions: args.sessions,
        viewers: args.viewers,
        duration: Duration::from_secs_f64(args.seconds),
        paused: args.paused,
        check: args.check,
        cols: args.size.cols,
        rows: args.size.rows,
        progress: !args.json,
        chat: args.chat,
        viewers_on,
    };
    let report = measure(servers, async |servers| run::run(servers, &plan).await)?;
    show(
        &report,
        args.json,
        report.is_sound(),
        args.require_sound,
        report.table(),
    )
}

fn soak_command(args: &SoakArgs) -> anyhow::Result<bool> {
    if !(1.0..=3600.0).contains(&args.seconds) || args.sessions == 0 || args.sessions > 100 {
        bail!("a soak is bounded: 1 to 3,600 seconds, 1 to 100 games");
    }
    if args.max_viewers > 20_000 || args.joins_per_second > 5_000.0 || args.transports.is_empty() {
        bail!("a soak is bounded: at most 20,000 viewers and 5,000 joins a second");
    }
    raise_file_limit();
    let size = dgate_term::TermSize::new(80, 24);
    let target = server::start(&server::OwnSettings {
        binary: server::server_binary(args.server_binary.as_deref())?,
        firehose: firehose::FirehoseArgs {
            rate: args.rate,
            bytes: 200,
            cols: size.cols,
            rows: size.rows,
            max_seconds: args.seconds as u64 + 300,
            scroll: false,
        },
        record: !args.no_record,
        queue_frames: None,
        chat_lines_per_10s: None,
        cluster: None,
    })?;
    let range = |v: &[f64]| {
        (
            v.first().copied().unwrap_or(1.0),
            v.last().copied().unwrap_or(1.0),
        )
    };
    let plan = soak::SoakPlan {
        duration: Duration::from_secs_f64(args.seconds),
        sessions: args.sessions,
        game_seconds: range(&args.game_seconds),
        joins_per_second: args.joins_per_second,
        stay_seconds: range(&args.stay_seconds),
        max_viewers: args.max_viewers,
        transports: args.transports.clone(),
        size,
        progress: !args.json,
    };
    let servers = cluster::Servers::single(target);
    let report = measure(servers, async |servers| {
        soak::soak(servers.first(), &plan).await
    })?;
    show(
        &report,
        args.json,
        report.is_sound(),
        args.require_sound,
        report.table(),
    )
}

/// Runs `work` against `servers` on a runtime of its own, then stops the
/// servers we started and says so if one did not stop cleanly. Ctrl-C ends
/// the work early, and the servers are stopped all the same.
fn measure<R>(
    servers: cluster::Servers,
    work: impl AsyncFnOnce(&cluster::Servers) -> anyhow::Result<R>,
) -> anyhow::Result<R> {
    let runtime = tokio::runtime::Runtime::new()?;
    let result = runtime.block_on(async {
        tokio::select! {
            result = work(&servers) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted (Ctrl-C)")),
        }
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
    let log = servers.log_path();
    let stopped = servers.stop();
    let result = result?;
    if let Err(e) = stopped {
        bail!("{e:#} (server log: {log:?})");
    }
    Ok(result)
}

/// Prints the figures (a table, or JSON) and says whether the run passes.
fn show(
    report: &impl serde::Serialize,
    json: bool,
    sound: bool,
    require_sound: bool,
    table: String,
) -> anyhow::Result<bool> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{table}");
    }
    Ok(sound || !require_sound)
}
