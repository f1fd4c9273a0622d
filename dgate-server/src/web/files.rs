//! A game's published files (`games[].published`: the xlogfile, livelog,
//! dumplog and morgue directories), read-only at
//! `GET /files/GAME_ID/NAME[/sub/path]`: files with `Range` (tournament
//! sites fetch the xlogfile from their last offset), directories as a list
//! of links. Nothing outside a published root is reachable: `..`, absolute
//! components and symbolic links out of it are 404.
//!
//! Also players' rc files, read-only at `GET /rc/USER/GAME_ID` for games
//! with `rc_public` (tournament sites check accounts by them).

use std::io::SeekFrom;
use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::game::SessionManager;

pub fn routes<S: Clone + Send + Sync + 'static>(manager: SessionManager) -> axum::Router<S> {
    axum::Router::new()
        .route("/files/{game}/{name}", axum::routing::get(root))
        .route("/files/{game}/{name}/{*rest}", axum::routing::get(below))
        .route("/rc/{user}/{game}", axum::routing::get(rc_file))
        .with_state(manager)
}

/// A player's rc file as text, when the game shows them; 404 for a game
/// that does not, a name no account could have, and a player without one.
async fn rc_file(
    State(manager): State<SessionManager>,
    UrlPath((user, game)): UrlPath<(String, String)>,
) -> Response {
    let missing = || (StatusCode::NOT_FOUND, "no such public options file\n").into_response();
    let config = manager.config();
    let Some(game) = config.game(&game).filter(|g| g.rc_public) else {
        return missing();
    };
    if crate::accounts::check_username(&user).is_err() {
        return missing();
    }
    let Some(path) = crate::game::rc_files::path_for(game, &user, &config.data_dir) else {
        return missing();
    };
    let Ok(file) = tokio::fs::File::open(&path).await else {
        return missing();
    };
    let mut text = Vec::new();
    let limit = u64::try_from(crate::game::rc_files::MAX_RC_BYTES * 16).unwrap_or(u64::MAX);
    if file.take(limit).read_to_end(&mut text).await.is_err() {
        return missing();
    }
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response()
}

async fn root(
    State(manager): State<SessionManager>,
    UrlPath((game, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    serve(&manager, &game, &name, "", &headers).await
}

async fn below(
    State(manager): State<SessionManager>,
    UrlPath((game, name, rest)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    serve(&manager, &game, &name, &rest, &headers).await
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such published file\n").into_response()
}

/// The published root `name` of `game`, with `%d` and `%g` expanded.
fn published_root(manager: &SessionManager, game: &str, name: &str) -> Option<PathBuf> {
    let config = manager.config();
    let game = config.game(game)?;
    let template = game.published.get(name)?;
    let path = template
        .replace("%d", &config.data_dir.to_string_lossy())
        .replace("%g", &game.id);
    Some(config.data_dir.join(path))
}

/// `root/rest`, when it stays inside `root` (symbolic links resolved).
fn inside(root: &Path, rest: &str) -> Option<PathBuf> {
    let mut path = root.to_owned();
    for part in Path::new(rest).components() {
        match part {
            Component::Normal(p) => path.push(p),
            Component::CurDir => {}
            _ => return None,
        }
    }
    let root = root.canonicalize().ok()?;
    let path = path.canonicalize().ok()?;
    path.starts_with(&root).then_some(path)
}

async fn serve(
    manager: &SessionManager,
    game: &str,
    name: &str,
    rest: &str,
    headers: &HeaderMap,
) -> Response {
    let Some(root) = published_root(manager, game, name) else {
        return not_found();
    };
    let Some(path) = inside(&root, rest) else {
        return not_found();
    };
    let Ok(meta) = tokio::fs::metadata(&path).await else {
        return not_found();
    };
    if meta.is_dir() {
        return listing(&path, game, name, rest).await;
    }
    let len = meta.len();
    let range = match headers.get(header::RANGE).map(|r| parse_range(r, len)) {
        None => None,
        Some(Ok(range)) => Some(range),
        Some(Err(())) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
                "the range is not within the file\n",
            )
                .into_response();
        }
    };
    let Ok(mut file) = tokio::fs::File::open(&path).await else {
        return not_found();
    };
    let (start, end) = range.unwrap_or((0, len));
    if start > 0 && file.seek(SeekFrom::Start(start)).await.is_err() {
        return not_found();
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(end - start)));
    let mut response = Response::new(body);
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(&path)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if range.is_some() {
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
        if let Ok(value) = HeaderValue::from_str(&format!("bytes {start}-{}/{len}", end - 1)) {
            response.headers_mut().insert(header::CONTENT_RANGE, value);
        }
    }
    response
}

/// One `bytes=` range of a file of `len` bytes, as [start, end).
fn parse_range(value: &HeaderValue, len: u64) -> Result<(u64, u64), ()> {
    let spec = value.to_str().map_err(|_| ())?.trim();
    let spec = spec.strip_prefix("bytes=").ok_or(())?;
    if spec.contains(',') {
        return Err(());
    }
    let (from, to) = spec.split_once('-').ok_or(())?;
    let (start, end) = match (from.trim(), to.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| ())?;
            (len.saturating_sub(n), len)
        }
        (from, "") => (from.parse().map_err(|_| ())?, len),
        (from, to) => {
            let to: u64 = to.parse().map_err(|_| ())?;
            (from.parse().map_err(|_| ())?, to.saturating_add(1).min(len))
        }
    };
    if start >= end || start >= len {
        return Err(());
    }
    Ok((start, end))
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("gz") => "application/gzip",
        Some("json") => "application/json",
        Some("ttyrec") => "application/octet-stream",
        // The xlogfile, livelog, dumplogs and morgues are text.
        _ => "text/plain; charset=utf-8",
    }
}

async fn listing(dir: &Path, game: &str, name: &str, rest: &str) -> Response {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return not_found();
    };
    let mut names = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let is_dir = entry.file_type().await.is_ok_and(|t| t.is_dir());
        let file = entry.file_name().to_string_lossy().into_owned();
        names.push(if is_dir { format!("{file}/") } else { file });
    }
    names.sort();
    let base = if rest.is_empty() {
        format!("/files/{game}/{name}")
    } else {
        format!("/files/{game}/{name}/{}", rest.trim_end_matches('/'))
    };
    let mut html = format!(
        "<!doctype html><meta charset=utf-8><title>{0}</title><h1>{0}</h1><ul>",
        escape(&base)
    );
    for n in &names {
        html.push_str(&format!(
            "<li><a href=\"{}/{}\">{}</a></li>",
            escape(&base),
            escape(n.trim_end_matches('/')),
            escape(n)
        ));
    }
    html.push_str("</ul>");
    Html(html).into_response()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_read_as_http_says() {
        let r = |s: &str| parse_range(&HeaderValue::from_str(s).expect("value"), 100);
        assert_eq!(r("bytes=0-9"), Ok((0, 10)));
        assert_eq!(r("bytes=90-"), Ok((90, 100)));
        assert_eq!(r("bytes=-5"), Ok((95, 100)));
        assert_eq!(r("bytes=50-500"), Ok((50, 100)));
        assert_eq!(r("bytes=100-"), Err(()));
        assert_eq!(r("bytes=5-1"), Err(()));
        assert_eq!(r("bytes=0-1,5-6"), Err(()));
        assert_eq!(r("lines=1-2"), Err(()));
    }
}
