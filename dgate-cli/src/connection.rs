//! The server this command talks to: its URL, the gRPC channel, the saved
//! login token, and errors worded for people.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use dgate_proto::pb::game_service_client::GameServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::tokens::{self, Saved};

#[derive(Clone)]
pub struct Connection {
    pub url: String,
    pub channel: Channel,
}

impl Connection {
    /// Connects to `url` (`http://` or `https://`); for `https://` the
    /// server's certificate must chain to the system's roots or to
    /// `ca_cert` (a PEM file).
    pub async fn open(url: &str, ca_cert: Option<&Path>) -> Result<Self> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("{url:?} is not a server URL like http://127.0.0.1:50051"))?
            .connect_timeout(Duration::from_secs(5));
        let tls = url.starts_with("https://");
        if tls {
            let mut config = ClientTlsConfig::new().with_native_roots();
            if let Some(path) = ca_cert {
                let pem = std::fs::read(path).with_context(|| {
                    format!("reading the CA certificate {} (--ca-cert)", path.display())
                })?;
                config = config.ca_certificate(Certificate::from_pem(pem));
            }
            endpoint = endpoint
                .tls_config(config)
                .with_context(|| format!("TLS for {url}"))?;
        }
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("{}", unreachable(url, tls, &root_cause(&e))))?;
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

/// `url` as given, or with a scheme when it names none (`127.0.0.1:50051`):
/// `https://` when a CA certificate is configured, else `http://`.
pub fn with_scheme(url: &str, tls: bool) -> String {
    match (url.contains("://"), tls) {
        (true, _) => url.to_owned(),
        (false, true) => format!("https://{url}"),
        (false, false) => format!("http://{url}"),
    }
}

/// Why `url` could not be reached, in one line a person can act on.
fn unreachable(url: &str, tls: bool, cause: &str) -> String {
    if let Some(problem) = cause.strip_prefix("invalid peer certificate: ") {
        let why = match problem.split(|c: char| !c.is_alphanumeric()).next() {
            Some("UnknownIssuer") => "issued by an authority it does not know".to_owned(),
            Some("NotValidForName" | "NotValidForNameContext") => {
                "issued for another name than the URL's host".to_owned()
            }
            Some("Expired" | "ExpiredContext") => "expired".to_owned(),
            Some("Other") if problem.contains("CaUsedAsEndEntity") => {
                "a CA certificate used as the server's own; \
                 make it with basicConstraints=critical,CA:FALSE"
                    .to_owned()
            }
            Some(other) => other.to_owned(),
            None => problem.to_owned(),
        };
        format!(
            "the server at {url} presented a certificate this machine does not trust ({why}); \
             if it is the server's own or its CA's, pass it with --ca-cert FILE (or DGATE_CA_CERT)"
        )
    } else if tls && cause.contains("corrupt message") {
        format!("the server at {url} does not speak TLS: use http://")
    } else if tls && cause.contains("NoApplicationProtocol") {
        format!(
            "the server at {url} does not serve gRPC there: is it the web port? \
             (the gRPC port is server.grpc_listen, 50051 by default)"
        )
    } else {
        format!("cannot reach the dgate server at {url}: {cause}")
    }
}

/// What a transport-level failure most likely means, when it says little.
fn transport_hint(e: &tonic::Status) -> Option<&'static str> {
    let message = e.message();
    if message.contains("invalid compression flag") {
        return Some(
            "this looks like dgate's web port: use its gRPC port \
             (server.grpc_listen, 50051 by default)",
        );
    }
    let garbled = matches!(
        e.code(),
        tonic::Code::Internal | tonic::Code::Cancelled | tonic::Code::Unknown
    ) && (message.contains("h2 protocol error")
        || message == "operation was canceled"
        || message == "transport error");
    garbled.then_some(
        "the server does not speak plaintext gRPC there: if it serves TLS, \
         use an https:// URL; if that is its web port, use its gRPC port",
    )
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
    if let Some(hint) = transport_hint(e) {
        return format!("{hint} ({})", e.message());
    }
    match e.code() {
        tonic::Code::Unavailable => format!("the server is unavailable: {}", e.message()),
        tonic::Code::Unauthenticated => {
            format!("{} (run `dgate login`)", e.message())
        }
        code => format!("the server said: {} ({code:?})", e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_scheme_gets_one() {
        assert_eq!(with_scheme("127.0.0.1:1", false), "http://127.0.0.1:1");
        assert_eq!(with_scheme("host:1", true), "https://host:1");
        assert_eq!(with_scheme("http://host:1", true), "http://host:1");
    }

    #[test]
    fn certificate_problems_say_what_to_do() {
        let line = unreachable(
            "https://h:1",
            true,
            "invalid peer certificate: UnknownIssuer",
        );
        assert!(line.contains("authority it does not know"), "{line}");
        assert!(line.contains("--ca-cert"), "{line}");
        let line = unreachable(
            "https://h:1",
            true,
            "invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
        );
        assert!(line.contains("CA:FALSE"), "{line}");
        let web_port = tonic::Status::internal(
            "protocol error: received message with invalid compression flag: 123",
        );
        assert!(describe(&web_port).contains("web port"));
    }
}
