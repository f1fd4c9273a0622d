//! `dgate`: the dgate client. Lists games and sessions, watches them (the
//! watch menu, one game, or several side by side), plays them, and manages
//! your account.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use account::Passwords;
use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use connection::{Connection, status, with_token};
use dgate_proto::auth::auth_service_client::AuthServiceClient;
use dgate_proto::pb;
use dgate_proto::pb::game_service_client::GameServiceClient;
use dgate_term::listing::{RecordingSummary, SessionList, SessionSummary};
use dgate_tui::format::{idle, start_time};
use table::Column;
use tonic::transport::Channel;

mod account;
mod config;
mod connection;
mod convert;
mod export;
mod options;
mod play;
mod replay;
mod spectate;
mod table;
mod tokens;
mod tui;
mod watch;

/// Play and watch console games on a dgate server.
///
/// Start with `dgate watch` to see the games in progress, or `dgate register`
/// and `dgate play nethack` to play. The server is --server, else
/// $DGATE_SERVER, else `server:` in ~/.config/dgate/config.yaml, else
/// http://127.0.0.1:50051.
#[derive(Debug, Parser)]
#[command(name = "dgate", version)]
struct Cli {
    /// The server's gRPC address, like http://example.org:50051.
    #[arg(long, global = true, env = "DGATE_SERVER")]
    server: Option<String>,
    /// A PEM file of certificates to trust for an https:// server besides
    /// the system's (a self-signed server's own certificate or its CA).
    #[arg(long, global = true, env = "DGATE_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Watches games: the watch menu, or one game by its session id.
    ///
    /// In the menu a letter starts watching that game at once; Space marks
    /// games and `m` shows up to four side by side; `?` lists every key.
    /// While watching, `q` or Ctrl+C goes back and Ctrl+Z suspends.
    Watch {
        /// Watch this session directly (ids are in `dgate list`).
        session_id: Option<String>,
    },
    /// Plays a game: starts your session, or resumes the one you have.
    ///
    /// Your terminal is connected to the game as over ssh. Ctrl+] opens a
    /// menu on the bottom row: `d` detaches (the game waits for you, the
    /// server's detach grace, and `dgate play` with the same game resumes
    /// it), `c` says a line in the game's chat (`/mute NAME`, `/kick NAME`,
    /// `/block anon|all`, `/unblock` are yours there). Needs `dgate login`.
    Play {
        /// The game's id or short name, as `dgate games` lists them.
        game: String,
    },
    /// Edits your options file (rc file) for a game on the server.
    ///
    /// The editor is built in: Ctrl+S saves, Esc leaves (asking when there
    /// are unsaved changes). Your next game starts with the saved options.
    /// Without GAME: the one game that has options, or a choice of them.
    /// Needs `dgate login`.
    Options {
        /// The game's id or short name, as `dgate games` lists them.
        game: Option<String>,
    },
    /// Replays a recording (.ttyrec or .ttyrec.gz) in the terminal.
    ///
    /// Space pauses, + and - change the speed (0.25× to 16×), ← and → seek
    /// 10 s, ↑ and ↓ one minute, g goes to a time, q quits. Long idle pauses
    /// are shortened to --max-idle. The terminal size and resizes come from
    /// the .json file the server writes beside each recording.
    Replay {
        /// The recording file.
        #[arg(required_unless_present = "remote", conflicts_with = "remote")]
        file: Option<PathBuf>,
        /// Replay a recording on the server instead (ids are in `dgate recordings`).
        #[arg(long, value_name = "ID")]
        remote: Option<String>,
        /// Pauses longer than this are shortened to it (`0` keeps them all);
        /// default from `replay.max_idle` in config.yaml, else 5s.
        #[arg(long, value_parser = parse_duration)]
        max_idle: Option<Duration>,
        /// The terminal size when recording started, for files without
        /// metadata (default 80x24).
        #[arg(long)]
        size: Option<dgate_term::TermSize>,
    },
    /// Converts a recording for other players.
    Export {
        /// The recording file (.ttyrec or .ttyrec.gz).
        file: PathBuf,
        /// asciicast: asciicast v2, for `asciinema play` and asciinema's web player.
        #[arg(long, value_enum, default_value = "asciicast")]
        format: ExportFormat,
        /// Where to write (default: FILE with the extension .cast; `-` for stdout).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Pauses longer than this are shortened to it (default: kept as recorded).
        #[arg(long, value_parser = parse_duration)]
        max_idle: Option<Duration>,
    },
    /// Lists the server's recordings of finished games, newest first.
    Recordings {
        /// Only this player's.
        #[arg(long)]
        user: Option<String>,
        /// Only this game's (its id).
        #[arg(long)]
        game: Option<String>,
        /// At most this many (the server caps it at 500).
        #[arg(long, default_value_t = 50)]
        limit: i32,
        /// Prints JSON.
        #[arg(long)]
        json: bool,
    },
    /// Lists the games in progress.
    List {
        /// Prints JSON (the same as the server's `GET /sessions`).
        #[arg(long)]
        json: bool,
    },
    /// Admins: sends TEXT to every player now playing (their game's mail
    /// spool and dgate's player views); the server's menus show it for an
    /// hour. Needs `dgate login` as an admin.
    Announce {
        /// One line, at most 80 characters.
        text: String,
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
    /// Your SSH public keys: with one added, `ssh -p 2222 NAME@host` logs in without a password.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Prints a shell completion script (bash, zsh, fish, elvish, powershell).
    ///
    /// For bash: `dgate completions bash > ~/.local/share/bash-completion/completions/dgate`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Adds the key in FILE (one line of an OpenSSH .pub file).
    Add { file: PathBuf },
    /// Lists your keys' fingerprints.
    List,
    /// Removes a key by its fingerprint (`SHA256:...`, as `dgate keys list` shows it).
    Remove { fingerprint: String },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    Asciicast,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    humantime::parse_duration(text).map_err(|e| format!("{text:?} is not a duration like 5s: {e}"))
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "dgate", &mut std::io::stdout());
            return Ok(ExitCode::SUCCESS);
        }
        Command::Replay {
            file: Some(file),
            max_idle,
            size,
            ..
        } => {
            let max_idle = max_idle.unwrap_or(config::load()?.replay.max_idle);
            let cap = (!max_idle.is_zero()).then_some(max_idle);
            let local = replay::open_file(&file, cap, size)?;
            let runtime = runtime()?;
            tui::log_to_file();
            if let Some(line) = runtime.block_on(replay::run_local(local))? {
                eprintln!("{line}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Command::Export {
            file,
            format: ExportFormat::Asciicast,
            output,
            max_idle,
        } => {
            let cap = max_idle.filter(|d| !d.is_zero());
            let local = replay::open_file(&file, cap, None)?;
            let output = output.unwrap_or_else(|| cast_path(&file));
            if output.as_os_str() == "-" {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                export::asciicast(&local.recording, &local.title, &mut out)?;
                out.flush()?;
            } else {
                let mut out = std::io::BufWriter::new(
                    std::fs::File::create(&output)
                        .with_context(|| format!("creating {}", output.display()))?,
                );
                export::asciicast(&local.recording, &local.title, &mut out)?;
                out.flush()?;
                eprintln!("wrote {}", output.display());
            }
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    let (server, ca_cert) = match (cli.server, cli.ca_cert) {
        (Some(server), Some(ca_cert)) => (server, Some(ca_cert)),
        (server, ca_cert) => {
            let config = config::load()?;
            (server.unwrap_or(config.server), ca_cert.or(config.ca_cert))
        }
    };
    let server = connection::with_scheme(&server, ca_cert.is_some());
    runtime()?.block_on(async {
        let connection = Connection::open(&server, ca_cert.as_deref()).await?;
        let server = server.as_str();
        let mut games_client = connection.games();
        let mut accounts = AuthServiceClient::new(connection.channel.clone());
        let mut out = std::io::stdout().lock();
        match cli.command {
            Command::Watch { session_id } => {
                drop(out);
                tui::log_to_file();
                if let Some(line) = watch::run(connection, session_id).await? {
                    eprintln!("{line}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            Command::Play { game } => {
                drop(out);
                tui::log_to_file();
                eprintln!("{}", play::run(connection, &game).await?);
                return Ok(ExitCode::SUCCESS);
            }
            Command::Options { game } => {
                drop(out);
                tui::log_to_file();
                eprintln!("{}", options::run(connection, game.as_deref()).await?);
                return Ok(ExitCode::SUCCESS);
            }
            Command::Replay {
                remote: Some(id),
                max_idle,
                ..
            } => {
                drop(out);
                let max_idle = max_idle.unwrap_or(config::load()?.replay.max_idle);
                let cap = (!max_idle.is_zero()).then_some(max_idle);
                tui::log_to_file();
                if let Some(line) = replay::run_remote(connection, &id, cap).await? {
                    eprintln!("{line}");
                }
                return Ok(ExitCode::SUCCESS);
            }
            Command::Recordings {
                user,
                game,
                limit,
                json,
            } => {
                let request = pb::ListRecordingsRequest {
                    username: user.unwrap_or_default(),
                    game_id: game.unwrap_or_default(),
                    limit,
                };
                let login = connection.login()?;
                recordings(&mut games_client, request, login.as_ref(), json, &mut out).await?
            }
            Command::List { json } => list(&mut games_client, json, &mut out).await?,
            Command::Games { json } => games(&mut games_client, json, &mut out).await?,
            Command::Announce { text } => {
                let login = connection.require_login()?;
                let players = games_client
                    .announce(with_token(pb::AnnounceRequest { text }, Some(&login)))
                    .await
                    .map_err(status)?
                    .into_inner()
                    .players;
                writeln!(
                    out,
                    "Announced to {players} player{}.",
                    if players == 1 { "" } else { "s" }
                )?;
            }
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
            Command::Keys { action } => match action {
                KeysAction::Add { file } => account::add_key(&mut accounts, server, &file).await?,
                KeysAction::List => account::list_keys(&mut accounts, server).await?,
                KeysAction::Remove { fingerprint } => {
                    account::remove_key(&mut accounts, server, &fingerprint).await?
                }
            },
            Command::Completions { .. } | Command::Replay { .. } | Command::Export { .. } => {}
        }
        out.flush()?;
        Ok(ExitCode::SUCCESS)
    })
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// `x.ttyrec.gz` → `x.cast`, beside it.
fn cast_path(file: &std::path::Path) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".ttyrec.gz")
        .or_else(|| name.strip_suffix(".ttyrec"))
        .unwrap_or(&name);
    file.with_file_name(format!("{stem}.cast"))
}

async fn recordings(
    client: &mut GameServiceClient<Channel>,
    request: pb::ListRecordingsRequest,
    login: Option<&tokens::Saved>,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let recordings: Vec<RecordingSummary> = client
        .list_recordings(with_token(request, login))
        .await
        .map_err(status)?
        .into_inner()
        .recordings
        .iter()
        .map(convert::recording_summary)
        .collect();
    let rfc3339 =
        |t: Option<SystemTime>| t.map(|t| humantime::format_rfc3339_millis(t).to_string());
    if json {
        let rows: Vec<_> = recordings
            .iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "username": r.username,
                    "game_id": r.game_id,
                    "start": rfc3339(r.start),
                    "end": rfc3339(r.end),
                    "terminal": { "cols": r.size.cols, "rows": r.size.rows },
                    "frames": r.frames,
                    "exit_code": r.exit_code,
                    "signal": r.signal,
                    "end_reason": r.end_reason,
                    "ended": r.ending(),
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "recordings": rows }))?;
        writeln!(out)?;
        return Ok(());
    }
    if recordings.is_empty() {
        writeln!(out, "No recordings.")?;
        return Ok(());
    }
    // Ids are whole (a replay needs all of it); the ending is cut first.
    let columns = [
        Column::left("ID", 48),
        Column::left("START (UTC)", 16),
        Column::left("LENGTH", 6),
        Column::right("FRAMES"),
        Column::left("ENDED", 6),
    ];
    let rows: Vec<Vec<String>> = recordings
        .iter()
        .map(|r| {
            let length = match (r.start, r.end) {
                (Some(s), Some(e)) => idle(e.duration_since(s).unwrap_or_default()),
                _ => String::new(),
            };
            vec![
                r.id.clone(),
                start_time(r.start),
                length,
                r.frames.to_string(),
                r.ending(),
            ]
        })
        .collect();
    table::write(out, &columns, &rows, table::terminal_width(), &[4, 1])?;
    writeln!(out, "(`dgate replay --remote ID` plays one)")?;
    Ok(())
}

async fn list(
    client: &mut GameServiceClient<Channel>,
    json: bool,
    out: &mut impl Write,
) -> Result<()> {
    let sessions: Vec<SessionSummary> = client
        .list_game_sessions(pb::ListGameSessionsRequest::default())
        .await
        .map_err(status)?
        .into_inner()
        .sessions
        .iter()
        .map(convert::session_summary)
        .collect();
    let now = SystemTime::now();
    if json {
        serde_json::to_writer_pretty(&mut *out, &SessionList::new(&sessions, now))?;
        writeln!(out)?;
        return Ok(());
    }
    if sessions.is_empty() {
        writeln!(out, "No games in progress.")?;
        return Ok(());
    }
    // In a narrow terminal the session id is cut first: `dgate watch`
    // takes any prefix that names one game.
    let mut columns = vec![
        Column::left("SESSION", 12).prefix(),
        Column::left("USERNAME", 8),
        Column::left("GAME", 4),
        Column::left("SIZE", 7),
        Column::left("START (UTC)", 16),
        Column::left("IDLE", 6),
        Column::right("WATCHERS"),
    ];
    // Where each game runs, on a cluster's node.
    let nodes = sessions.iter().any(|s| s.node.is_some());
    if nodes {
        columns.push(Column::left("NODE", 4));
    }
    // What games say about themselves ("Dlvl:12"), when any does.
    let extra = sessions.iter().any(|s| s.extra_info.is_some());
    if extra {
        columns.push(Column::left("EXTRA INFO", 10));
    }
    let rows: Vec<Vec<String>> = sessions
        .iter()
        .map(|s| {
            let mut row = vec![
                s.id.clone(),
                s.username.clone(),
                s.game_label().to_string(),
                s.size.to_string(),
                start_time(Some(s.started_at)),
                idle(s.idle(now)),
                s.spectators.len().to_string(),
            ];
            if nodes {
                row.push(s.node.clone().unwrap_or_default());
            }
            if extra {
                row.push(
                    s.extra_info
                        .as_ref()
                        .map(|e| e.text.clone())
                        .unwrap_or_default(),
                );
            }
            row
        })
        .collect();
    table::write(
        out,
        &columns,
        &rows,
        table::terminal_width(),
        &[7, 0, 4, 1, 2],
    )?;
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

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
