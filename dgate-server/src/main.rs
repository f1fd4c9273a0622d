//! The `dgate-server` binary: parses flags, sets up logging, loads the config,
//! binds the listeners and hands over to `dgate_server::run`.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use dgate_server::accounts::{AccountStore, dgamelaunch};
use dgate_server::config::DEFAULT_CONFIG_YAML;
use dgate_server::{Config, Listeners};
use tokio::net::{TcpListener, TcpSocket};
use tracing_subscriber::EnvFilter;

/// Runs console games (NetHack, DCSS, any curses program) in PTYs and lets
/// anyone watch them live.
#[derive(Debug, Parser)]
#[command(name = "dgate-server", version)]
struct Cli {
    /// A YAML config file; without it, the embedded default is used.
    #[arg(long, short, env = "DGATE_CONFIG")]
    config: Option<PathBuf>,
    /// Overrides server.grpc_listen.
    #[arg(long, value_parser = listen_address)]
    grpc_listen: Option<SocketAddr>,
    /// Overrides server.http_listen.
    #[arg(long, value_parser = listen_address)]
    http_listen: Option<SocketAddr>,
    /// Overrides ssh.listen.
    #[arg(long, value_parser = listen_address)]
    ssh_listen: Option<SocketAddr>,
    /// Overrides data_dir.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Prints the embedded default configuration.
    DefaultConfig,
    /// Checks a configuration and prints the games it offers.
    CheckConfig,
    /// Manages player accounts directly in the database (the server may run).
    #[command(subcommand)]
    User(UserCommand),
    /// Copies the account database to a new file (0600), consistent even
    /// while the server runs.
    Backup {
        /// The copy to write; must not exist yet.
        path: PathBuf,
    },
    /// Imports accounts from another server (the server may run).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Sends a message to every player of the running server (dgamelaunch's
    /// `-W`): to each game's mail spool and dgate's player views, and shown
    /// in the menus for an hour. The server delivers it within a second.
    Announce {
        /// One line, at most 80 characters.
        text: String,
    },
}

#[derive(Debug, Subcommand)]
enum ImportCommand {
    /// Adds dgamelaunch's accounts (its `dglusers` table) with their passwords.
    ///
    /// An account's first login checks its old crypt(3) hash, which is then
    /// replaced with argon2id. Accounts dgate already has are left as they
    /// are, so running it again changes nothing.
    Dgamelaunch {
        /// dgamelaunch's SQLite database (e.g. /opt/nethack/dgldir/dgamelaunch.db),
        /// only read.
        #[arg(long)]
        db: PathBuf,
    },
    /// Carries a single server's accounts into the cluster's shared store
    /// (needs a `cluster` section): passwords, flags and SSH keys.
    ///
    /// Names the cluster has already are left as they are, and so is a key
    /// another account holds; running it again changes nothing. Tokens are
    /// not carried: everyone logs in once more.
    Node {
        /// The single server's database; by default this data_dir's dgate.db.
        #[arg(long)]
        db: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Creates an account; asks for the password (or reads it from stdin).
    Add {
        username: String,
        /// Makes the account an administrator.
        #[arg(long)]
        admin: bool,
        /// Reads the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Lists every account.
    List,
    /// Bans an account and revokes its tokens.
    Ban { username: String },
    /// Lifts a ban.
    Unban { username: String },
    /// Makes an account an administrator (or, with --off, not).
    SetAdmin {
        username: String,
        #[arg(long)]
        off: bool,
    },
    /// Renames an account (to fix a name games read differently, which
    /// `user list` flags as `rename`); files games keep under the old name
    /// are not moved.
    Rename { username: String, new_name: String },
    /// Sets a new password and revokes the account's tokens.
    Passwd {
        username: String,
        /// Reads the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dgate-server: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::DefaultConfig) = cli.command {
        print!("{DEFAULT_CONFIG_YAML}");
        return Ok(());
    }
    let config = load_config(&cli)?;
    if let Some(Command::CheckConfig) = cli.command {
        println!("config is valid; data_dir {}", config.data_dir.display());
        if config.games.is_empty() {
            println!(
                "warning: it offers no games (a `games` list replaces the embedded \
                 default's; without one there are none): `dgate-server default-config` \
                 shows the default's"
            );
        }
        for game in &config.games {
            let state = dgate_server::game::catalog::unavailable_reason(game)
                .unwrap_or_else(|| "available".into());
            println!("  {:<12} {:<24} {state}", game.id, game.name);
        }
        return Ok(());
    }
    if let Some(Command::User(command)) = cli.command {
        return manage_users(&config, command);
    }
    if let Some(Command::Backup { path }) = &cli.command {
        return with_accounts(&config, |store, database| {
            store.backup(path).with_context(|| {
                format!("backing up {} to {}", database.display(), path.display())
            })?;
            println!("backed up {} to {}", database.display(), path.display());
            Ok(())
        });
    }
    if let Some(Command::Announce { text }) = &cli.command {
        let queued = dgate_server::game::messages::queue_announcement(&config.data_dir, text)
            .map_err(|e| anyhow::anyhow!("cannot announce: {e}"))?;
        println!(
            "queued {}; the running server announces it within a second",
            queued.display()
        );
        return Ok(());
    }
    if let Some(Command::Import(ImportCommand::Dgamelaunch { db })) = &cli.command {
        // The source first: a wrong path creates no account database.
        let source = dgamelaunch::Source::open(db)?;
        return with_accounts(&config, |store, database| {
            let report = source.import_into(store).with_context(|| {
                format!("importing {} into {}", db.display(), database.display())
            })?;
            print!("{report}");
            Ok(())
        });
    }
    if let Some(Command::Import(ImportCommand::Node { db })) = &cli.command {
        return import_node(&config, db.as_deref());
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

fn load_config(cli: &Cli) -> anyhow::Result<Config> {
    let mut config = match &cli.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded(),
    };
    if let Some(addr) = cli.grpc_listen {
        config.server.grpc_listen = addr;
    }
    if let Some(addr) = cli.http_listen {
        config.server.http_listen = addr;
    }
    if let Some(addr) = cli.ssh_listen {
        config.ssh.listen = addr;
    }
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    config
        .resolve_paths()
        .with_context(|| format!("resolving the data directory {}", config.data_dir.display()))?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating the data directory {}", config.data_dir.display()))?;
    Ok(config)
}

/// `--grpc-listen` and the like: `ip:port` or `host:port`.
fn listen_address(text: &str) -> Result<SocketAddr, String> {
    dgate_server::config::resolve_listen_address(text)
}

/// Runs `work` on the accounts: a single server's database, or on a node
/// of a cluster the shared store (through this node's copy, brought up to
/// date first).
fn with_accounts<T>(
    config: &Config,
    work: impl FnOnce(&AccountStore, &std::path::Path) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let lifetime = config.accounts.token_lifetime;
    let Some(cluster) = &config.cluster else {
        let path = config.database_path();
        let store = AccountStore::open(&path, lifetime)
            .with_context(|| format!("opening the account database {}", path.display()))?;
        return work(&store, &path);
    };
    let path = config.cluster_database_path();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let store = runtime.block_on(async {
        let client = dgate_server::cluster::connect_once(cluster).await?;
        let stop = tokio_util::sync::CancellationToken::new();
        let store = dgate_server::open_shared_accounts(config, cluster, client, stop).await?;
        anyhow::ensure!(
            store.is_synced(),
            "the cluster's shared accounts did not answer in 10 s: nothing was changed"
        );
        Ok(store)
    })?;
    // The store's changes block on the runtime from this thread.
    work(&store, &path)
}

/// `import node`: a single server's accounts into the cluster's store.
fn import_node(config: &Config, db: Option<&std::path::Path>) -> anyhow::Result<()> {
    anyhow::ensure!(
        config.cluster.is_some(),
        "import node carries accounts into a cluster: the config has no cluster section"
    );
    let source_path = db.map_or_else(|| config.database_path(), std::path::Path::to_path_buf);
    anyhow::ensure!(
        source_path.is_file(),
        "{} is not a file: name the single server's dgate.db with --db",
        source_path.display()
    );
    let source = AccountStore::open(&source_path, config.accounts.token_lifetime)
        .with_context(|| format!("opening {}", source_path.display()))?;
    let records = dgate_server::accounts::replica::all_records(&source)
        .with_context(|| format!("reading the accounts of {}", source_path.display()))?;
    with_accounts(config, |store, _| {
        let report = store.import_records(records)?;
        print!("{report}");
        Ok(())
    })
}

fn manage_users(config: &Config, command: UserCommand) -> anyhow::Result<()> {
    with_accounts(config, |store, _| run_user_command(store, command))
}

fn run_user_command(store: &AccountStore, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            username,
            admin,
            password_stdin,
        } => {
            let password = read_password(password_stdin, true)?;
            let user = store.register(&username, password.as_bytes(), None)?;
            if admin {
                store.set_admin(&user.username, true)?;
            }
            println!(
                "created {}{}",
                user.username,
                if admin { " (admin)" } else { "" }
            );
        }
        UserCommand::List => {
            println!(
                "{:<6} {:<20} {:<20} {:<20} FLAGS",
                "ID", "USERNAME", "CREATED (UTC)", "LAST LOGIN (UTC)"
            );
            for user in store.list()? {
                let when =
                    |t: std::time::SystemTime| humantime::format_rfc3339_seconds(t).to_string();
                let misread = dgate_server::accounts::check_username(&user.username).is_err();
                let flags = [
                    (user.is_admin, "admin"),
                    (user.is_banned, "banned"),
                    (misread, "rename"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, name)| *name)
                .collect::<Vec<_>>()
                .join(",");
                println!(
                    "{:<6} {:<20} {:<20} {:<20} {flags}",
                    user.id,
                    user.username,
                    when(user.created_at),
                    user.last_login.map(when).unwrap_or_else(|| "never".into()),
                );
            }
        }
        UserCommand::Rename { username, new_name } => {
            let user = store.rename(&username, &new_name)?;
            println!(
                "renamed {username} to {}; move files games keep under the old name yourself",
                user.username
            );
        }
        UserCommand::Ban { username } => {
            store.set_banned(&username, true)?;
            println!("banned {username}");
        }
        UserCommand::Unban { username } => {
            store.set_banned(&username, false)?;
            println!("unbanned {username}");
        }
        UserCommand::SetAdmin { username, off } => {
            store.set_admin(&username, !off)?;
            println!(
                "{username} is {}an administrator",
                if off { "not " } else { "" }
            );
        }
        UserCommand::Passwd {
            username,
            password_stdin,
        } => {
            let password = read_password(password_stdin, true)?;
            store.set_password(&username, password.as_bytes())?;
            println!("password of {username} changed; its tokens are revoked");
        }
    }
    Ok(())
}

/// The first line of stdin, or a password typed twice without echo.
fn read_password(from_stdin: bool, confirm: bool) -> anyhow::Result<String> {
    if from_stdin || !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let password = rpassword::prompt_password("Password: ").context("reading the password")?;
    if confirm && rpassword::prompt_password("Again: ").context("reading the password")? != password
    {
        anyhow::bail!("the passwords differ");
    }
    Ok(password)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    match dgate_server::limits::raise_open_files_limit() {
        Ok(limit) => tracing::info!(limit, "open files"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
    tracing::info!(
        data_dir = %config.data_dir.display(),
        database = %config.database_path().display(),
        recordings = %config.session_management.ttyrec.directory.display(),
        "paths (relative paths in the config are under data_dir)"
    );
    let backlog = config.server.listen_backlog;
    let grpc = listen(config.server.grpc_listen, backlog)
        .with_context(|| format!("binding the gRPC listener on {}", config.server.grpc_listen))?;
    let http = listen(config.server.http_listen, backlog)
        .with_context(|| format!("binding the HTTP listener on {}", config.server.http_listen))?;
    let ssh = if config.ssh.enabled {
        Some(
            listen(config.ssh.listen, backlog)
                .with_context(|| format!("binding the SSH listener on {}", config.ssh.listen))?,
        )
    } else {
        None
    };
    let metrics = match config.server.metrics_listen {
        Some(addr) => Some(
            listen(addr, backlog)
                .with_context(|| format!("binding the metrics listener on {addr}"))?,
        ),
        None => None,
    };
    dgate_server::run(
        config,
        Listeners {
            grpc,
            http,
            ssh,
            metrics,
        },
        shutdown_signal(),
    )
    .await
}

/// A listener with `backlog` (`TcpListener::bind` gives 128).
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Resolves on the first SIGTERM or SIGINT; a second one exits at once (the
/// games then get SIGHUP from their closing terminals, and recordings stay
/// plain but readable).
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the server can still be stopped by a kill.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("dgate-server: second signal; exiting without waiting for the games");
        std::process::exit(130);
    });
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("DGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
