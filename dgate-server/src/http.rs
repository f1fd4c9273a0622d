//! The HTTP side on `server.http_listen`: the session list, a health check,
//! the metrics, and the browser pages ([`crate::web`]).

use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use dgate_term::listing::{SessionList, SessionSummary};
use serde_json::json;

use crate::game::SessionManager;

pub fn router(manager: SessionManager) -> Router {
    Router::new()
        .route("/sessions", get(sessions))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .merge(crate::web::routes(manager.clone()))
        .fallback(not_found)
        .with_state(manager)
}

/// `GET /sessions`: the games in progress, as `dgate list --json` prints them.
async fn sessions(State(manager): State<SessionManager>) -> Json<SessionList> {
    let sessions: Vec<SessionSummary> = manager.list().iter().map(|s| s.summary()).collect();
    Json(SessionList::new(&sessions, SystemTime::now()))
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
