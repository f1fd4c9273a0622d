//! A real browser and a plain HTTP client for the web tests: headless
//! Chromium (Debian `chromium`, installed by `.ci/run`) and HTTP/1.0 by hand.
//!
//! Two ways to drive Chromium: [`chromium_dom`] and friends dump a page's
//! DOM once its scripts ran; [`Browser`] keeps Chromium running and speaks
//! the DevTools protocol to it, to wait for a condition in the page, read
//! it with JavaScript, type keys and take screenshots (kept under
//! `target/tmp/web-screenshots/`).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
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

/// The text of each row of the page's terminal: the rows xterm.js draws
/// (its DOM renderer: one `<div>` of spans per row in `.xterm-rows`), with
/// trailing blanks trimmed.
pub fn terminal_rows(dom: &str) -> Vec<String> {
    let Some(start) = dom.find("class=\"xterm-rows\"") else {
        return Vec::new();
    };
    let rows = &dom[start..];
    let rows = &rows[rows.find('>').map_or(0, |at| at + 1)..];
    let mut out = Vec::new();
    let mut rest = rows;
    // Each row is `<div ...>spans</div>`; the rows' container ends at the
    // first `</div>` that follows a row's.
    while let Some(row) = rest.strip_prefix("<div") {
        let body = &row[row.find('>').map_or(0, |at| at + 1)..];
        let end = body.find("</div>").unwrap_or(body.len());
        out.push(text_of(&body[..end]));
        rest = &body[(end + "</div>".len()).min(body.len())..];
    }
    out
}

/// The text of some HTML (tags dropped, entities decoded), trailing blanks trimmed.
fn text_of(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
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
        .replace('\u{a0}', " ")
        .replace("&amp;", "&")
        .trim_end()
        .to_owned()
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

type DevTools =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Headless Chromium kept running, driven over the DevTools protocol: one
/// page (tab) at a time. Killed when dropped.
pub struct Browser {
    child: Child,
    _profile: tempfile::TempDir,
    devtools: DevTools,
    /// The page's session on the browser's socket.
    session: String,
    next_id: u64,
}

impl Browser {
    /// Chromium with a window of `width`x`height` CSS pixels and a blank page.
    pub async fn launch(width: u32, height: u32) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run chromium (apt-get install chromium)");
        // Chromium says where its DevTools socket is on stderr; the rest of
        // stderr is drained so that it never blocks on a full pipe.
        let stderr = child.stderr.take().expect("stderr");
        let (found, address) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(at) = line.find("ws://")
                    && let Some(found) = found.take()
                {
                    let _ = found.send(line[at..].trim().to_owned());
                }
            }
        });
        let url = tokio::task::spawn_blocking(move || address.recv_timeout(super::WAIT))
            .await
            .expect("wait for chromium")
            .expect("chromium's DevTools address on stderr");
        let (devtools, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to chromium's DevTools");
        let mut browser = Browser {
            child,
            _profile: profile,
            devtools,
            session: String::new(),
            next_id: 0,
        };
        let target = browser
            .browser_call(
                "Target.createTarget",
                serde_json::json!({ "url": "about:blank" }),
            )
            .await;
        let target = target["targetId"].as_str().expect("a target").to_owned();
        let attached = browser
            .browser_call(
                "Target.attachToTarget",
                serde_json::json!({ "targetId": target, "flatten": true }),
            )
            .await;
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_owned();
        browser.call("Page.enable", serde_json::json!({})).await;
        browser
    }

    async fn browser_call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        self.send(method, params, None).await
    }

    /// A DevTools command to the page; its result.
    pub async fn call(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let session = self.session.clone();
        self.send(method, params, Some(session)).await
    }

    async fn send(
        &mut self,
        method: &str,
        params: serde_json::Value,
        session: Option<String>,
    ) -> serde_json::Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = serde_json::json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = session.into();
        }
        self.devtools
            .send(Message::text(command.to_string()))
            .await
            .expect("send to chromium");
        loop {
            let message = next_json(&mut self.devtools).await;
            if message["id"].as_u64() == Some(id) {
                assert!(
                    message.get("error").is_none(),
                    "{method}: {}",
                    message["error"]
                );
                return message["result"].clone();
            }
        }
    }

    /// Opens `url` in the page.
    pub async fn goto(&mut self, url: &str) {
        self.call("Page.navigate", serde_json::json!({ "url": url }))
            .await;
    }

    /// The value of a JavaScript expression in the page (awaited if a promise).
    pub async fn eval(&mut self, expression: &str) -> serde_json::Value {
        let result = self
            .call(
                "Runtime.evaluate",
                serde_json::json!({
                    "expression": expression,
                    "returnByValue": true,
                    "awaitPromise": true,
                }),
            )
            .await;
        assert!(
            result.get("exceptionDetails").is_none(),
            "{expression}: {}",
            result["exceptionDetails"]
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` is truthy in the page (polled every 50 ms);
    /// its value, or a panic naming `what` after [`super::WAIT`].
    pub async fn wait_for(&mut self, what: &str, expression: &str) -> serde_json::Value {
        let deadline = tokio::time::Instant::now() + super::WAIT;
        loop {
            let value = self
                .call(
                    "Runtime.evaluate",
                    serde_json::json!({ "expression": expression, "returnByValue": true }),
                )
                .await;
            let value = value["result"]["value"].clone();
            let truthy = !matches!(
                value,
                serde_json::Value::Null | serde_json::Value::Bool(false)
            ) && value != serde_json::json!(0)
                && value != serde_json::json!("");
            if truthy {
                return value;
            }
            if tokio::time::Instant::now() > deadline {
                let dom = self
                    .eval("document.body ? document.body.outerHTML : ''")
                    .await;
                panic!("the page never showed {what}: {dom}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The rows of the page's terminal as xterm.js draws them in the DOM.
    pub async fn terminal_rows(&mut self) -> Vec<String> {
        let rows = self
            .eval(
                "Array.from(document.querySelectorAll('#screen .xterm-rows > div'))\
                 .map(row => row.textContent.replace(/\\u00a0/g, ' ').replace(/\\s+$/, ''))",
            )
            .await;
        serde_json::from_value(rows).expect("rows")
    }

    /// Types `text` into the page, a key at a time, as a person would.
    pub async fn type_text(&mut self, text: &str) {
        for c in text.chars() {
            let key = c.to_string();
            for kind in ["keyDown", "keyUp"] {
                let mut event = serde_json::json!({ "type": kind, "key": key });
                if kind == "keyDown" {
                    event["text"] = key.clone().into();
                }
                self.call("Input.dispatchKeyEvent", event).await;
            }
        }
    }

    /// Clicks the middle of the element `selector` finds.
    pub async fn click(&mut self, selector: &str) {
        let at = self
            .eval(&format!(
                "(() => {{ const r = document.querySelector({selector:?}).getBoundingClientRect(); \
                 return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
            ))
            .await;
        let (x, y) = (at[0].as_f64().expect("x"), at[1].as_f64().expect("y"));
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                serde_json::json!({ "type": kind, "x": x, "y": y, "button": "left", "clickCount": 1 }),
            )
            .await;
        }
    }

    /// Saves a PNG of the page as `target/tmp/web-screenshots/NAME.png`: a
    /// test's artifact, for a person to look at. Its path.
    pub async fn screenshot(&mut self, name: &str) -> PathBuf {
        let shot = self
            .call(
                "Page.captureScreenshot",
                serde_json::json!({ "format": "png" }),
            )
            .await;
        let png = base64_decode(shot["data"].as_str().expect("image data"));
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots");
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Standard base64 (what DevTools sends images in).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0);
    for six in text.bytes().filter_map(value) {
        bits = (bits << 6) | u32::from(six);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    out
}
