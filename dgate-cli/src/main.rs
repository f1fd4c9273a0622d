//! `dgate`: the dgate client. This version lists games and sessions and
//! manages your account; watching and playing come with the terminal client.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use account::Passwords;
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use dgate_proto::auth::auth_service_client::AuthServiceClient;
use dgate_proto::listing::{SessionList, idle_since};
use dgate_proto::pb;
use dgate_proto::pb::game_service_client::GameServiceClient;

mod account;
mod tokens;
use tonic::transport::{Channel, Endpoint};

/// Play and watch console games on a dgate server.
#[derive(Debug, Parser)]
#[command(name = "dgate", version)]
struct Cli {
    /// The server's gRPC address.
    #[arg(
        long,
        global = true,
        env = "DGATE_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Lists the games in progress.
    List {
        /// Prints JSON (the same as the server's `GET /sessions`).
        #[arg(long)]
        json: bool,
    },
    /// Lists the games this server offers.
    Games {
        /// Prints JSON.
        #[arg(long)]
        json: bool,
    },
    /// Creates an account on the server and logs in.
    Register {
        #[arg(long)]
        username: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Reads the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Logs in; the token is kept (mode 0600) in your config directory.
    Login {
        #[arg(long)]
        username: Option<String>,
        /// Reads the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Logs out: the token is revoked and forgotten.
    Logout,
    /// Changes your password (old, then new; with --password-stdin, two lines).
    Passwd {
        #[arg(long)]
        password_stdin: bool,
    },
    /// Shows who you are logged in as.
    Whoami,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let server = cli.server.as_str();
        let channel = connect(server).await?;
        let mut games_client = GameServiceClient::new(channel.clone());
        let mut accounts = AuthServiceClient::new(channel);
        let mut out = std::io::stdout().lock();
        match cli.command {
            Command::List { json } => list(&mut games_client, json, &mut out).await?,
            Command::Games { json } => games(&mut games_client, json, &mut out).await?,
            Command::Register {
                username,
                email,
                password_stdin,
            } => {
                account::register(
                    &mut accounts,
                    server,
                    username,
                    email,
                    Passwords::new(password_stdin),
                )
                .await?
            }
            Command::Login {
                username,
                password_stdin,
            } => {
                account::login(
                    &mut accounts,
                    server,
                    username,
                    Passwords::new(password_stdin),
                )
                .await?
            }
            Command::Logout => account::logout(&mut accounts, server).await?,
            Command::Passwd { password_stdin } => {
                account::passwd(&mut accounts, server, Passwords::new(password_stdin)).await?
            }
            Command::Whoami => account::whoami(&mut accounts, server).await?,
        }
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    })
}

async fn connect(server: &str) -> Result<Channel> {
    let endpoint = Endpoint::from_shared(server.to_owned())
        .with_context(|| format!("{server:?} is not a server URL like http://127.0.0.1:50051"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    let channel = endpoint.connect().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach the dgate server at {server}: {}",
            root_cause(&e)
        )
    })?;
    Ok(channel)
}

/// The innermost error's text ("Connection refused"), not the transport's layers.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("the server said: {} ({:?})", e.message(), e.code())
}

async fn list(
    client: &mut GameServiceClient<Channel>,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let sessions = client
        .list_game_sessions(pb::ListGameSessionsRequest::default())
        .await
        .map_err(status)?
        .into_inner()
        .sessions;
    let now = SystemTime::now();
    if json {
        serde_json::to_writer_pretty(&mut *out, &SessionList::from_sessions(&sessions, now))?;
        writeln!(out)?;
        return Ok(());
    }
    if sessions.is_empty() {
        writeln!(out, "No games in progress.")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<32}  {:<16} {:<6} {:<7} {:<19}  {:<8} {:>8}",
        "SESSION", "USERNAME", "GAME", "SIZE", "START (UTC)", "IDLE", "WATCHERS"
    )?;
    for s in &sessions {
        let size = s.terminal_size.unwrap_or_default();
        writeln!(
            out,
            "{:<32}  {:<16} {:<6} {:<7} {:<19}  {:<8} {:>8}",
            s.id,
            s.username,
            if s.game_short_name.is_empty() {
                &s.game_id
            } else {
                &s.game_short_name
            },
            format!("{}x{}", size.width, size.height),
            start_time(s.start_time),
            idle(idle_since(s.last_activity, now)),
            s.spectator_count,
        )?;
    }
    writeln!(
        out,
        "({} game{} in progress)",
        sessions.len(),
        if sessions.len() == 1 { "" } else { "s" }
    )?;
    Ok(())
}

async fn games(
    client: &mut GameServiceClient<Channel>,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let games = client
        .list_games(pb::ListGamesRequest {})
        .await
        .map_err(status)?
        .into_inner()
        .games;
    if json {
        let games: Vec<_> = games
            .iter()
            .map(|g| {
                serde_json::json!({
                    "id": g.id,
                    "name": g.name,
                    "short_name": g.short_name,
                    "available": g.available,
                    "unavailable_reason": g.unavailable_reason,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "games": games }))?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{:<12} {:<6} {:<28} STATUS", "ID", "SHORT", "NAME")?;
    for g in &games {
        let state = if g.available {
            "available".to_owned()
        } else {
            format!("unavailable: {}", g.unavailable_reason)
        };
        writeln!(
            out,
            "{:<12} {:<6} {:<28} {state}",
            g.id, g.short_name, g.name
        )?;
    }
    Ok(())
}

/// `2025-07-06 02:56:44`, as in the watch menu.
fn start_time(t: Option<dgate_proto::Timestamp>) -> String {
    t.and_then(|t| SystemTime::try_from(t).ok())
        .map(|t| {
            humantime::format_rfc3339_seconds(t)
                .to_string()
                .replace('T', " ")
                .trim_end_matches('Z')
                .to_owned()
        })
        .unwrap_or_default()
}

/// `5m 23s`, `6s`, `2h 5m`, as in the watch menu.
fn idle(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86400, s % 86400 / 3600),
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_times_read_like_the_watch_menu() {
        assert_eq!(idle(Duration::from_secs(6)), "6s");
        assert_eq!(idle(Duration::from_secs(323)), "5m 23s");
        assert_eq!(idle(Duration::from_secs(7500)), "2h 5m");
    }
}
