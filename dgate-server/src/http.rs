//! The HTTP side on `server.http_listen`: the session list, a health check,
//! the metrics, and the browser pages ([`crate::web`]); and the server
//! that runs it ([`serve`]), which limits connections before axum sees
//! them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use dgate_term::listing::{SessionList, SessionSummary};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use tracing::{debug, info};

use crate::game::SessionManager;
use crate::limits::{AddressLimiter, LogOnce};
use crate::metrics::Refusal;
use crate::proxy_protocol::Acceptor;

/// Every route, with the security headers on every response; `/metrics`
/// too unless it is served apart (`server.metrics_listen`).
pub fn router(
    manager: SessionManager,
    accounts: crate::web::accounts::Accounts,
    with_metrics: bool,
) -> Router {
    let mut routes = Router::new()
        .route("/sessions", get(sessions))
        .route("/status.txt", get(status_txt))
        .route("/healthz", get(healthz));
    if with_metrics {
        routes = routes.route("/metrics", get(metrics));
    }
    routes
        .merge(crate::web::routes(manager.clone(), accounts))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(manager)
}

/// `/metrics` alone, for `server.metrics_listen`.
pub fn metrics_router(manager: SessionManager) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
        .with_state(manager)
}

/// What every page and answer carries: nothing but the server's own
/// scripts, styles and sockets; no framing by other sites; no MIME sniffing;
/// no referrer beyond the origin. A page that needs a policy of its own
/// (the terminal pages' inline styles, `web::terminal_page`) keeps it.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; connect-src 'self'; frame-ancestors 'none'; \
             base-uri 'none'; form-action 'self'",
        ));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    response
}

/// Serves `router` on `listener` until `stop`: each connection takes its
/// address's place in `addresses` first (over the limit: a 503 and closed),
/// finishes its TLS handshake (with `tls`) and sends its request headers
/// within `server.http_header_timeout`, and carries its peer address for the
/// handlers (`ConnectInfo`). An accept error is waited out, never fatal.
/// In-flight requests and open WebSockets are given a few seconds at `stop`.
pub async fn serve(
    manager: SessionManager,
    listener: TcpListener,
    router: Router,
    addresses: AddressLimiter,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let header_timeout = manager.config().server.http_header_timeout;
    // HTTP/1.1 only: browsers speak it to a plaintext port (and WebSockets
    // need it); HTTP/2 would be one more protocol for strangers to probe.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(64 * 1024);
    let http = Arc::new(Http {
        builder,
        router,
        proxies: crate::limits::Trusted::new(&manager.config().server.trusted_proxies),
        header_timeout,
        manager: manager.clone(),
    });
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let refusals_logged = LogOnce::default();
    let mut listener = Acceptor::new(listener, "HTTP", http.proxies.clone());
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stop.cancelled() => break,
        };
        let Some(slot) = addresses.admit(peer.ip()) else {
            manager.metrics().refused(Refusal::ConnectionsPerAddress);
            if refusals_logged.should_log(peer.ip()) {
                info!(%peer, max = addresses.max(), "HTTP connection refused: too many from this address");
            }
            // Before a TLS handshake there is no one to answer in plain text.
            if tls.is_none() {
                let _ = socket.try_write(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 45\r\nConnection: close\r\n\r\nToo many connections from your address (503)\n",
                );
            }
            continue;
        };
        // Frames are small and must go out at once: no Nagle delay.
        let _ = socket.set_nodelay(true);
        let http = Arc::clone(&http);
        let watcher = graceful.watcher();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => http.connection(socket, peer, watcher).await,
                Some(tls) => {
                    // The handshake counts against the same deadline as the headers.
                    match tokio::time::timeout(header_timeout, tls.accept(socket)).await {
                        Ok(Ok(stream)) => http.connection(stream, peer, watcher).await,
                        Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => {
                            http.manager.metrics().refused(Refusal::HttpHeaderTimeout);
                            debug!(%peer, "TLS handshake not finished in time");
                        }
                    }
                }
            }
            drop(slot);
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(5), graceful.shutdown()).await;
}

/// What every connection of one HTTP listener shares.
struct Http {
    builder: auto::Builder<TokioExecutor>,
    router: Router,
    proxies: crate::limits::Trusted,
    header_timeout: Duration,
    manager: SessionManager,
}

impl Http {
    /// Serves one connection (plain TCP or TLS) until it ends.
    async fn connection<IO>(
        &self,
        io: IO,
        peer: SocketAddr,
        watcher: hyper_util::server::graceful::Watcher,
    ) where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let router = self.router.clone();
        let proxies = self.proxies.clone();
        // hyper's header timeout starts once it has bytes of a request; a
        // client that sends nothing (or too little to tell) is cut here.
        let requested = Arc::new(AtomicBool::new(false));
        let first_request = Arc::clone(&requested);
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                // Behind a trusted proxy, the client is the one it names.
                let client = if proxies.contains(peer.ip()) {
                    forwarded_for(request.headers())
                        .map_or(peer, |ip| SocketAddr::new(ip, peer.port()))
                } else {
                    peer
                };
                request.extensions_mut().insert(ConnectInfo(client));
                first_request.store(true, Ordering::Relaxed);
                router.clone().oneshot(request)
            },
        );
        let connection = watcher.watch(
            self.builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned(),
        );
        tokio::pin!(connection);
        let deadline = tokio::time::sleep(self.header_timeout);
        tokio::pin!(deadline);
        let ended = loop {
            tokio::select! {
                ended = &mut connection => break Some(ended),
                () = &mut deadline, if !deadline.is_elapsed() => {
                    if !requested.load(Ordering::Relaxed) {
                        break None;
                    }
                }
            }
        };
        match ended {
            None => {
                self.manager.metrics().refused(Refusal::HttpHeaderTimeout);
                debug!(%peer, "HTTP connection closed: no request in time");
            }
            Some(Err(e)) => {
                if is_header_timeout(e.as_ref()) {
                    self.manager.metrics().refused(Refusal::HttpHeaderTimeout);
                }
                debug!(%peer, error = %e, "HTTP connection ended");
            }
            Some(Ok(())) => {}
        }
    }
}

/// The client a trusted proxy names: the last address of `X-Forwarded-For`
/// (the one the proxy itself appended; earlier ones the client could forge).
fn forwarded_for(headers: &axum::http::HeaderMap) -> Option<std::net::IpAddr> {
    let value = headers
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?
        .to_str()
        .ok()?;
    value.rsplit(',').next()?.trim().parse().ok()
}

/// Whether an HTTP connection ended because its headers took too long.
fn is_header_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>()
            && hyper.is_timeout()
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The peer of a request served by [`serve`] (absent only when the router is
/// driven some other way, as in benchmarks).
pub fn peer(
    connection: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
) -> Option<std::net::IpAddr> {
    connection.map(|axum::Extension(ConnectInfo(addr))| addr.ip())
}

/// `GET /sessions`: the games in progress (in a cluster, every node's), as
/// `dgate list --json` prints them.
async fn sessions(State(manager): State<SessionManager>) -> Json<SessionList> {
    let sessions: Vec<SessionSummary> = manager.summaries();
    Json(SessionList::new(&sessions, SystemTime::now()))
}

/// `GET /status.txt`: one line per game in progress in WebTiles'
/// `dgl_status_file` format, which bots read:
/// `user#game#extra info#COLSxROWS#idle seconds#watchers#` (in a cluster,
/// every node's games).
async fn status_txt(State(manager): State<SessionManager>) -> impl IntoResponse {
    let now = SystemTime::now();
    let mut text = String::new();
    for s in manager.summaries() {
        // `#` separates fields: a name or extra info never holds one.
        let field = |v: &str| v.replace(['#', '\n', '\r'], " ");
        text.push_str(&format!(
            "{}#{}#{}#{}#{}#{}#\n",
            field(&s.username),
            field(&s.game_id),
            field(s.extra_info.as_ref().map_or("", |e| e.text.as_str())),
            s.size,
            s.idle(now).as_secs(),
            s.spectators.len()
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text)
}

/// `GET /metrics`: Prometheus (OpenMetrics) text.
async fn metrics(State(manager): State<SessionManager>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        manager.metrics().render(),
    )
}

async fn healthz(State(manager): State<SessionManager>) -> impl IntoResponse {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "active_sessions": manager.active_count(),
    }))
}

async fn not_found(uri: Uri) -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        Json(json!({ "error": format!("no such endpoint: {}", uri.path()) })),
    )
}
