//! The server's configuration: typed YAML with an embedded default.
//!
//! Every section has a `Default`, so a file may leave out what it does not change;
//! unknown keys and bad values are errors that name the key and the line.

use std::collections::BTreeMap;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

pub use dgate_term::TermSize;

/// The default configuration, compiled in.
pub const DEFAULT_CONFIG_YAML: &str = include_str!("../../configs/dgate.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub ssh: SshConfig,
    #[serde(default)]
    pub menu: MenuConfig,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub accounts: AccountsConfig,
    #[serde(default)]
    pub games: Vec<GameConfig>,
    #[serde(default)]
    pub session_management: SessionManagement,
    /// Several nodes on NATS (docs/CLUSTER.md); `None`: one node alone,
    /// and no NATS is needed.
    #[serde(default)]
    pub cluster: Option<ClusterConfig>,
}

/// This node's place in a cluster of dgate nodes sharing NATS.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique in the cluster: letters, digits, `-`, `_`
    /// (it is part of NATS subjects).
    pub node_id: String,
    /// NATS servers to connect to (`nats://host:4222`, `tls://...`); the
    /// client fails over between them.
    pub nats_urls: Vec<String>,
    /// A NATS `.creds` file (JWT and NKey seed), relative to `data_dir`;
    /// `None`: connect without credentials.
    #[serde(default)]
    pub credentials: Option<PathBuf>,
    /// How long this node keeps mirroring another node's game after its
    /// last viewer here left (a viewer back within it costs nothing).
    #[serde(default = "default_mirror_linger", deserialize_with = "duration")]
    pub mirror_linger: Duration,
    /// How many NATS servers keep a copy of the shared accounts (JetStream
    /// replicas, 1 to 5). Read only by the node that creates the buckets,
    /// the first to start; 3 survives the loss of one server.
    #[serde(default = "default_account_replicas")]
    pub account_replicas: usize,
}

fn default_mirror_linger() -> Duration {
    Duration::from_secs(30)
}

fn default_account_replicas() -> usize {
    3
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// `host:port`; a host name is resolved once, at start (its first
    /// IPv4 address, else its first).
    #[serde(deserialize_with = "listen_address")]
    pub grpc_listen: SocketAddr,
    #[serde(deserialize_with = "listen_address")]
    pub http_listen: SocketAddr,
    /// gRPC, SSH and HTTP connections one address may hold open at once.
    pub max_connections_per_address: usize,
    /// Addresses exempt from the per-address connection and spectator caps
    /// (a local reverse proxy, a load test); login and registration limits
    /// apply to them too.
    pub trusted_addresses: Vec<IpAddr>,
    /// How long an HTTP client may take to send a request's headers.
    #[serde(deserialize_with = "duration")]
    pub http_header_timeout: Duration,
    /// gRPC calls one connection may have open at once.
    pub grpc_max_streams_per_connection: u32,
    /// Pages of other origins (`https://host[:port]`) whose scripts may open
    /// the browser WebSockets; the server's own pages always may.
    pub allowed_origins: Vec<String>,
    /// Proxies whose PROXY protocol header (any listener) or, for HTTP,
    /// `X-Forwarded-For` (its last address) names the client; their own
    /// connections are not capped per address.
    pub trusted_proxies: Vec<IpAddr>,
    /// Serves `/metrics` on this address only (not on `http_listen`).
    #[serde(deserialize_with = "optional_listen_address")]
    pub metrics_listen: Option<SocketAddr>,
    /// Connections the kernel queues for each listener before they are
    /// accepted (capped by net.core.somaxconn): a crowd joining at once must
    /// not overflow it, or the overflow waits a second for SYN retries.
    pub listen_backlog: u32,
    /// Serves gRPC and HTTP over TLS only (`https://`, `wss://`); SSH has
    /// its own encryption.
    pub tls: Option<TlsConfig>,
}

/// `server.tls`: PEM files, relative paths under `data_dir`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshConfig {
    pub enabled: bool,
    #[serde(deserialize_with = "listen_address")]
    pub listen: SocketAddr,
    /// `$SERVERID` in the banners.
    pub server_id: String,
    /// The host players reach the server at, for the `ssh` commands the
    /// menus show (`nethack.example.org`, or `HOST:PORT` when the port they
    /// use is not the listener's); `None`: the address each client reached.
    pub public_host: Option<String>,
    /// Connections served at once; more are refused with a message.
    pub max_sessions: usize,
    /// A connection idle this long in a menu is closed (not while playing or watching).
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// How long a client has from connecting to logging in (OpenSSH's
    /// `LoginGraceTime`).
    #[serde(deserialize_with = "duration")]
    pub login_grace_time: Duration,
    /// Connections not logged in yet, as OpenSSH's `MaxStartups`
    /// "start:rate:full": past `start`, new ones are dropped with
    /// probability `rate`%, rising to 100% at `full`.
    pub max_startups: MaxStartups,
    /// Connections not logged in yet from one address.
    pub max_startups_per_address: usize,
}

/// `ssh.max_startups`: "start:rate:full" (or one number: start = full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxStartups {
    pub start: usize,
    pub rate: u8,
    pub full: usize,
}

impl std::str::FromStr for MaxStartups {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad =
            || format!("{text:?} is not \"start:rate:full\" (like \"10:30:100\") or a number");
        let parts: Vec<&str> = text.split(':').collect();
        let number = |s: &str| s.trim().parse::<usize>().map_err(|_| bad());
        let startups = match parts[..] {
            [n] => {
                let n = number(n)?;
                MaxStartups {
                    start: n,
                    rate: 100,
                    full: n,
                }
            }
            [start, rate, full] => MaxStartups {
                start: number(start)?,
                rate: u8::try_from(number(rate)?).map_err(|_| bad())?,
                full: number(full)?,
            },
            _ => return Err(bad()),
        };
        if startups.start == 0 || startups.start > startups.full || startups.rate > 100 {
            return Err(format!("{text:?}: need 1 <= start <= full and rate <= 100"));
        }
        Ok(startups)
    }
}

impl<'de> Deserialize<'de> for MaxStartups {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Text {
            Number(usize),
            Text(String),
        }
        match Text::deserialize(d)? {
            Text::Number(n) => n.to_string().parse(),
            Text::Text(text) => text.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// The SSH menus' banner files; the compiled-in banners when not given.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MenuConfig {
    pub banners: BannersConfig,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BannersConfig {
    /// The menu before logging in.
    pub anonymous: Option<PathBuf>,
    /// The menu once logged in.
    pub user: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountsConfig {
    /// How long a login token stays valid.
    #[serde(deserialize_with = "duration")]
    pub token_lifetime: Duration,
    /// Failed logins allowed per minute for one name from one address.
    pub failed_logins_per_minute: u32,
    /// Failed logins allowed per minute from one address, whatever the names.
    pub failed_logins_per_address_per_minute: u32,
    /// Accounts one address may register per hour.
    pub registrations_per_address_per_hour: u32,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            token_lifetime: Duration::from_secs(30 * 24 * 3600),
            failed_logins_per_minute: 5,
            failed_logins_per_address_per_minute: 30,
            registrations_per_address_per_hour: 10,
        }
    }
}

/// One game the server offers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GameConfig {
    pub id: String,
    pub name: String,
    pub short_name: String,
    pub binary: BinaryConfig,
    /// The child's whole environment, besides TERM, LINES and COLUMNS.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Overrides `session_management.run_as` for this game.
    #[serde(default)]
    pub run_as: Option<String>,
    /// `bubblewrap`: the game runs in a bubblewrap sandbox (Debian
    /// `bubblewrap`): the system read-only, a private `/tmp`, no network,
    /// the data directory hidden but for the game's HOME and working
    /// directory, and only those and `writable` writable.
    #[serde(default)]
    pub sandbox: Sandbox,
    /// Paths the game writes besides its HOME and working directory (with
    /// `%u` and `%d`), such as NetHack's shared `/var/games/nethack`: the
    /// sandbox binds them writable.
    #[serde(default)]
    pub writable: Vec<String>,
    /// The player's options file for this game (`%u`, `%d`, `%g`), `%r` in
    /// `args` and `environment`: created from `rc_template` (or empty) the
    /// first time the player starts the game.
    #[serde(default)]
    pub rc_file: Option<String>,
    /// What a new player's rc file starts as (relative: under `data_dir`).
    #[serde(default)]
    pub rc_template: Option<PathBuf>,
    /// What a new player's rc file starts as when there is no
    /// `rc_template`: the text itself, so a config needs no other file.
    #[serde(default)]
    pub rc_default: Option<String>,
    /// Players' rc files are shown read-only at `GET /rc/USER/GAME_ID`
    /// (tournament sites check accounts by them).
    #[serde(default)]
    pub rc_public: bool,
    /// Where spectators' messages to the player go (`m` while watching):
    /// appended as `sender:message` under an `fcntl` lock, as dgamelaunch
    /// does, for a NetHack built with `SIMPLE_MAIL` (path with `%u`, `%d`,
    /// `%g`, relative under `data_dir`).
    #[serde(default)]
    pub mail_spool: Option<String>,
    /// The line the game keeps about itself for the watch menus, in
    /// dgamelaunch's format `weight|text` (NetHack's `EXTRAINFO_FN`): a path
    /// with `%u`, `%d`, `%g`, relative under `data_dir`.
    #[serde(default)]
    pub extra_info_file: Option<String>,
    /// The same from DCSS's `<name>.where` file (`xl`, `char` and `place`
    /// shown as `L3 MiFi, D:4`).
    #[serde(default)]
    pub where_file: Option<String>,
    /// Actions the server runs when a player registers, before their game
    /// starts and after it ends (dgamelaunch's `commands[...]`).
    #[serde(default)]
    pub hooks: crate::game::hooks::Hooks,
    /// Files and directories of the game served read-only at
    /// `GET /files/GAME_ID/NAME[/sub/path]` (with `Range`): `NAME: PATH`,
    /// `%d` and `%g` in the path, relative paths under `data_dir`.
    #[serde(default)]
    pub published: BTreeMap<String, String>,
    /// Where dgamelaunch-style in-progress files of this game go (for bots):
    /// `NAME:YYYY-MM-DD.HH:MM:SS.ttyrec` holding `pid\nrows\ncols\n`,
    /// `fcntl`-locked while the game runs (relative: under `data_dir`).
    #[serde(default)]
    pub inprogress_dir: Option<PathBuf>,
}

/// `games[].sandbox`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sandbox {
    /// The game sees what its account may see.
    #[default]
    None,
    /// bubblewrap (`/usr/bin/bwrap`).
    Bubblewrap,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BinaryConfig {
    pub path: PathBuf,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub working_directory: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionManagement {
    pub terminal: TerminalConfig,
    pub spectating: SpectatingConfig,
    pub ttyrec: TtyrecConfig,
    /// Frames a subscriber may fall behind before it is resynced with a snapshot.
    pub queue_frames: usize,
    /// Bytes of unread frames a viewer may hold before it is resynced.
    pub queue_bytes: usize,
    /// Games running at once, in all.
    pub max_sessions: usize,
    /// Games one player may run at once (one per game in any case).
    pub max_sessions_per_user: usize,
    /// How long a game runs without a player stream before it is hung up.
    #[serde(deserialize_with = "duration")]
    pub detach_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub stop_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    /// When the server runs as root, games run as this account ("user" or
    /// "user:group"); never as root. Ignored when the server is not root.
    pub run_as: Option<String>,
    /// Resource limits every game process runs under.
    pub rlimits: Rlimits,
}

/// Limits set (with `prlimit`) on every game process; `null` leaves one as
/// the server's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rlimits {
    /// Bytes of address space (RLIMIT_AS).
    pub address_space: Option<u64>,
    /// Processes of the game's user, all games together (RLIMIT_NPROC).
    pub processes: Option<u64>,
    /// The largest file a game may write, in bytes (RLIMIT_FSIZE).
    pub file_size: Option<u64>,
    /// CPU seconds a game may use in all (RLIMIT_CPU).
    pub cpu_seconds: Option<u64>,
    /// Whether a crashing game may write a core file.
    pub core_files: bool,
}

impl Default for Rlimits {
    fn default() -> Self {
        Self {
            address_space: Some(1 << 30),
            processes: Some(4096),
            file_size: Some(256 << 20),
            cpu_seconds: Some(4 * 3600),
            core_files: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TerminalConfig {
    pub default_size: TermSize,
    pub max_size: TermSize,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpectatingConfig {
    pub enabled: bool,
    pub allow_anonymous: bool,
    pub max_spectators_per_session: usize,
    /// Spectators of one game from one address (trusted addresses excepted).
    pub max_spectators_per_address: usize,
    /// Spectators from one address over every game at once.
    pub max_spectators_per_address_total: usize,
    /// A spectator stream ends after this long without game output.
    #[serde(deserialize_with = "duration")]
    pub spectator_timeout: Duration,
    /// The games' chat.
    pub chat: ChatConfig,
}

/// `session_management.spectating.chat`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChatConfig {
    /// Anonymous spectators see the chat (they never write in it).
    pub anonymous_read: bool,
    /// Lines one user may say per 10 seconds, over every game.
    pub lines_per_10s: usize,
}

impl Default for ChatConfig {
    fn default() -> Self {
        Self {
            anonymous_read: true,
            lines_per_10s: 5,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TtyrecConfig {
    pub enabled: bool,
    pub compression: Compression,
    pub directory: PathBuf,
    pub retention_days: u32,
    /// A game's recording stops (the game goes on) past this many bytes of
    /// output.
    pub max_bytes: u64,
    /// Replays playing at once, in all and from one address.
    pub max_replays: usize,
    pub max_replays_per_address: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("{text:?} is not a duration like \"30m\": {e}"))
    })
}

fn listen_address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    resolve_listen_address(&String::deserialize(d)?).map_err(serde::de::Error::custom)
}

fn optional_listen_address<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    match Option::<String>::deserialize(d)? {
        Some(text) => resolve_listen_address(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
        None => Ok(None),
    }
}

/// `host:port` or `ip:port` (`[::1]:port`) as one address to bind: a host
/// name's first IPv4 address, else its first.
pub fn resolve_listen_address(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse() {
        return Ok(address);
    }
    let (host, port) = text
        .rsplit_once(':')
        .filter(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
        .ok_or_else(|| {
            format!("{text:?} is not an address like \"127.0.0.1:50051\" or \"localhost:50051\"")
        })?;
    let addresses: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(text)
        .map_err(|e| format!("cannot resolve {host:?} (in {text:?}): {e}"))?
        .collect();
    addresses
        .iter()
        .find(|a| a.is_ipv4())
        .or(addresses.first())
        .copied()
        .ok_or_else(|| format!("{host:?} (in {text:?}, port {port}) resolves to no address"))
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("./dgate-data")
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            grpc_listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections_per_address: 64,
            trusted_addresses: vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ],
            http_header_timeout: Duration::from_secs(15),
            grpc_max_streams_per_connection: 64,
            allowed_origins: Vec::new(),
            trusted_proxies: Vec::new(),
            metrics_listen: None,
            listen_backlog: 4096,
            tls: None,
        }
    }
}

impl Default for SshConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 2222)),
            server_id: "dgate".to_owned(),
            public_host: None,
            max_sessions: 200,
            idle_timeout: Duration::from_secs(30 * 60),
            login_grace_time: Duration::from_secs(60),
            max_startups: MaxStartups {
                start: 10,
                rate: 30,
                full: 100,
            },
            max_startups_per_address: 10,
        }
    }
}

impl Default for SessionManagement {
    fn default() -> Self {
        Self {
            terminal: TerminalConfig::default(),
            spectating: SpectatingConfig::default(),
            ttyrec: TtyrecConfig::default(),
            queue_frames: 1024,
            queue_bytes: 4 * 1024 * 1024,
            max_sessions: 500,
            max_sessions_per_user: 3,
            detach_grace: Duration::from_secs(5 * 60),
            stop_grace: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(30),
            run_as: Some("games".to_owned()),
            rlimits: Rlimits::default(),
        }
    }
}

impl Default for TerminalConfig {
    fn default() -> Self {
        Self {
            default_size: TermSize::new(80, 24),
            max_size: TermSize::new(300, 100),
        }
    }
}

impl Default for SpectatingConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            allow_anonymous: true,
            max_spectators_per_session: 50,
            max_spectators_per_address: 5,
            max_spectators_per_address_total: 20,
            spectator_timeout: Duration::from_secs(30 * 60),
            chat: ChatConfig::default(),
        }
    }
}

impl Default for TtyrecConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            compression: Compression::Gzip,
            directory: PathBuf::from("ttyrec"),
            retention_days: 7,
            max_bytes: 256 * 1024 * 1024,
            max_replays: 32,
            max_replays_per_address: 4,
        }
    }
}

impl Config {
    /// The embedded default configuration.
    pub fn embedded() -> Self {
        // The embedded text is checked by a unit test; failing here is a build defect.
        Self::from_yaml(DEFAULT_CONFIG_YAML, "(embedded default)")
            .unwrap_or_else(|e| panic!("the embedded default config is invalid: {e}"))
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_yaml(&text, &path.display().to_string())
    }

    /// Parses and checks YAML; `origin` names the source in errors.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            origin: origin.to_owned(),
            message,
        };
        let config: Config = serde_saphyr::from_str(text).map_err(|e| {
            // The snippet names the file, not the parser's `<input>`.
            invalid(
                e.to_string()
                    .replace("--> <input>:", &format!("--> {origin}:")),
            )
        })?;
        config.validate().map_err(|e| match e.value {
            // A value the types allowed: point at the first line holding it.
            Some(value) => match text.lines().position(|l| l.contains(value.as_str())) {
                Some(line) => invalid(format!("{} (line {})", e.message, line + 1)),
                None => invalid(e.message),
            },
            None => invalid(e.message),
        })?;
        Ok(config)
    }

    /// Makes every path absolute by one rule: `data_dir` against the
    /// working directory, every other relative path (`ttyrec.directory`,
    /// `server.tls`) against `data_dir`.
    pub fn resolve_paths(&mut self) -> std::io::Result<()> {
        self.data_dir = std::path::absolute(&self.data_dir)?;
        let ttyrec = &mut self.session_management.ttyrec;
        ttyrec.directory = self.data_dir.join(&ttyrec.directory);
        if let Some(tls) = &mut self.server.tls {
            tls.cert = self.data_dir.join(&tls.cert);
            tls.key = self.data_dir.join(&tls.key);
        }
        if let Some(credentials) = self.cluster.as_mut().and_then(|c| c.credentials.as_mut()) {
            *credentials = self.data_dir.join(&*credentials);
        }
        for game in &mut self.games {
            if let Some(template) = &mut game.rc_template {
                *template = self.data_dir.join(&*template);
            }
            if let Some(dir) = &mut game.inprogress_dir {
                *dir = self.data_dir.join(&*dir);
            }
        }
        Ok(())
    }

    /// Checks what the types alone cannot.
    fn validate(&self) -> Result<(), Invalid> {
        if let Some(cluster) = &self.cluster {
            let id = &cluster.node_id;
            if id.is_empty()
                || id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(Invalid {
                    message: format!(
                        "cluster.node_id {id:?} must be 1 to 64 letters, digits, '-' or '_'"
                    ),
                    value: Some(id.clone()),
                });
            }
            if cluster.nats_urls.is_empty() {
                return Err("cluster.nats_urls must name at least one NATS server".into());
            }
            if !(1..=5).contains(&cluster.account_replicas) {
                return Err(format!(
                    "cluster.account_replicas is {}: it must be 1 to 5",
                    cluster.account_replicas
                )
                .into());
            }
        }
        let terminal = &self.session_management.terminal;
        if !terminal.default_size.fits_within(terminal.max_size) {
            return Err(format!(
                "session_management.terminal.default_size {} is larger than max_size {}",
                terminal.default_size, terminal.max_size
            )
            .into());
        }
        if self.session_management.queue_frames == 0 {
            return Err("session_management.queue_frames must be at least 1".into());
        }
        if self.session_management.queue_bytes < 65_536 {
            return Err("session_management.queue_bytes must be at least 65536".into());
        }
        for (i, game) in self.games.iter().enumerate() {
            if !is_valid_id(&game.id) {
                return Err(format!(
                    "games[{i}].id {:?} must be 1-32 characters of letters, digits, '-' and '_'",
                    game.id
                )
                .into());
            }
            if self.games[..i].iter().any(|g| g.id == game.id) {
                return Err(format!("games[{i}].id {:?} is used by another game", game.id).into());
            }
            if game.extra_info_file.is_some() && game.where_file.is_some() {
                return Err(format!(
                    "games[{i}]: extra_info_file and where_file are two sources of one line; set one"
                )
                .into());
            }
            if game.rc_template.is_some() && game.rc_default.is_some() {
                return Err(format!(
                    "games[{i}]: rc_template and rc_default both say what a new rc file holds; set one"
                )
                .into());
            }
            if let Some(template) = &game.rc_template
                && !self.data_dir.join(template).is_file()
            {
                return Err(Invalid {
                    message: format!(
                        "games[{i}].rc_template: no such file {}",
                        self.data_dir.join(template).display()
                    ),
                    value: Some(template.to_string_lossy().into_owned()),
                });
            }
            let hooks = &game.hooks;
            for (moment, actions) in [
                ("register", &hooks.register),
                ("game_start", &hooks.game_start),
                ("game_end", &hooks.game_end),
            ] {
                for (at, action) in actions.iter().enumerate() {
                    if let Err(why) = action.check(&self.data_dir) {
                        return Err(Invalid {
                            message: format!("games[{i}].hooks.{moment}[{at}]: {why}"),
                            value: action.templates().first().map(|t| (*t).to_owned()),
                        });
                    }
                }
            }
            for name in game.published.keys() {
                if !is_valid_id(name) {
                    return Err(Invalid {
                        message: format!(
                            "games[{i}].published: {name:?} must be 1-32 characters of letters, digits, '-' and '_'"
                        ),
                        value: Some(name.clone()),
                    });
                }
            }
            for (field, template) in game.templates() {
                let rc_allowed = game.rc_file.is_some() && field != "rc_file";
                if let Err(unknown) = check_placeholders(template, rc_allowed) {
                    return Err(Invalid {
                        message: format!(
                            "games[{i}].{field}: unknown placeholder %{unknown} in {template:?} \
                             (known: %u the player's name, %d the data directory, %g the game's id, \
                             %r the player's rc file when rc_file is set, %% a percent sign)"
                        ),
                        value: Some(template.to_owned()),
                    });
                }
            }
            for key in game.environment.keys() {
                if key.is_empty() || key.contains(['=', '\0']) {
                    return Err(
                        format!("games[{i}].environment has an invalid name {key:?}").into(),
                    );
                }
            }
        }
        Ok(())
    }

    /// The account database's path.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("dgate.db")
    }

    /// A node's copy of the cluster's shared accounts (see
    /// `accounts::shared`), beside the single-node database it leaves alone.
    pub fn cluster_database_path(&self) -> PathBuf {
        self.data_dir.join("dgate-cluster.db")
    }

    pub fn game(&self, id: &str) -> Option<&GameConfig> {
        self.games.iter().find(|g| g.id == id)
    }
}

/// Why a config is invalid, and the value at fault when the text can be
/// searched for it (to name its line).
#[derive(Debug)]
struct Invalid {
    message: String,
    value: Option<String>,
}

impl From<String> for Invalid {
    fn from(message: String) -> Self {
        Self {
            message,
            value: None,
        }
    }
}

impl From<&str> for Invalid {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// `Err(c)` for the first `%c` that is not `%u`, `%d`, `%g`, `%%` or (when
/// `rc` is allowed) `%r`.
fn check_placeholders(template: &str, rc: bool) -> Result<(), char> {
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c == '%' {
            match chars.next() {
                Some('u' | 'd' | 'g' | '%') => {}
                Some('r') if rc => {}
                Some(other) => return Err(other),
                None => return Err(' '),
            }
        }
    }
    Ok(())
}

impl GameConfig {
    /// Every value that may hold placeholders, with the key it is under.
    fn templates(&self) -> impl Iterator<Item = (String, &str)> {
        let args = self
            .binary
            .args
            .iter()
            .map(|a| ("binary.args".to_owned(), a.as_str()));
        let working = self
            .binary
            .working_directory
            .iter()
            .map(|w| ("binary.working_directory".to_owned(), w.as_str()));
        let environment = self
            .environment
            .iter()
            .map(|(k, v)| (format!("environment.{k}"), v.as_str()));
        let writable = self
            .writable
            .iter()
            .map(|w| ("writable".to_owned(), w.as_str()));
        let rc = self
            .rc_file
            .iter()
            .map(|r| ("rc_file".to_owned(), r.as_str()))
            .chain(
                self.published
                    .iter()
                    .map(|(k, v)| (format!("published.{k}"), v.as_str())),
            )
            .chain(
                self.extra_info_file
                    .iter()
                    .map(|f| ("extra_info_file".to_owned(), f.as_str())),
            )
            .chain(
                self.where_file
                    .iter()
                    .map(|f| ("where_file".to_owned(), f.as_str())),
            )
            .chain(
                self.mail_spool
                    .iter()
                    .map(|f| ("mail_spool".to_owned(), f.as_str())),
            )
            .chain(
                [
                    ("register", &self.hooks.register),
                    ("game_start", &self.hooks.game_start),
                    ("game_end", &self.hooks.game_end),
                ]
                .into_iter()
                .flat_map(|(moment, actions)| {
                    actions.iter().flat_map(move |action| {
                        action
                            .templates()
                            .into_iter()
                            .map(move |t| (format!("hooks.{moment}"), t))
                    })
                }),
            );
        args.chain(working)
            .chain(environment)
            .chain(writable)
            .chain(rc)
    }
}

fn is_valid_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_parses_and_matches_section_defaults() {
        let config = Config::embedded();
        assert_eq!(config.server, ServerConfig::default());
        assert_eq!(config.ssh, SshConfig::default());
        assert_eq!(config.accounts, AccountsConfig::default());
        assert_eq!(config.session_management, SessionManagement::default());
        assert_eq!(config.data_dir, default_data_dir());
        let games: Vec<&str> = config.games.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(games, ["nethack", "crawl"]);
        assert!(config.games.iter().all(|g| g.rc_file.is_some()));
    }

    #[test]
    fn omitted_sections_take_their_defaults() {
        let config = Config::from_yaml("data_dir: /tmp/x\n", "t").expect("valid");
        assert_eq!(config.session_management, SessionManagement::default());
        assert!(config.games.is_empty());
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let yaml = "server:\n  grpc_listen: \"127.0.0.1:1\"\n  grpc_lissen: \"127.0.0.1:2\"\n";
        let err = Config::from_yaml(yaml, "t")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("grpc_lissen"), "{err}");
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn the_cluster_section_is_optional_and_checked() {
        assert_eq!(Config::embedded().cluster, None);
        let yaml = "data_dir: /d\ncluster:\n  node_id: eu-1\n  nats_urls: [\"nats://127.0.0.1:4222\"]\n  credentials: n.creds\n";
        let mut config = Config::from_yaml(yaml, "t").expect("a cluster");
        config.resolve_paths().expect("paths");
        let cluster = config.cluster.expect("the section");
        assert_eq!(cluster.node_id, "eu-1");
        assert_eq!(cluster.nats_urls, ["nats://127.0.0.1:4222"]);
        assert_eq!(cluster.credentials, Some(PathBuf::from("/d/n.creds")));
        assert_eq!(cluster.mirror_linger, Duration::from_secs(30));
        assert_eq!(cluster.account_replicas, 3);
        let bad = "cluster:\n  node_id: \"eu.1\"\n  nats_urls: [\"nats://h\"]\n";
        let err = Config::from_yaml(bad, "t").expect_err("a dot").to_string();
        assert!(err.contains("node_id") && err.contains("line 2"), "{err}");
        let none = "cluster:\n  node_id: a\n  nats_urls: []\n";
        assert!(Config::from_yaml(none, "t").is_err());
    }

    #[test]
    fn errors_name_the_file_and_say_things_once() {
        let err = Config::load(Path::new("/nonexistent/dgate.yaml")).expect_err("missing");
        let text = format!("{:#}", anyhow::Error::from(err));
        assert_eq!(text.matches("No such file").count(), 1, "{text}");
        assert!(text.contains("/nonexistent/dgate.yaml"), "{text}");

        let err = Config::from_yaml("server:\n  grpc_lissen: x\n", "my.yaml")
            .expect_err("unknown key")
            .to_string();
        assert!(err.contains("--> my.yaml:2:3"), "{err}");
        assert!(!err.contains("<input>"), "{err}");
    }

    #[test]
    fn an_unknown_placeholder_is_refused_with_its_line() {
        let yaml = "games:\n  - id: a\n    name: A\n    short_name: A\n    binary:\n      path: /bin/true\n      args: [\"-u\", \"%n\"]\n";
        let err = Config::from_yaml(yaml, "t").expect_err("%n").to_string();
        assert!(err.contains("games[0].binary.args"), "{err}");
        assert!(err.contains("%n"), "{err}");
        assert!(err.contains("line 7"), "{err}");
        let yaml = "games:\n  - id: a\n    name: A\n    short_name: A\n    binary: {path: /bin/true}\n    environment: {HOME: \"%d/users/%u\", RATE: \"100%%\"}\n";
        Config::from_yaml(yaml, "t").expect("%d, %u and %% are known");
    }

    #[test]
    fn rc_files_need_their_template_and_percent_r_needs_an_rc_file() {
        let game =
            "games:\n  - id: a\n    name: A\n    short_name: A\n    binary: {path: /bin/true}\n";
        let yaml = format!("{game}    rc_file: \"%d/rc/%u\"\n    rc_template: /nonexistent/rc\n");
        let err = Config::from_yaml(&yaml, "t")
            .expect_err("missing")
            .to_string();
        assert!(
            err.contains("rc_template: no such file /nonexistent/rc"),
            "{err}"
        );
        assert!(err.contains("line 7"), "{err}");
        let yaml = format!("{game}    environment: {{NETHACKOPTIONS: \"@%r\"}}\n");
        let err = Config::from_yaml(&yaml, "t").expect_err("%r").to_string();
        assert!(err.contains("%r"), "{err}");
        let yaml = format!(
            "{game}    rc_file: \"%d/rc/%g/%u\"\n    environment: {{NETHACKOPTIONS: \"@%r\"}}\n"
        );
        Config::from_yaml(&yaml, "t").expect("%r with an rc file, no template");
    }

    #[test]
    fn listen_addresses_may_be_host_names() {
        let config = Config::from_yaml("server:\n  grpc_listen: \"localhost:51051\"\n", "t")
            .expect("localhost resolves");
        assert_eq!(config.server.grpc_listen.port(), 51051);
        assert!(config.server.grpc_listen.ip().is_loopback());
        assert!(resolve_listen_address("[::1]:22").is_ok());
        let err = resolve_listen_address("localhost").expect_err("no port");
        assert!(err.contains("localhost:50051"), "{err}");
    }

    #[test]
    fn relative_paths_are_under_the_data_dir() {
        let mut config = Config::from_yaml(
            "data_dir: /srv/dgate\nserver:\n  tls: {cert: tls/cert.pem, key: /etc/key.pem}\n",
            "t",
        )
        .expect("valid");
        config.resolve_paths().expect("resolved");
        assert_eq!(
            config.session_management.ttyrec.directory,
            Path::new("/srv/dgate/ttyrec")
        );
        let tls = config.server.tls.expect("tls");
        assert_eq!(tls.cert, Path::new("/srv/dgate/tls/cert.pem"));
        assert_eq!(tls.key, Path::new("/etc/key.pem"));
    }

    #[test]
    fn bad_value_is_named_with_its_line() {
        let yaml = "session_management:\n  terminal:\n    default_size: \"80by24\"\n";
        let err = Config::from_yaml(yaml, "t")
            .expect_err("bad size")
            .to_string();
        assert!(err.contains("80by24"), "{err}");
        assert!(err.contains("line 3"), "{err}");

        let yaml = "session_management:\n  spectating:\n    spectator_timeout: soon\n";
        let err = Config::from_yaml(yaml, "t")
            .expect_err("bad duration")
            .to_string();
        assert!(err.contains("soon") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn duplicate_game_ids_and_bad_sizes_are_rejected() {
        let game = "  - id: a\n    name: A\n    short_name: A\n    binary: { path: /bin/true }\n";
        let err = Config::from_yaml(&format!("games:\n{game}{game}"), "t").expect_err("dup");
        assert!(err.to_string().contains("games[1].id"), "{err}");
        let yaml = "session_management:\n  terminal: { default_size: 400x24, max_size: 300x100 }\n";
        assert!(Config::from_yaml(yaml, "t").is_err());
    }

    #[test]
    fn term_size_parses() {
        assert_eq!("80x24".parse::<TermSize>(), Ok(TermSize::new(80, 24)));
        assert!("0x24".parse::<TermSize>().is_err());
        assert!("80x".parse::<TermSize>().is_err());
        assert!(TermSize::new(300, 100).fits_within(TermSize::new(300, 100)));
        assert!(!TermSize::new(301, 100).fits_within(TermSize::new(300, 100)));
    }
}
