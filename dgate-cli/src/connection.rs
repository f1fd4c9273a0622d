//! The server this command talks to: its URL, the gRPC channel, the saved
//! login token, and errors worded for people.

use std::time::Duration;

use anyhow::{Context, Result};
use dgate_proto::pb::game_service_client::GameServiceClient;
use tonic::transport::{Channel, Endpoint};

use crate::tokens::{self, Saved};

#[derive(Clone)]
pub struct Connection {
    pub url: String,
    pub channel: Channel,
}

impl Connection {
    pub async fn open(url: &str) -> Result<Self> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("{url:?} is not a server URL like http://127.0.0.1:50051"))?
            .connect_timeout(Duration::from_secs(5));
        let channel = endpoint.connect().await.map_err(|e| {
            anyhow::anyhow!("cannot reach the dgate server at {url}: {}", root_cause(&e))
        })?;
        Ok(Self {
            url: url.to_owned(),
            channel,
        })
    }

    pub fn games(&self) -> GameServiceClient<Channel> {
        GameServiceClient::new(self.channel.clone())
    }

    /// The login saved for this server, if any.
    pub fn login(&self) -> Result<Option<Saved>> {
        tokens::get(&self.url)
    }

    /// The login saved for this server, or an error that says how to log in.
    pub fn require_login(&self) -> Result<Saved> {
        self.login()?.with_context(|| {
            format!(
                "you are not logged in to {}: run `dgate login` (or `dgate register`) first",
                self.url
            )
        })
    }
}

/// `message` with `authorization: Bearer TOKEN` when there is a login.
pub fn with_token<T>(message: T, login: Option<&Saved>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = login.and_then(|l| format!("Bearer {}", l.token).parse().ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// The innermost error's text ("Connection refused"), not the transport's layers.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// A refusal from the server, in one line.
pub fn status(e: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{}", describe(&e))
}

/// `the server said: no session with id "x" (NotFound)`, or, when the server
/// could not be reached, why.
pub fn describe(e: &tonic::Status) -> String {
    match e.code() {
        tonic::Code::Unavailable => format!("the server is unavailable: {}", e.message()),
        tonic::Code::Unauthenticated => {
            format!("{} (run `dgate login`)", e.message())
        }
        code => format!("the server said: {} ({code:?})", e.message()),
    }
}
