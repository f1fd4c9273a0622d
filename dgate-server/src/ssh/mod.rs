//! The SSH front end: `ssh -p 2222 host` registers, logs in, plays and watches
//! with nothing but an ssh client, as public NetHack servers always allowed.
//!
//! This file is the russh side: the host key (ed25519, generated once and kept
//! in the data directory, mode 0600), authentication (no password: the
//! anonymous menu; an account's password, by password or keyboard-interactive,
//! or one of its public keys: logged in; failures count against the same login
//! limit as gRPC logins, and a client over it is told why by
//! keyboard-interactive), and one session channel per connection, handed to
//! [`connection`], which runs the menus, watching and playing.

mod accounts;
mod banners;
mod closable;
mod connection;
mod fence;
mod options;
mod output;
mod play;
mod startups;
mod talk;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use russh::keys::PrivateKey;
use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId, MethodKind, MethodSet};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::accounts::{AccountStore, LiveUsers, LoginError, Logins, User};
use crate::game::SessionManager;
use crate::limits::{AddressLimiter, LogOnce};
use crate::metrics::Refusal;
use startups::{Startup, Startups};

pub use banners::Banners;
pub use connection::clamp_size;

/// What every connection shares.
#[derive(Clone)]
pub struct SshFront {
    pub manager: SessionManager,
    pub accounts: Arc<AccountStore>,
    pub logins: Arc<Logins>,
    /// Live sessions end when their account is banned or its password changes.
    pub live: Arc<LiveUsers>,
    pub banners: Arc<Banners>,
    /// One per connection being served; `ssh.max_sessions` of them.
    permits: Arc<Semaphore>,
    addresses: AddressLimiter,
    host_key: PrivateKey,
    refusals_logged: Arc<LogOnce>,
}

impl SshFront {
    pub fn new(
        manager: SessionManager,
        logins: Arc<Logins>,
        live: Arc<LiveUsers>,
        addresses: AddressLimiter,
    ) -> anyhow::Result<Self> {
        let config = manager.config();
        let banners = Banners::load(&config.menu.banners, &config.ssh.server_id)?;
        let permits = Arc::new(Semaphore::new(config.ssh.max_sessions));
        let host_key = host_key(&config.data_dir.join("ssh_host_ed25519_key"))?;
        info!(fingerprint = %host_key.public_key().fingerprint(russh::keys::HashAlg::Sha256), "SSH host key");
        Ok(Self {
            manager,
            accounts: Arc::clone(logins.store()),
            logins,
            live,
            banners: Arc::new(banners),
            permits,
            addresses,
            host_key,
            refusals_logged: Arc::default(),
        })
    }
}

/// The host key at `path`, generated (and written with mode 0600) on first use.
pub fn host_key(path: &Path) -> anyhow::Result<PrivateKey> {
    if path.exists() {
        return PrivateKey::read_openssh_file(path)
            .with_context(|| format!("reading the SSH host key {}", path.display()));
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness for a host key: {e}"))?;
    let keypair = russh::keys::ssh_key::private::Ed25519Keypair::from_seed(&seed);
    let mut key = PrivateKey::from(keypair);
    key.set_comment("dgate host key");
    let text = key
        .to_openssh(russh::keys::ssh_key::LineEnding::LF)
        .context("encoding the host key")?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    write_private(path, text.as_bytes())
        .with_context(|| format!("writing the SSH host key {}", path.display()))?;
    info!(path = %path.display(), "generated a new SSH host key");
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

/// Serves SSH on `listener` until `stop`.
///
/// The accept loop is dgate's own, not russh's, so that each connection is
/// limited before any SSH work is done for it: [`startups::Startups`] (as
/// OpenSSH's `MaxStartups`) and `ssh.login_grace_time` from the first byte
/// to logged in. An accept error (out of file descriptors) is waited out,
/// never fatal.
pub async fn serve(
    front: SshFront,
    listener: TcpListener,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let russh_config = Arc::new(russh::server::Config {
        keys: vec![front.host_key.clone()],
        methods: MethodSet::from(
            &[
                MethodKind::None,
                MethodKind::Password,
                MethodKind::PublicKey,
                MethodKind::KeyboardInteractive,
            ][..],
        ),
        auth_rejection_time: Duration::from_secs(1),
        auth_rejection_time_initial: Some(Duration::ZERO),
        // Idle menus are closed by the connection itself; games are never idle-closed.
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        nodelay: true,
        ..Default::default()
    });
    let ssh = &front.manager.config().ssh;
    let startups = Startups::new(
        ssh.max_startups,
        ssh.max_startups_per_address,
        front.addresses.trusted().clone(),
    );
    let connections = tokio_util::task::TaskTracker::new();
    let mut listener = crate::proxy_protocol::Acceptor::new(
        listener,
        "SSH",
        crate::limits::Trusted::new(&front.manager.config().server.trusted_proxies),
    );
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let Some(startup) = startups.admit(peer.ip(), startups::chance()) else {
            front.manager.metrics().refused(Refusal::SshStartups);
            if front.refusals_logged.should_log(peer.ip()) {
                info!(%peer, "SSH connection dropped: too many connections are logging in");
            }
            // Lines before the version are allowed (RFC 4253, 4.2): say why.
            let _ = socket.try_write(b"Too many connections are logging in; try again soon.\r\n");
            continue;
        };
        let _ = socket.set_nodelay(true);
        connections.spawn(connection(
            front.clone(),
            Arc::clone(&russh_config),
            socket,
            peer,
            startup,
            stop.clone(),
        ));
    }
    connections.close();
    // Connections end themselves on `stop`; a stuck one is not waited for long.
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
    Ok(())
}

/// One SSH connection: the handshake, login and shell within the grace
/// time, then the session until its channel ends or the server stops. The
/// connection's places (its address's slot, and its startup place until the
/// channel opens) are held here, whatever the client does; when it ends,
/// the socket is cut, so russh's session task cannot outlive it.
async fn connection(
    front: SshFront,
    config: Arc<russh::server::Config>,
    socket: TcpStream,
    peer: SocketAddr,
    startup: Startup,
    stop: CancellationToken,
) {
    let metrics = Arc::clone(front.manager.metrics());
    metrics.ssh_connections.inc();
    let grace = front.manager.config().ssh.login_grace_time;
    let deadline = tokio::time::Instant::now() + grace;
    let slot = front.addresses.admit(peer.ip());
    let over_limit = slot.is_none();
    let (opened, mut channel_opened) = tokio::sync::oneshot::channel();
    let finished = CancellationToken::new();
    let handler = Handler {
        front: front.clone(),
        peer: Some(peer),
        local: socket.local_addr().ok(),
        user: None,
        told_refusal: false,
        opened: false,
        over_limit,
        channel_opened: Some(opened),
        finished: finished.clone(),
    };
    let kill = CancellationToken::new();
    let socket = closable::Closable::new(socket, &kill);
    // However this returns, the socket is cut (and russh's task ends with it).
    let _cut = kill.clone().drop_guard();
    let running = tokio::select! {
        started = tokio::time::timeout_at(deadline, russh::server::run_stream(config, socket, handler)) => started,
        () = stop.cancelled() => return,
    };
    let session = match running {
        Ok(Ok(session)) => session,
        Ok(Err(e)) => return report(&e),
        Err(_) => {
            // No version line or key exchange within the grace time.
            return front.grace_expired(peer);
        }
    };
    let handle = session.handle();
    tokio::pin!(session);
    let end = tokio::select! {
        ended = &mut session => Some(ended),
        _ = &mut channel_opened => None,
        () = tokio::time::sleep_until(deadline) => {
            front.grace_expired(peer);
            return goodbye(&handle, session, "login grace time exceeded").await;
        }
        () = stop.cancelled() => return goodbye(&handle, session, SHUTTING_DOWN).await,
    };
    // In a session now: no longer a startup.
    drop(startup);
    let ended = match end {
        Some(ended) => ended,
        None => tokio::select! {
            ended = &mut session => ended,
            () = finished.cancelled() => {
                // The channel has closed: a client closes the connection
                // itself (OpenSSH then exits with the channel's status);
                // one that does not is told goodbye and cut.
                match tokio::time::timeout(LINGER, &mut session).await {
                    Ok(ended) => ended,
                    Err(_) => return goodbye(&handle, session, "goodbye").await,
                }
            }
            () = stop.cancelled() => return goodbye(&handle, session, SHUTTING_DOWN).await,
        },
    };
    drop(slot);
    if let Err(e) = ended {
        report(&e);
    }
}

/// How long a session has, after the server says goodbye, to send what it
/// has queued before its socket is cut.
const LINGER: Duration = Duration::from_secs(2);

const SHUTTING_DOWN: &str = "the server is shutting down";

/// Tells the client why the session ends and gives it [`LINGER`] to take
/// what is queued; the caller then cuts the socket.
async fn goodbye<F: std::future::Future>(
    handle: &russh::server::Handle,
    session: std::pin::Pin<&mut F>,
    why: &str,
) {
    let sent = handle.disconnect(russh::Disconnect::ByApplication, why.into(), String::new());
    let _ = tokio::time::timeout(Duration::from_secs(5), sent).await;
    let _ = tokio::time::timeout(LINGER, session).await;
}

fn report(error: &anyhow::Error) {
    if is_hang_up(error) {
        debug!(error = %error, "SSH client went away");
    } else {
        warn!(error = %error, "SSH connection failed");
    }
}

impl SshFront {
    fn grace_expired(&self, peer: SocketAddr) {
        self.manager.metrics().refused(Refusal::SshLoginGrace);
        if self.refusals_logged.should_log(peer.ip()) {
            info!(%peer, "SSH connection closed: not logged in within the login grace time");
        }
    }
}

/// A client that closed its connection without saying goodbye (killed,
/// network gone): ordinary, not a fault of the server's.
fn is_hang_up(error: &anyhow::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    error.chain().any(|cause| {
        let io = match cause.downcast_ref::<russh::Error>() {
            Some(russh::Error::Disconnect | russh::Error::HUP) => return true,
            Some(russh::Error::IO(io)) => io,
            _ => match cause.downcast_ref::<std::io::Error>() {
                Some(io) => io,
                None => return false,
            },
        };
        matches!(
            io.kind(),
            UnexpectedEof | ConnectionReset | BrokenPipe | ConnectionAborted
        )
    })
}

/// One connection's russh callbacks: authentication, then the channel.
pub struct Handler {
    front: SshFront,
    peer: Option<SocketAddr>,
    /// The address the client connected to (the host in the `ssh` command
    /// the menus show, unless `ssh.public_host` names one).
    local: Option<SocketAddr>,
    /// Set by a successful password or key login.
    user: Option<User>,
    /// Keyboard-interactive has just told the client why its logins are
    /// refused: its answer ends the attempt.
    told_refusal: bool,
    /// One session channel per connection.
    opened: bool,
    /// The address has its maximum of connections: the channel says so and ends.
    over_limit: bool,
    /// Told when the channel opens: the grace time and the startup limit
    /// end there.
    channel_opened: Option<tokio::sync::oneshot::Sender<()>>,
    /// Cancelled when the channel's connection ends: the session is closed.
    finished: CancellationToken,
}

fn ask_for_credentials() -> Auth {
    Auth::Reject {
        proceed_with_methods: Some(MethodSet::from(
            &[
                MethodKind::PublicKey,
                MethodKind::KeyboardInteractive,
                MethodKind::Password,
            ][..],
        )),
        partial_success: false,
    }
}

impl Handler {
    /// The account named `username`, if there is one.
    async fn account_exists(&self, username: &str) -> bool {
        let (store, name) = (Arc::clone(&self.front.accounts), username.to_owned());
        tokio::task::spawn_blocking(move || store.user(&name).is_ok())
            .await
            .unwrap_or(false)
    }

    async fn check_password(&mut self, username: &str, password: String) -> Result<(), LoginError> {
        let peer = self.peer.map(|p| p.ip());
        // Refusals and failures are counted and logged by `Logins`.
        let user = self
            .front
            .logins
            .check_password(username, password.into_bytes(), peer, "ssh")
            .await?;
        info!(username = %user.username, "logged in over SSH");
        self.user = Some(user);
        Ok(())
    }

    /// A keyboard-interactive round with no prompts and `why` as its
    /// instruction, which OpenSSH prints; the client's empty answer ends the
    /// attempt ([`Handler::told_refusal`]).
    fn tell_refusal(&mut self, why: &LoginError) -> Auth {
        self.told_refusal = true;
        Auth::Partial {
            name: String::new().into(),
            instructions: why.to_string().into(),
            prompts: Vec::new().into(),
        }
    }

    async fn key_user(&self, username: &str, key: &russh::keys::PublicKey) -> Option<User> {
        let (store, name, key) = (
            Arc::clone(&self.front.accounts),
            username.to_owned(),
            key.clone(),
        );
        tokio::task::spawn_blocking(move || store.user_with_key(&name, &key).ok())
            .await
            .ok()
            .flatten()
    }
}

impl russh::server::Handler for Handler {
    type Error = anyhow::Error;

    /// No password: the anonymous menu, unless the name is an account's (then
    /// its password or key is asked for).
    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        if self.account_exists(user).await {
            Ok(ask_for_credentials())
        } else {
            Ok(Auth::Accept)
        }
    }

    /// The password method has no way to say why it refuses: a client
    /// refused for too many failures learns it by keyboard-interactive.
    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        Ok(match self.check_password(user, password.to_owned()).await {
            Ok(()) => Auth::Accept,
            Err(_) => ask_for_credentials(),
        })
    }

    /// Asks for the password, unless the login limit refuses the name from
    /// this address now: then the client is told why (and for how long)
    /// instead of asked, and left only its keys.
    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<russh::server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let Some(mut response) = response else {
            let peer = self.peer.map(|p| p.ip());
            if let Err(refused) = self.front.logins.refused_now(user, peer, "ssh") {
                return Ok(self.tell_refusal(&refused));
            }
            return Ok(Auth::Partial {
                name: "dgate".into(),
                instructions: String::new().into(),
                prompts: vec![("Password: ".into(), false)].into(),
            });
        };
        if std::mem::take(&mut self.told_refusal) {
            // Keys are not counted by the login limit; passwords wait.
            return Ok(Auth::Reject {
                proceed_with_methods: Some(MethodSet::from(&[MethodKind::PublicKey][..])),
                partial_success: false,
            });
        }
        let password = response
            .next()
            .map(|b| String::from_utf8_lossy(&b[..]).into_owned())
            .unwrap_or_default();
        Ok(match self.check_password(user, password).await {
            Ok(()) => Auth::Accept,
            Err(refused @ LoginError::TooManyFailures { .. }) => self.tell_refusal(&refused),
            Err(_) => ask_for_credentials(),
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        Ok(match self.key_user(user, offer.public_key).await {
            Some(_) => Auth::Accept,
            None => ask_for_credentials(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.key_user(user, key.public_key).await {
            Some(account) => {
                info!(username = %account.username, "logged in over SSH with a public key");
                self.user = Some(account);
                Ok(Auth::Accept)
            }
            None => Ok(ask_for_credentials()),
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if std::mem::replace(&mut self.opened, true) {
            reply
                .reject(russh::ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        reply.accept().await;
        if let Some(opened) = self.channel_opened.take() {
            let _ = opened.send(());
        }
        let admission = if self.over_limit {
            Err(format!(
                "Too many connections from your address (at most {}).",
                self.front.addresses.max()
            ))
        } else {
            Arc::clone(&self.front.permits)
                .try_acquire_owned()
                .map_err(|_| {
                    format!(
                        "This server is full ({} connections). Please try again later.",
                        self.front.manager.config().ssh.max_sessions
                    )
                })
        };
        let (front, user) = (self.front.clone(), self.user.clone());
        let (peer, local) = (self.peer, self.local);
        let finished = self.finished.clone();
        tokio::spawn(async move {
            connection::run(front, channel, user, peer, local, admission).await;
            finished.cancel();
        });
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _cols: u32,
        _rows: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)?;
        Ok(())
    }

    /// `ssh host command`: there are no commands, only the menus.
    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        Ok(())
    }
}
