//! Logging in from a browser: `GET`/`POST /login` (a form whose inputs are
//! `username` and `password`), `POST /logout`, and the session cookie that
//! says who a page's requests and sockets come from ([`Accounts::visitor`]).
//!
//! The cookie holds a login token like the one `dgate login` keeps (the
//! same store, lifetime, revocation and limits on guessing: password checks
//! go through [`Logins`] as on gRPC and SSH). It is `HttpOnly` (no script
//! reads it), `SameSite=Strict` (no other site's page sends it) and `Secure`
//! when the server speaks TLS. Forms posted from another origin are refused,
//! and the play socket checks `Origin` as well (`super::play`).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{ConnectInfo, Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;
use tracing::info;

use super::{Web, escape};
use crate::accounts::{AccountError, Login, LoginError, Logins, User};
use crate::grpc::auth::Authenticator;

/// The cookie's name.
pub const COOKIE: &str = "dgate_session";
/// The largest login or logout form accepted.
pub const MAX_FORM_BYTES: usize = 4 * 1024;

const LOGIN: &str = include_str!("../../web/login.html");

/// What the browser side needs of the accounts.
#[derive(Debug, Clone)]
pub struct Accounts {
    pub auth: Authenticator,
    pub logins: Arc<Logins>,
    /// The server speaks TLS: cookies are `Secure`.
    pub secure: bool,
}

impl Accounts {
    /// Who the request's cookie is logged in as: `None` without a cookie, or
    /// when its token is unknown, expired or revoked, or its account banned.
    pub async fn visitor(&self, jar: &CookieJar) -> Option<User> {
        let token = jar.get(COOKIE)?.value().to_owned();
        // Tokens are hex; anything else is not worth a database look.
        if token.is_empty() || token.len() > 128 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let store = Arc::clone(self.auth.store());
        tokio::task::spawn_blocking(move || store.authenticate(&token))
            .await
            .ok()?
            .ok()
    }

    /// The cookie for `login`: it lasts as long as the token does.
    fn cookie(&self, login: Login) -> Cookie<'static> {
        let lifetime = login
            .expires_at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_default();
        Cookie::build((COOKIE, login.token))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure)
            .path("/")
            .max_age(cookie::time::Duration::seconds(
                i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX),
            ))
            .build()
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct Next {
    next: Option<String>,
}

/// Where to go after logging in: a path on this server, else the lobby (a
/// `next` of `//evil.example` or `https://...` is not followed).
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                // It becomes a `Location` header: visible ASCII only.
                && path.chars().all(|c| c.is_ascii_graphic()) =>
        {
            path
        }
        _ => "/",
    }
}

/// `GET /login`: the form (or who you are, when logged in already).
pub(super) async fn login_page(
    State(web): State<Web>,
    Query(next): Query<Next>,
    jar: CookieJar,
) -> Response {
    let next = local_path(next.next.as_deref());
    let who = web.accounts.visitor(&jar).await;
    let message = match &who {
        Some(user) => format!(
            "You are logged in as {}. Log in again to change accounts.",
            user.username
        ),
        None => String::new(),
    };
    form(StatusCode::OK, &message, "", next)
}

/// The login form with `message` above it, `username` filled in.
fn form(status: StatusCode, message: &str, username: &str, next: &str) -> Response {
    let page = LOGIN
        .replace("{{MESSAGE}}", &escape(message))
        .replace("{{USERNAME}}", &escape(username))
        .replace("{{NEXT}}", &escape(next));
    (status, Html(page)).into_response()
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

/// `POST /login`: checks the password (counted against the login limits
/// like any other), then sets the cookie and goes on to `next`.
pub(super) async fn login(
    State(web): State<Web>,
    headers: HeaderMap,
    connection: Option<Extension<ConnectInfo<SocketAddr>>>,
    jar: CookieJar,
    Form(form_data): Form<LoginForm>,
) -> Response {
    let next = local_path(form_data.next.as_deref()).to_owned();
    if let Some(refusal) = super::foreign_origin(&web.manager, &headers) {
        return refusal;
    }
    let username = form_data.username.trim();
    let peer = crate::http::peer(connection);
    let login = web
        .accounts
        .logins
        .login(username, form_data.password.into_bytes(), peer, "web")
        .await;
    match login {
        Ok(login) => {
            info!(username = %login.user.username, "logged in from a browser");
            let jar = jar.add(web.accounts.cookie(login));
            (jar, Redirect::to(&next)).into_response()
        }
        Err(e) => {
            let status = match &e {
                LoginError::TooManyFailures { .. } | LoginError::TooManyRegistrations { .. } => {
                    StatusCode::TOO_MANY_REQUESTS
                }
                LoginError::Busy => StatusCode::SERVICE_UNAVAILABLE,
                LoginError::Account(AccountError::BadCredentials | AccountError::Banned(_)) => {
                    StatusCode::UNAUTHORIZED
                }
                LoginError::Account(AccountError::Invalid { .. }) => StatusCode::BAD_REQUEST,
                LoginError::Account(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            // The name as typed, for another try (escaped in the page).
            let shown: String = username.chars().take(40).collect();
            form(status, &e.to_string(), &shown, &next)
        }
    }
}

/// `POST /logout`: the token is revoked and the cookie removed.
pub(super) async fn logout(State(web): State<Web>, headers: HeaderMap, jar: CookieJar) -> Response {
    if let Some(refusal) = super::foreign_origin(&web.manager, &headers) {
        return refusal;
    }
    if let Some(token) = jar.get(COOKIE).map(|c| c.value().to_owned()) {
        let store = Arc::clone(web.accounts.auth.store());
        let _ = tokio::task::spawn_blocking(move || store.logout(&token)).await;
    }
    let gone = Cookie::build((COOKIE, "")).path("/").build();
    (jar.remove(gone), Redirect::to("/")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_login() {
        assert_eq!(local_path(Some("/play/nethack")), "/play/nethack");
        assert_eq!(local_path(Some("//evil.example/x")), "/");
        assert_eq!(local_path(Some("https://evil.example/")), "/");
        assert_eq!(local_path(Some("/\\evil.example")), "/");
        assert_eq!(local_path(Some("/a\r\nSet-Cookie: x")), "/");
        assert_eq!(local_path(Some("/play/é")), "/");
        assert_eq!(local_path(Some("/play/a b")), "/");
        assert_eq!(local_path(None), "/");
    }
}
