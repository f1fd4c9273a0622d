//! A real browser and a plain HTTP client for the web tests: headless
//! Chromium (Debian `chromium`, installed by `.ci/run`) and HTTP/1.0 by hand.

use std::net::SocketAddr;
use std::process::Command;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use super::WAIT;

/// The page at `url` after its scripts ran, as headless Chromium sees it.
pub fn chromium_dom(url: &str) -> String {
    chromium_dom_with(url, &[])
}

/// [`chromium_dom`] with more Chromium flags.
pub fn chromium_dom_with(url: &str, flags: &[&str]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=4000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(flags)
        .arg(url)
        .output()
        .expect("run chromium (apt-get install chromium)");
    assert!(
        output.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The page at `url` once `ready` holds for its DOM. Headless Chromium dumps
/// the DOM when its virtual time budget is spent, which may come before a
/// WebSocket's first messages (they do not hold virtual time back): a page
/// that was dumped too early is loaded again, up to five times.
pub fn chromium_dom_until(url: &str, ready: impl Fn(&str) -> bool) -> String {
    chromium_dom_until_with(url, &[], ready)
}

/// [`chromium_dom_until`] with more Chromium flags.
pub fn chromium_dom_until_with(url: &str, flags: &[&str], ready: impl Fn(&str) -> bool) -> String {
    let mut dom = String::new();
    for _ in 0..5 {
        dom = chromium_dom_with(url, flags);
        if ready(&dom) {
            break;
        }
    }
    dom
}

/// The text of each `<div class="row">` of the page's terminal.
pub fn terminal_rows(dom: &str) -> Vec<String> {
    dom.split("<div class=\"row\">")
        .skip(1)
        .map(|row| {
            let row = row.split("</div>").next().unwrap_or("");
            let mut text = String::new();
            let mut in_tag = false;
            for c in row.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' => in_tag = false,
                    c if !in_tag => text.push(c),
                    _ => {}
                }
            }
            text.replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&nbsp;", " ")
                .replace("&amp;", "&")
                .trim_end()
                .to_owned()
        })
        .collect()
}

/// `GET path` over HTTP/1.0: the status code, the headers and the body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("response");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header");
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    (status, head, response[split + 4..].to_vec())
}

/// The next text message on a WebSocket, as JSON (other messages skipped).
pub async fn next_json<S>(socket: &mut S) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a message");
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON");
        }
    }
}
