//! dgate-server: runs console games in PTYs and broadcasts each game's terminal
//! to its player and every spectator.
//!
//! `run` takes bound listeners and a shutdown future; the binary binds the
//! configured addresses, tests bind `127.0.0.1:0`.
//!
//! The layers, from the game outwards (a module never imports one above it
//! in this list that imports it back):
//! - [`broadcast`]: the hub (one ordered pipeline per game) and the
//!   spectator registry;
//! - [`game`]: running games (PTY, session, manager, recorder, recordings);
//! - [`viewing`]: every viewer's life (admission, subscription, counting,
//!   cleanup; the player's lease and input);
//! - the front ends, which only encode: [`grpc`], [`ssh`], [`web`] (with
//!   [`http`]);
//! - beside them: [`accounts`], [`config`], [`limits`], [`metrics`];
//! - [`cluster`]: with a `cluster` section, this node's relays, mirrors and
//!   directory on NATS (it implements `game::RemoteGames`).

pub mod accounts;
pub mod broadcast;
pub mod cluster;
pub mod config;
pub mod game;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod proxy_protocol;
pub mod ssh;
pub mod tls;
pub mod viewing;
pub mod web;

use std::future::Future;
use std::sync::Arc;

use accounts::{AccountStore, LiveUsers, LoginLimiter, Logins};
use anyhow::Context;
use dgate_proto::auth::auth_service_server::AuthServiceServer;
use dgate_proto::pb::game_service_server::GameServiceServer;
use grpc::auth::{AuthServiceImpl, Authenticator};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::Config;
pub use game::SessionManager;

/// The server's bound sockets.
#[derive(Debug)]
pub struct Listeners {
    pub grpc: TcpListener,
    pub http: TcpListener,
    /// `None` when SSH is disabled.
    pub ssh: Option<TcpListener>,
    /// `/metrics` alone (`server.metrics_listen`); `None`: on `http`.
    pub metrics: Option<TcpListener>,
}

/// Serves until `shutdown` resolves, then hangs up every game (so NetHack
/// saves), waits for them, and stops the listeners.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    metrics::count_panics();
    serve(SessionManager::new(Arc::new(config)), listeners, shutdown).await
}

/// `run`, with a manager the caller keeps (tests inspect sessions through it).
pub async fn serve(
    manager: SessionManager,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let config = manager.config();
    // A server running as root must know whom each game runs as, before it
    // serves anyone.
    for game in &config.games {
        let run_as = game::pty::RunAs::for_game(game, config.session_management.run_as.as_deref())
            .map_err(anyhow::Error::msg)?;
        if let Some(run_as) = run_as {
            info!(game = %game.id, user = %run_as.name, uid = run_as.uid, "games run as");
        }
    }
    if !config.games.is_empty() && !nix::unistd::geteuid().is_root() {
        tracing::warn!(
            "games run as the server's own user, so a game's shell escape could read \
             the account database and the host key; for isolation start the server as \
             root with session_management.run_as (see docs/SECURITY.md)"
        );
    }
    // TLS files are read before anything listens: a bad one stops the start.
    let tls = tls::Tls::from_config(config)?;
    // A node of a cluster relays its games and sees the others' before it
    // serves anyone.
    let cluster = match &config.cluster {
        Some(c) => Some(cluster::Cluster::start(&manager, c, stop.clone()).await?),
        None => None,
    };
    let store = match (&config.cluster, &cluster) {
        (Some(settings), Some(cluster)) => {
            open_shared_accounts(config, settings, cluster.client(), stop.clone()).await?
        }
        _ => {
            let database = config.database_path();
            let store = AccountStore::open(&database, config.accounts.token_lifetime)
                .with_context(|| format!("opening the account database {}", database.display()))?;
            Arc::new(store)
        }
    };
    // Live sessions end when their account is banned or its password changes.
    let live = Arc::new(LiveUsers::default());
    let auth = Authenticator::new(Arc::clone(&store), Arc::clone(&live));
    // Connections per address count gRPC, SSH and HTTP together.
    // Proxies carry many clients: their connections are not capped either.
    let trusted = limits::Trusted::new(
        &[
            config.server.trusted_addresses.as_slice(),
            config.server.trusted_proxies.as_slice(),
        ]
        .concat(),
    );
    let addresses = limits::AddressLimiter::new(config.server.max_connections_per_address, trusted);
    // Password work counts against one set of limits, over gRPC and SSH alike.
    let logins = Arc::new(Logins::new(
        Arc::clone(&store),
        LoginLimiter::new(&config.accounts),
        Arc::clone(manager.metrics()),
    ));
    // The SSH front end is ready (host key and banners read) before anything listens.
    let ssh = match listeners.ssh {
        Some(listener) => {
            let front = ssh::SshFront::new(
                manager.clone(),
                Arc::clone(&logins),
                Arc::clone(&live),
                addresses.clone(),
            )?;
            Some((front, listener))
        }
        None => None,
    };
    let ssh_address = match &ssh {
        Some((_, listener)) => listener.local_addr()?.to_string(),
        None => "off".to_owned(),
    };
    info!(grpc = %listeners.grpc.local_addr()?, http = %listeners.http.local_addr()?,
          ssh = %ssh_address, tls = tls.is_some(), "dgate-server listening");

    // Browsers log in with a cookie holding the same tokens.
    let web_accounts = web::accounts::Accounts {
        auth: auth.clone(),
        logins: Arc::clone(&logins),
        secure: tls.is_some(),
    };
    let games = GameServiceServer::new(grpc::GameServiceImpl::new(manager.clone(), auth.clone()))
        .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES);
    let accounts = AuthServiceServer::new(AuthServiceImpl::new(
        auth,
        Arc::clone(&logins),
        manager.clone(),
    ))
    .max_decoding_message_size(grpc::MAX_MESSAGE_BYTES);
    let mut grpc = tonic::transport::Server::builder();
    if let Some(tls) = &tls {
        grpc = grpc
            .tls_config(grpc::tls_config(tls))
            .context("TLS for gRPC")?;
    }
    let grpc = grpc
        .max_concurrent_streams(Some(config.server.grpc_max_streams_per_connection))
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(std::time::Duration::from_secs(20)))
        .add_service(games)
        .add_service(accounts)
        .serve_with_incoming_shutdown(
            grpc::incoming::incoming(
                proxy_protocol::Acceptor::new(
                    listeners.grpc,
                    "gRPC",
                    limits::Trusted::new(&config.server.trusted_proxies),
                ),
                addresses.clone(),
                Arc::clone(manager.metrics()),
            ),
            stop.clone().cancelled_owned(),
        );
    let metrics_apart = listeners.metrics.is_some();
    let http = http::serve(
        manager.clone(),
        listeners.http,
        http::router(manager.clone(), web_accounts, !metrics_apart),
        addresses.clone(),
        tls.as_ref().map(|tls| tls.http.clone()),
        stop.clone(),
    );
    let metrics = listeners.metrics.map(|listener| {
        tokio::spawn(http::serve(
            manager.clone(),
            listener,
            http::metrics_router(manager.clone()),
            addresses.clone(),
            tls.as_ref().map(|tls| tls.http.clone()),
            stop.clone(),
        ))
    });
    let grpc = tokio::spawn(grpc);
    let http = tokio::spawn(http);
    let retention = tokio::spawn(sweep_recordings(manager.clone(), stop.clone()));
    let announcements = tokio::spawn(game::messages::deliver_queued(
        manager.clone(),
        stop.clone(),
    ));
    let account_changes = tokio::spawn(Arc::clone(&live).run(Arc::clone(&store), stop.clone()));
    let ssh = ssh.map(|(front, listener)| tokio::spawn(ssh::serve(front, listener, stop.clone())));

    shutdown.await;
    info!("shutting down: hanging up every game");
    manager.shutdown().await;
    stop.cancel();
    if let Some(cluster) = &cluster {
        cluster.stopped().await;
    }
    let _ = retention.await;
    let _ = announcements.await;
    let _ = account_changes.await;
    grpc.await
        .context("gRPC server task")?
        .context("gRPC server")?;
    http.await.context("HTTP server task")?;
    if let Some(metrics) = metrics {
        metrics.await.context("metrics server task")?;
    }
    if let Some(ssh) = ssh {
        ssh.await
            .context("SSH server task")?
            .context("SSH server")?;
    }
    info!("shutdown complete");
    Ok(())
}

/// A node's accounts: its copy of the cluster's (`dgate-cluster.db`),
/// following the shared store from now on. The node waits a while for the
/// copy to catch up; when the store is out of reach it starts anyway and
/// answers logins from the copy it has.
pub async fn open_shared_accounts(
    config: &Config,
    settings: &config::ClusterConfig,
    client: async_nats::Client,
    stop: CancellationToken,
) -> anyhow::Result<Arc<AccountStore>> {
    let shared = accounts::SharedAccounts::new(
        client,
        settings.account_replicas,
        config.accounts.token_lifetime,
    );
    shared.check().await?;
    let database = config.cluster_database_path();
    let store = AccountStore::open_shared(
        &database,
        config.accounts.token_lifetime,
        Arc::clone(&shared),
    )
    .with_context(|| format!("opening the account copy {}", database.display()))?;
    let store = Arc::new(store);
    shared.follow(Arc::clone(&store), stop);
    if !shared.synced(std::time::Duration::from_secs(10)).await {
        tracing::warn!(
            "the cluster's shared accounts are out of reach: logins are checked against \
             this node's copy, and changes wait until the store answers"
        );
    }
    Ok(store)
}

/// Deletes recordings older than `ttyrec.retention_days`, at start and hourly.
async fn sweep_recordings(manager: SessionManager, stop: CancellationToken) {
    let ttyrec = manager.config().session_management.ttyrec.clone();
    if !ttyrec.enabled {
        return;
    }
    let mut hourly = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tokio::select! {
            _ = hourly.tick() => {}
            () = stop.cancelled() => return,
        }
        let (directory, days) = (ttyrec.directory.clone(), ttyrec.retention_days);
        let swept = tokio::task::spawn_blocking(move || {
            game::recorder::sweep(&directory, days, std::time::SystemTime::now())
        })
        .await;
        match swept {
            Ok(Ok(removed)) => {
                for path in &removed {
                    info!(path = %path.display(), "deleted an expired recording");
                }
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot sweep old recordings"),
            Err(e) => tracing::warn!(error = %e, "the recording sweep failed"),
        }
    }
}
