//! A player's page, `GET /player/{name}`: what they play now (to watch),
//! their public options files (`/rc/...`), the games' published files
//! (`/files/...`: xlogfile, dumplogs, morgues) and their recent games (to
//! replay or download). Server-rendered, every name escaped.

use std::fmt::Write;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;

use super::{Web, escape, game_label, url_path};
use crate::viewing;

const PLAYER: &str = include_str!("../../web/player.html");

/// Recent games listed.
const RECENT: i32 = 50;

pub(super) async fn player_page(
    State(web): State<Web>,
    Path(name): Path<String>,
    jar: CookieJar,
) -> Response {
    let missing = || {
        super::plain_page(
            StatusCode::NOT_FOUND,
            &format!("There is no player {name:?} here."),
        )
    };
    if crate::accounts::check_username(&name).is_err() {
        return missing();
    }
    let store = Arc::clone(web.accounts.auth.store());
    let lookup = name.clone();
    let known = tokio::task::spawn_blocking(move || store.user(&lookup)).await;
    let Ok(Ok(user)) = known else {
        return missing();
    };
    let name = user.username;
    let config = web.manager.config();

    let mut playing = String::new();
    for session in web
        .manager
        .list()
        .iter()
        .filter(|s| s.info.username == name)
    {
        let _ = write!(
            playing,
            "<p><a href=\"/watch/{}\">Watch {} play {}</a> ({} watching)</p>",
            url_path(&session.info.id),
            escape(&name),
            escape(&game_label(config, &session.info.game_id)),
            session.spectators.len()
        );
    }
    if playing.is_empty() {
        playing = format!("<p>{} is not playing now.</p>", escape(&name));
    }

    let mut files = String::new();
    for game in &config.games {
        let mut links = Vec::new();
        if game.rc_public
            && crate::game::rc_files::path_for(game, &name, &config.data_dir)
                .is_some_and(|p| p.is_file())
        {
            links.push(format!(
                "<a href=\"/rc/{}/{}\">options</a>",
                url_path(&name),
                url_path(&game.id)
            ));
        }
        for published in game.published.keys() {
            links.push(format!(
                "<a href=\"/files/{}/{}\">{}</a>",
                url_path(&game.id),
                url_path(published),
                escape(published)
            ));
        }
        if !links.is_empty() {
            let _ = write!(
                files,
                "<p>{}: {}</p>",
                escape(&game_label(config, &game.id)),
                links.join(" · ")
            );
        }
    }
    if files.is_empty() {
        files = "<p>None published.</p>".into();
    }

    let visitor = web.accounts.visitor(&jar).await;
    let recent = if viewing::may_watch(config, visitor.is_some()).is_ok() {
        let entries = web.manager.library().list(&name, "", RECENT).await;
        if entries.is_empty() {
            "<p>No recorded games.</p>".to_owned()
        } else {
            let mut table = String::from(
                "<table class=\"cards\"><thead><tr><th>Game</th><th>Start (UTC)</th>\
                 <th>Ended</th><th></th></tr></thead><tbody>",
            );
            for entry in &entries {
                let m = &entry.meta;
                let path = url_path(&entry.id);
                let start = m.start.replace('T', " ");
                let start = start.split('.').next().unwrap_or(&start).to_owned();
                let _ = write!(
                    table,
                    "<tr><td data-label=\"Game\">{}</td><td data-label=\"Start\">{}</td>\
                     <td data-label=\"Ended\">{}</td><td><a href=\"/replay/{path}\">replay</a> · \
                     <a href=\"/recordings/{path}\">ttyrec</a></td></tr>",
                    escape(&game_label(config, &m.game_id)),
                    escape(&start),
                    escape(&entry.summary().ending()),
                );
            }
            table.push_str("</tbody></table>");
            table
        }
    } else {
        "<p>Log in to see recorded games.</p>".to_owned()
    };

    let page = PLAYER
        .replace("{{PLAYING}}", &playing)
        .replace("{{FILES}}", &files)
        .replace("{{RECENT}}", &recent)
        .replace("{{NAME}}", &escape(&name));
    Html(page).into_response()
}
