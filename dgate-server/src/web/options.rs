//! A player's options file in the browser: `GET /options/{game_id}` shows
//! it in a text area, `POST` saves it ([`crate::game::rc_files`]: the same
//! file, size limit and owner as the SSH editor and `dgate options`). A
//! refused save shows the text again with why, so nothing typed is lost.

use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::Deserialize;
use tracing::info;

use super::{Web, escape, url_path};
use crate::accounts::User;
use crate::game::rc_files::{self, MAX_RC_BYTES, RcError};

const OPTIONS: &str = include_str!("../../web/options.html");

/// The largest save accepted: a full file, every byte percent-encoded.
pub const MAX_FORM_BYTES: usize = 3 * MAX_RC_BYTES + 1024;

#[derive(Debug, Deserialize)]
pub(super) struct Saved {
    saved: Option<String>,
}

/// `GET /options/{game_id}`: the player's file (made from the game's
/// template when they have none), for a logged-in browser.
pub(super) async fn options_page(
    State(web): State<Web>,
    Path(game_id): Path<String>,
    Query(saved): Query<Saved>,
    jar: CookieJar,
) -> Response {
    let Some(user) = web.accounts.visitor(&jar).await else {
        return to_login(&game_id);
    };
    let config = Arc::clone(web.manager.config_arc());
    let (game, name) = (game_id.clone(), user.username.clone());
    let loaded =
        tokio::task::spawn_blocking(move || rc_files::load_for(&config, &game, &name)).await;
    match loaded {
        Ok(Ok(text)) => {
            let message = if saved.saved.is_some() {
                "Saved: your next game starts with these options."
            } else {
                ""
            };
            page(&web, &user, &game_id, StatusCode::OK, message, &text)
        }
        Ok(Err(e)) => super::plain_page(status_of(&e), &e.to_string()),
        Err(_) => super::plain_page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "reading the options failed",
        ),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct OptionsForm {
    text: String,
}

/// `POST /options/{game_id}`: saves the text (browsers send a text area's
/// lines ending in CR LF; the file gets LF, as games expect).
pub(super) async fn save(
    State(web): State<Web>,
    Path(game_id): Path<String>,
    headers: HeaderMap,
    jar: CookieJar,
    Form(form): Form<OptionsForm>,
) -> Response {
    if let Some(refusal) = super::foreign_origin(&web.manager, &headers) {
        return refusal;
    }
    let Some(user) = web.accounts.visitor(&jar).await else {
        return to_login(&game_id);
    };
    let text = form.text.replace("\r\n", "\n");
    let config = Arc::clone(web.manager.config_arc());
    let (game, name, saving) = (game_id.clone(), user.username.clone(), text.clone());
    let saved =
        tokio::task::spawn_blocking(move || rc_files::save_for(&config, &game, &name, &saving))
            .await;
    match saved {
        Ok(Ok(())) => {
            info!(username = %user.username, game = %game_id, bytes = text.len(),
                  "options saved from a browser");
            Redirect::to(&format!("/options/{}?saved=1", url_path(&game_id))).into_response()
        }
        Ok(Err(e)) => page(
            &web,
            &user,
            &game_id,
            status_of(&e),
            &format!("Not saved: {e}."),
            &text,
        ),
        Err(_) => page(
            &web,
            &user,
            &game_id,
            StatusCode::INTERNAL_SERVER_ERROR,
            "Not saved: the save failed.",
            &text,
        ),
    }
}

fn page(
    web: &Web,
    user: &User,
    game_id: &str,
    status: StatusCode,
    message: &str,
    text: &str,
) -> Response {
    let game = web
        .manager
        .config()
        .game(game_id)
        .map_or(game_id, |g| g.name.as_str());
    let html = OPTIONS
        .replace("{{MESSAGE}}", &escape(message))
        .replace("{{ACTION}}", &format!("/options/{}", url_path(game_id)))
        .replace("{{MAX}}", &MAX_RC_BYTES.to_string())
        .replace("{{GAME}}", &escape(game))
        .replace("{{USER}}", &escape(&user.username))
        // Last: the player's own text may hold `{{...}}`.
        .replace("{{TEXT}}", &escape(text));
    (status, Html(html)).into_response()
}

fn to_login(game_id: &str) -> Response {
    let back = format!("/options/{}", url_path(game_id));
    Redirect::to(&format!("/login?next={}", url_path(&back))).into_response()
}

fn status_of(e: &RcError) -> StatusCode {
    match e {
        RcError::NoSuchGame(_) => StatusCode::NOT_FOUND,
        RcError::NoRcFile(_) => StatusCode::CONFLICT,
        RcError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        RcError::RunAs(_) | RcError::Io { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
