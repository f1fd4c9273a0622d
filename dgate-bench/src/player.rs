//! A game's player: an account registered (or logged in) on the games'
//! node, the firehose started and its stream followed as any viewer's is,
//! its chat lines (`run --chat`), and the game stopped at the end.

use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use dgate_proto::auth::auth_service_client::AuthServiceClient;
use dgate_proto::pb::game_service_client::GameServiceClient;
use dgate_proto::{auth as auth_pb, pb};
use tokio_util::sync::CancellationToken;

use crate::server::Target;
use crate::viewer::{self, GrpcSource};

/// A player: an account, a started game and its stream.
pub(crate) struct Player {
    pub session_id: String,
    pub username: String,
    pub token: String,
    pub stream: GrpcSource,
}

/// Player `index` (registered unless it exists) starts `game_id`.
pub(crate) async fn start_player(
    grpc: std::net::SocketAddr,
    game_id: &str,
    index: usize,
    size: dgate_term::TermSize,
) -> anyhow::Result<Player> {
    let channel = viewer::channel(grpc).await?;
    let mut auth = AuthServiceClient::new(channel.clone());
    let username = format!("bench{}x{index}", std::process::id());
    let password = format!("dgate-bench password {index}").into_bytes();
    // A node of a cluster with shared accounts takes them once it reaches
    // the store: until then it says UNAVAILABLE.
    let deadline = Instant::now() + Duration::from_secs(30);
    let registered = loop {
        let registered = auth
            .register(auth_pb::RegisterRequest {
                username: username.clone(),
                password: password.clone().into(),
                email: String::new(),
            })
            .await;
        match registered {
            Err(status)
                if status.code() == tonic::Code::Unavailable && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            registered => break registered,
        }
    };
    // The same player may start one game after another.
    if let Err(status) = registered
        && status.code() != tonic::Code::AlreadyExists
    {
        bail!("register {username}: {}", status.message());
    }
    let token = auth
        .login(auth_pb::LoginRequest {
            username: username.clone(),
            password: password.into(),
        })
        .await
        .map_err(|s| anyhow!("log in {username}: {}", s.message()))?
        .into_inner()
        .token;
    let mut games = GameServiceClient::new(channel.clone());
    let request = pb::StartGameSessionRequest {
        game_id: game_id.to_owned(),
        terminal_size: Some(pb::TerminalSize {
            width: u32::from(size.cols),
            height: u32::from(size.rows),
        }),
        ..Default::default()
    };
    let session = games
        .start_game_session(viewer::authed(request, Some(&token)))
        .await
        .map_err(|s| anyhow!("start {game_id}: {}", s.message()))?
        .into_inner()
        .session
        .context("StartGameSession returned no session")?;
    let stream = GrpcSource::player(channel, &session.id, &token).await?;
    Ok(Player {
        session_id: session.id,
        username,
        token,
        stream,
    })
}

pub(crate) async fn stop_game(
    target: &Target,
    session_id: &str,
    token: &str,
) -> anyhow::Result<()> {
    let mut games = GameServiceClient::new(viewer::channel(target.grpc).await?);
    let request = pb::StopGameSessionRequest {
        session_id: session_id.into(),
        reason: "dgate-bench is done".into(),
        force: false,
    };
    games
        .stop_game_session(viewer::authed(request, Some(token)))
        .await
        .map_err(|s| anyhow!("stop {session_id}: {}", s.message()))?;
    Ok(())
}

/// Says a numbered line in the player's game's chat `rate` times a second
/// until `stop`; returns how many it said.
pub(crate) async fn chatter(
    input: tokio::sync::mpsc::Sender<pb::GameIoRequest>,
    rate: f64,
    stop: CancellationToken,
) -> u64 {
    let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            () = stop.cancelled() => return sent,
        }
        let line = pb::GameIoRequest {
            request: Some(pb::game_io_request::Request::Chat(pb::ChatSend {
                text: format!("dgate-bench line {}", sent + 1),
            })),
        };
        if input.send(line).await.is_err() {
            return sent;
        }
        sent += 1;
    }
}
