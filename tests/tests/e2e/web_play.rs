//! Playing and talking in a browser, in real headless Chromium: a player
//! logs in with the form, plays with the keyboard (their keys reach the
//! game, a spectator page's never do), the game follows the window's size,
//! closing the tab detaches and a second tab takes over; pages chat with
//! each other and with gRPC viewers, see who watches, and send the player a
//! message; the options page saves the player's file. Without a browser:
//! the login's cookie, its refusals, and the play socket's Origin and login
//! checks, from strangers' addresses. Screenshots are kept in
//! `target/tmp/web-screenshots/`.

use std::net::{IpAddr, SocketAddr};

use crate::common;

use common::browser::Browser;
use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// An HTTP response as a test reads it: status, headers (names in lower
/// case), body.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 exchange from `source`: `head` is the request line and
/// headers (without the blank line); `body` follows with its length.
async fn exchange(source: IpAddr, to: SocketAddr, head: &str, body: &str) -> Reply {
    let mut socket = tcp_from(source, to).await.expect("connect");
    let request = format!(
        "{head}\r\nHost: {to}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    socket.write_all(request.as_bytes()).await.expect("request");
    // To the end, or to the end of the head of a `101` (the socket then
    // stays open for WebSocket messages).
    let mut response = Vec::new();
    let read = tokio::time::timeout(WAIT, async {
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.expect("response");
            response.extend_from_slice(&buf[..n]);
            let switching = response.starts_with(b"HTTP/1.1 101")
                && response.windows(4).any(|w| w == b"\r\n\r\n");
            if n == 0 || switching {
                return;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no whole response to {head}");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// `application/x-www-form-urlencoded` of `fields`.
fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let value: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        char::from(b).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={value}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// Logs `username` in with the login form from `source`: the cookie pair
/// (`dgate_session=...`) the browser would send back.
async fn log_in(server: &TestServer, source: IpAddr, username: &str) -> String {
    let password = String::from_utf8(password_of(username)).expect("text");
    let reply = exchange(
        source,
        server.http_addr,
        "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        &form(&[("username", username), ("password", &password)]),
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let cookie = reply.header("set-cookie").expect("a cookie");
    cookie.split(';').next().expect("name=value").to_owned()
}

/// Logs in through the page's own form, typing as a person does.
async fn log_in_with_the_form(browser: &mut Browser, username: &str) {
    browser
        .wait_for(
            "the login form",
            "document.querySelector('input[name=username]')",
        )
        .await;
    browser.click("input[name=username]").await;
    browser.type_text(username).await;
    browser.click("input[name=password]").await;
    let password = String::from_utf8(password_of(username)).expect("text");
    browser.type_text(&password).await;
    browser.click("form.login button").await;
}

/// The session `username` plays, once there is one.
async fn session_of(server: &TestServer, username: &str) -> String {
    let mut found = None;
    eventually(&format!("{username} has a game"), || {
        found = server
            .manager
            .list()
            .iter()
            .find(|s| s.info.username == username)
            .map(|s| s.info.id.clone());
        found.is_some()
    })
    .await;
    found.expect("a session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_in_page_plays_its_keys_alone_reach_the_game_and_the_game_follows_the_window() {
    let server = start_server(|c| {
        c.games
            .push(testgame("keyed", &["--keylog", "%d/games/%u/keys"]));
    })
    .await;
    server.account("wren").await;
    let mut browser = Browser::launch(1200, 800).await;
    // Not logged in: the play page sends the browser to log in, and back.
    browser
        .goto(&format!("http://{}/play/keyed", server.http_addr))
        .await;
    log_in_with_the_form(&mut browser, "wren").await;
    browser
        .wait_for(
            "the game's first screen",
            "location.pathname === '/play/keyed' && document.getElementById('screen').dataset.frame !== undefined",
        )
        .await;
    let session_id = session_of(&server, "wren").await;
    let session = server.manager.get(&session_id).expect("the game");

    // The game is the window's size (more than 80x24 in 1200x800), and the
    // page's terminal is the game's.
    let size = session.hub.size();
    assert!(size.cols > 80 && size.rows > 24, "{size}");
    let page_size = browser.eval("[term.cols, term.rows]").await;
    assert_eq!(
        page_size,
        serde_json::json!([size.cols, size.rows]),
        "the page draws the game's size"
    );

    // Typed keys reach the game, in order.
    browser.click("#screen").await;
    browser.type_text("fs").await;
    let keylog = server.data_dir.path().join("games/wren/keys");
    eventually("the keys to reach the game", || {
        std::fs::read(&keylog).is_ok_and(|k| k == b"fs")
    })
    .await;
    let wanted = format!("SIZE {}x{}", size.cols, size.rows);
    browser
        .wait_for(
            "the game's answer to s",
            &format!(
                "Array.from(document.querySelectorAll('#screen .xterm-rows > div')).some(r => r.textContent.includes('{wanted}'))"
            ),
        )
        .await;
    browser.screenshot("play-typed").await;

    // A smaller window: the game follows it.
    browser
        .call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({ "width": 1000, "height": 700, "deviceScaleFactor": 1, "mobile": false }),
        )
        .await;
    eventually("the game to follow the window", || {
        session.hub.size() != size
    })
    .await;
    let resized = session.hub.size();
    assert!(resized.cols < size.cols, "{resized} after {size}");
    browser
        .wait_for(
            "the page at the game's new size",
            &format!(
                "term.cols === {} && term.rows === {}",
                resized.cols, resized.rows
            ),
        )
        .await;

    // A spectator's page types: nothing of it reaches the game.
    let mut spectator = Browser::launch(1000, 700).await;
    spectator
        .goto(&format!("http://{}/watch/{}", server.http_addr, session_id))
        .await;
    spectator
        .wait_for(
            "the spectator's first screen",
            "document.getElementById('screen').dataset.frame !== undefined",
        )
        .await;
    spectator.click("#screen").await;
    spectator.type_text("qxq").await;
    browser.type_text("f").await;
    eventually("the player's next key", || {
        std::fs::read(&keylog).is_ok_and(|k| k == b"fsf")
    })
    .await;
    assert!(server.manager.get(&session_id).is_ok(), "the game goes on");

    // Closing the tab detaches: the game waits for its player.
    browser.goto("about:blank").await;
    eventually("the player to be detached", || session.is_detached()).await;
    assert!(!session.is_ended());
    // Coming back resumes the same game, at the window's size.
    browser
        .goto(&format!("http://{}/play/keyed", server.http_addr))
        .await;
    browser
        .wait_for(
            "the resumed game",
            "document.getElementById('screen').dataset.frame !== undefined && document.getElementById('state').textContent === 'playing'",
        )
        .await;
    eventually("the player to be back", || !session.is_detached()).await;
    assert_eq!(
        session_of(&server, "wren").await,
        session_id,
        "the same game"
    );
    let now = session.hub.size();
    let page_size = browser.eval("[term.cols, term.rows]").await;
    assert_eq!(
        page_size,
        serde_json::json!([now.cols, now.rows]),
        "resumed at the window's size"
    );
    assert_eq!(now, resized, "the same window, the same size");

    // A second tab of the same player takes over; the first is told.
    let mut second = Browser::launch(1000, 700).await;
    second
        .goto(&format!(
            "http://{}/login?next=/play/keyed",
            server.http_addr
        ))
        .await;
    log_in_with_the_form(&mut second, "wren").await;
    second
        .wait_for(
            "the second tab's screen",
            "location.pathname === '/play/keyed' && document.getElementById('screen').dataset.frame !== undefined",
        )
        .await;
    let told = browser
        .wait_for(
            "the first tab being told",
            "document.getElementById('status').textContent.includes('took over') && document.getElementById('status').textContent",
        )
        .await;
    assert!(told.to_string().contains("Another connection"), "{told}");
    second.click("#screen").await;
    second.type_text("f").await;
    eventually("the second tab's key", || {
        std::fs::read(&keylog).is_ok_and(|k| k == b"fsff")
    })
    .await;
    second.screenshot("play-second-tab").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_chat_with_everyone_see_who_watches_and_message_the_player() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("pia", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    server.account("sam").await;
    player.say("welcome, all").await;

    // An anonymous page reads the chat (the history first) but has no input.
    let watch = format!("http://{}/watch/{}", server.http_addr, game.id);
    let mut anonymous = Browser::launch(1100, 700).await;
    anonymous.goto(&watch).await;
    anonymous
        .wait_for(
            "the chat's history",
            "document.getElementById('chat-log').textContent.includes('welcome, all')",
        )
        .await;
    let input_hidden = anonymous
        .eval("document.getElementById('chat-form').hidden && !document.getElementById('chat-login').hidden")
        .await;
    assert_eq!(
        input_hidden,
        serde_json::json!(true),
        "anonymous pages read"
    );

    // A logged-in page says a line: the other page and gRPC viewers get it
    // with its login's name; HTML in it stays text.
    let mut sam = Browser::launch(1100, 700).await;
    sam.goto(&format!(
        "http://{}/login?next=/watch/{}",
        server.http_addr, game.id
    ))
    .await;
    log_in_with_the_form(&mut sam, "sam").await;
    sam.wait_for(
        "the logged-in watch page",
        "location.pathname.startsWith('/watch/') && document.getElementById('screen').dataset.frame !== undefined",
    )
    .await;
    sam.click("#chat-input").await;
    sam.type_text("<b>hi</b> from sam\r").await;
    let line = player
        .wait_for_chat(|e| !e.answer && e.text == "<b>hi</b> from sam")
        .await
        .expect("the page's line");
    assert_eq!(line.sender, "sam");
    anonymous
        .wait_for(
            "sam's line as text",
            "document.getElementById('chat-log').textContent.includes('<b>hi</b> from sam') && !document.querySelector('#chat-log li b b')",
        )
        .await;
    // Who watches: sam by name, the other page anonymously.
    let watching = anonymous
        .wait_for(
            "the audience",
            "document.getElementById('spectators').dataset.names === 'sam' && document.getElementById('spectators').dataset.anonymous === '1' && document.getElementById('spectators').textContent",
        )
        .await;
    assert_eq!(watching, serde_json::json!("Watching: sam, 1 anonymous"));

    // `m`: a message for the player, which their stream gets as a notice.
    sam.click("#screen").await;
    sam.type_text("m").await;
    sam.wait_for(
        "the message form",
        "!document.getElementById('message-form').hidden && document.activeElement.id === 'message-input'",
    )
    .await;
    sam.type_text("your pet is hungry\r").await;
    sam.wait_for(
        "the answer",
        "document.getElementById('answer').textContent.includes('Sent to pia')",
    )
    .await;
    loop {
        let noticed = player.seen.iter().any(|s| {
                matches!(s, Seen::Notice(sender, text, false) if sender == "sam" && text == "your pet is hungry")
            });
        if noticed {
            break;
        }
        assert!(player.step_any().await.expect("the stream"), "the notice");
    }
    sam.screenshot("watch-chat").await;

    // The player kicks sam: sam's page says so and stops.
    player.say("/kick sam").await;
    sam.wait_for(
        "the kick",
        "document.getElementById('status').textContent.includes('no longer watching')",
    )
    .await;
    anonymous
        .wait_for(
            "sam gone from the audience",
            "document.getElementById('spectators').dataset.names === ''",
        )
        .await;
    anonymous.screenshot("watch-chat-anonymous").await;
    // Coming back is refused while the kick lasts, and the page says why
    // (it cannot read a refused upgrade's status) instead of retrying.
    sam.goto(&watch).await;
    let said = sam
        .wait_for(
            "the refusal",
            "document.getElementById('state').textContent === 'ended' && \
             document.getElementById('status').textContent",
        )
        .await;
    assert!(
        said.as_str()
            .unwrap_or_default()
            .starts_with("You cannot watch this game:"),
        "{said}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_login_cookie_is_strict_and_the_play_socket_refuses_strangers() {
    let server = start_server(|_| {}).await;
    server.account("val").await;
    let from = stranger(1);

    // Wrong password: 401, the form again with the name kept and why.
    let reply = exchange(
        from,
        server.http_addr,
        "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        &form(&[
            ("username", "val"),
            ("password", "guess"),
            ("next", "/play/test"),
        ]),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(
        reply.body.contains("wrong username or password"),
        "{}",
        reply.body
    );
    assert!(reply.body.contains("value=\"val\""));
    assert!(reply.header("set-cookie").is_none());
    // A hostile name is shown as text, never markup.
    let reply = exchange(
        from,
        server.http_addr,
        "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        &form(&[("username", "\"><script>x()</script>"), ("password", "p")]),
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(!reply.body.contains("<script>x()"), "{}", reply.body);
    assert!(
        reply
            .body
            .contains("value=\"&quot;&gt;&lt;script&gt;x()&lt;/script&gt;\""),
        "the name is kept, as text: {}",
        reply.body
    );
    // An oversize form: 413, and the server goes on.
    let reply = exchange(
        from,
        server.http_addr,
        "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        &form(&[("username", "val"), ("password", &"p".repeat(10_000))]),
    )
    .await;
    assert_eq!(reply.status, 413);

    // The right password: the cookie is HttpOnly, SameSite=Strict, for the
    // whole site, and not Secure over plain HTTP; `next` is followed only
    // on this server.
    let password = String::from_utf8(password_of("val")).expect("text");
    let reply = exchange(
        from,
        server.http_addr,
        "POST /login HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded",
        &form(&[
            ("username", "val"),
            ("password", &password),
            ("next", "//evil.example/"),
        ]),
    )
    .await;
    assert_eq!(reply.status, 303);
    assert_eq!(reply.header("location"), Some("/"));
    let set = reply.header("set-cookie").expect("a cookie");
    for part in [
        "dgate_session=",
        "HttpOnly",
        "SameSite=Strict",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(set.contains(part), "{part} in {set}");
    }
    assert!(!set.contains("Secure"), "{set}");
    let cookie = set.split(';').next().expect("pair").to_owned();
    // The lobby knows whom it shows, and which games they can play.
    let reply = exchange(
        from,
        server.http_addr,
        &format!("GET / HTTP/1.1\r\nCookie: {cookie}"),
        "",
    )
    .await;
    assert!(
        reply.body.contains("\"username\":\"val\""),
        "{}",
        reply.body
    );

    // The play socket: a page of this server with the cookie only.
    let upgrade = |extra: &str| {
        format!(
            "GET /ws/play?game=test&cols=80&rows=24 HTTP/1.1\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}"
        )
    };
    let own = format!("Origin: http://{}", server.http_addr);
    let cases = [
        (format!("Cookie: {cookie}"), 403, "no Origin"),
        (
            format!("Cookie: {cookie}\r\nOrigin: http://evil.example"),
            403,
            "a foreign Origin",
        ),
    ];
    for (headers, status, what) in cases {
        let head = upgrade(&headers);
        let head = head.trim_end_matches("\r\n");
        let reply = exchange(from, server.http_addr, head, "").await;
        assert_eq!(reply.status, status, "{what}: {}", reply.body);
    }
    // The server's own page without a (valid) login: told on the socket,
    // which a page can read (it offers to log in again).
    for cookie in ["other=1", "dgate_session=00ff", "dgate_session=<script>"] {
        let mut socket = play_socket(&server, "test", cookie).await;
        let told = next_end(&mut socket).await;
        assert!(told.starts_with("Log in to play"), "{cookie}: {told}");
    }
    assert!(
        server.manager.list().is_empty(),
        "no refused socket started a game"
    );
    // A bad size is refused before any game starts.
    let head = format!(
        "GET /ws/play?game=test&cols=0&rows=24 HTTP/1.1\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{own}\r\nCookie: {cookie}"
    );
    let reply = exchange(from, server.http_addr, &head, "").await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    // A game the server does not have: the page is told why on the socket.
    let mut request = format!(
        "ws://{}/ws/play?game=nope&cols=80&rows=24",
        server.http_addr
    )
    .into_client_request()
    .expect("request");
    request.headers_mut().insert(
        "origin",
        format!("http://{}", server.http_addr)
            .parse()
            .expect("origin"),
    );
    request
        .headers_mut()
        .insert("cookie", cookie.parse().expect("cookie"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the upgrade");
    let end = common::browser::next_json(&mut socket).await;
    assert_eq!(end["type"], "end", "{end}");
    assert!(
        end["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("Cannot play: no game with id \"nope\""),
        "{end}"
    );
    // The right page and cookie: the game starts.
    let head = head.replace("cols=0", "cols=90");
    let reply = exchange(from, server.http_addr, &head, "").await;
    assert_eq!(reply.status, 101, "{}", reply.body);
    let session_id = session_of(&server, "val").await;
    let session = server.manager.get(&session_id).expect("the game");
    assert_eq!(session.hub.size().cols, 90);

    // Logging out revokes the token: the cookie no longer opens anything.
    let reply = exchange(
        from,
        server.http_addr,
        &format!("POST /logout HTTP/1.1\r\nCookie: {cookie}\r\n{own}"),
        "",
    )
    .await;
    assert_eq!(reply.status, 303);
    assert!(
        reply
            .header("set-cookie")
            .is_some_and(|c| c.starts_with("dgate_session=;") || c.contains("Max-Age=0")),
        "the cookie is removed: {:?}",
        reply.header("set-cookie")
    );
    let mut socket = play_socket(&server, "test", &cookie).await;
    let told = next_end(&mut socket).await;
    assert!(told.starts_with("Log in to play"), "{told}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_options_page_saves_the_players_file_and_loses_nothing_it_refuses() {
    let server = start_server(|c| {
        let mut game = testgame("ranger", &[]);
        game.rc_file = Some("%d/rc/%g/%u.rc".into());
        game.rc_default = Some("OPTIONS=color\n".into());
        c.games.push(game);
    })
    .await;
    server.account("ola").await;
    let from = stranger(2);

    // Without a login: to the login form, and back here after it.
    let reply = exchange(from, server.http_addr, "GET /options/ranger HTTP/1.1", "").await;
    assert_eq!(reply.status, 303);
    assert_eq!(
        reply.header("location"),
        Some("/login?next=/options/ranger")
    );
    let cookie = log_in(&server, from, "ola").await;
    let reply = exchange(
        from,
        server.http_addr,
        &format!("GET /options/ranger HTTP/1.1\r\nCookie: {cookie}"),
        "",
    )
    .await;
    assert_eq!(reply.status, 200);
    assert!(
        reply.body.contains(">OPTIONS=color\n</textarea>"),
        "{}",
        reply.body
    );

    // A save (a browser sends CR LF): the file has the game's LF lines.
    let own = format!("Origin: http://{}", server.http_addr);
    let post = format!(
        "POST /options/ranger HTTP/1.1\r\nCookie: {cookie}\r\n{own}\r\n\
         Content-Type: application/x-www-form-urlencoded"
    );
    let reply = exchange(
        from,
        server.http_addr,
        &post,
        &form(&[("text", "OPTIONS=color\r\nOPTIONS=!autopickup\r\n")]),
    )
    .await;
    assert_eq!(reply.status, 303, "{}", reply.body);
    let file = server.data_dir.path().join("rc/ranger/ola.rc");
    assert_eq!(
        std::fs::read_to_string(&file).expect("the file"),
        "OPTIONS=color\nOPTIONS=!autopickup\n"
    );
    // Too large: refused with why, and the text is still on the page.
    let big = format!("OPTIONS=color\n# {}\n", "x".repeat(70_000));
    let reply = exchange(from, server.http_addr, &post, &form(&[("text", &big)])).await;
    assert_eq!(reply.status, 413);
    assert!(reply.body.contains("Not saved"), "{}", &reply.body[..300]);
    assert!(reply.body.contains(&"x".repeat(70_000)), "the text is kept");
    assert_eq!(
        std::fs::read_to_string(&file).expect("the file"),
        "OPTIONS=color\nOPTIONS=!autopickup\n",
        "the old file stays"
    );
    // From another site's page: refused.
    let foreign = post.replace(&own, "Origin: http://evil.example");
    let reply = exchange(
        from,
        server.http_addr,
        &foreign,
        &form(&[("text", "OPTIONS=!color")]),
    )
    .await;
    assert_eq!(reply.status, 403);
    // A game without an options file, and no game at all.
    let reply = exchange(
        from,
        server.http_addr,
        &format!("GET /options/test HTTP/1.1\r\nCookie: {cookie}"),
        "",
    )
    .await;
    assert_eq!(reply.status, 409, "{}", reply.body);
    let reply = exchange(
        from,
        server.http_addr,
        &format!("GET /options/nope HTTP/1.1\r\nCookie: {cookie}"),
        "",
    )
    .await;
    assert_eq!(reply.status, 404, "{}", reply.body);
    server.shutdown().await;
}

/// Makes the page a phone held upright: `width`x`height` CSS pixels, touch.
async fn as_phone(browser: &mut Browser, width: u32, height: u32) {
    browser
        .call(
            "Emulation.setDeviceMetricsOverride",
            serde_json::json!({
                "width": width, "height": height, "deviceScaleFactor": 2, "mobile": true,
                "screenOrientation": { "type": "portraitPrimary", "angle": 0 },
            }),
        )
        .await;
    browser
        .call(
            "Emulation.setTouchEmulationEnabled",
            serde_json::json!({ "enabled": true, "maxTouchPoints": 5 }),
        )
        .await;
}

/// A finger's tap on the middle of the element `selector` finds.
async fn tap(browser: &mut Browser, selector: &str) {
    let at = browser
        .eval(&format!(
            "(() => {{ const r = document.querySelector({selector:?}).getBoundingClientRect(); \
             return [r.x + r.width / 2, r.y + r.height / 2]; }})()"
        ))
        .await;
    let point = serde_json::json!({ "x": at[0], "y": at[1] });
    browser
        .call(
            "Input.dispatchTouchEvent",
            serde_json::json!({ "type": "touchStart", "touchPoints": [point] }),
        )
        .await;
    browser
        .call(
            "Input.dispatchTouchEvent",
            serde_json::json!({ "type": "touchEnd", "touchPoints": [] }),
        )
        .await;
}

/// The width in CSS pixels of one of the page terminal's cells.
const CELL_WIDTH: &str =
    "document.querySelector('#screen .xterm-screen').getBoundingClientRect().width / term.cols";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_watches_a_wide_game_readably_and_plays_with_the_key_row() {
    let server = start_server(|c| {
        c.games
            .push(testgame("keyed", &["--keylog", "%d/games/%u/keys"]));
    })
    .await;
    let mut client = server.client().await;
    let game = server
        .start_game_sized("ivy", "test", Some((100, 30)))
        .await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"ffff").await;
    player.wait_for_text("frame 000004").await.expect("frames");
    let last = server.hub(&game.id).last_frame_id().get();

    // The lobby fits a 360-px phone: cards, nothing scrolls sideways.
    let mut phone = Browser::launch(400, 800).await;
    as_phone(&mut phone, 360, 740).await;
    phone.goto(&format!("http://{}/", server.http_addr)).await;
    phone
        .wait_for(
            "the game's card",
            "document.querySelector('#games tr') && document.querySelector('#games tr').textContent.includes('ivy')",
        )
        .await;
    let overflow = phone
        .eval("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        .await;
    assert_eq!(overflow, serde_json::json!(0), "the lobby scrolls sideways");
    let card = phone
        .eval("document.querySelector('#games tr').innerText")
        .await;
    for shown in ["ivy", "100x30"] {
        assert!(card.to_string().contains(shown), "{shown} in {card}");
    }
    // Each value labelled (the labels are drawn before the values).
    let labels = phone
        .eval(
            "getComputedStyle(document.querySelector('#games tr')).display + ' ' + \
             Array.from(document.querySelectorAll('#games tr td[data-label]')).map(td => td.dataset.label).join(',')",
        )
        .await;
    assert_eq!(
        labels,
        serde_json::json!("block Game,Size,Start,Idle,Watchers"),
        "a card"
    );
    phone.screenshot("phone-lobby").await;

    // A 100-column game on a 390-px phone: readable characters around the
    // cursor, not 3.6-px ones.
    as_phone(&mut phone, 390, 844).await;
    phone
        .goto(&format!("http://{}/watch/{}", server.http_addr, game.id))
        .await;
    phone
        .wait_for(
            "the player's screen",
            &format!("document.getElementById('screen').dataset.frame === '{last}'"),
        )
        .await;
    let cell = phone.eval(CELL_WIDTH).await.as_f64().expect("a width");
    assert!(cell >= 7.0, "characters are {cell:.1} px wide");
    let font = phone.eval("term.options.fontSize").await;
    assert!(font.as_f64().expect("a size") >= 12.0, "font {font}");
    // The cursor is in view.
    let in_view = phone
        .eval(&format!(
            "(() => {{ const wrap = document.querySelector('.terminal-wrap'); \
             const x = term.buffer.active.cursorX * ({CELL_WIDTH}); \
             return x >= wrap.scrollLeft && x <= wrap.scrollLeft + wrap.clientWidth; }})()"
        ))
        .await;
    assert_eq!(in_view, serde_json::json!(true), "the cursor is in view");
    phone.screenshot("phone-watch-cropped").await;
    // A tap: the whole screen, scaled to the phone's width.
    tap(&mut phone, "#screen").await;
    phone
        .wait_for("the whole screen", "term.options.fontSize < 12")
        .await;
    let fits = phone
        .eval("document.querySelector('#screen .xterm-screen').getBoundingClientRect().width <= document.querySelector('.terminal-wrap').clientWidth")
        .await;
    assert_eq!(fits, serde_json::json!(true));
    assert_eq!(phone.terminal_rows().await, player.rows());
    phone.screenshot("phone-watch-whole").await;

    // Playing on the phone: the key row is there, and its keys reach the game.
    server.account("ivo").await;
    phone
        .goto(&format!("http://{}/play/keyed", server.http_addr))
        .await;
    log_in_with_the_form(&mut phone, "ivo").await;
    phone
        .wait_for(
            "the phone's game",
            "location.pathname === '/play/keyed' && document.getElementById('state').textContent === 'playing'",
        )
        .await;
    let keys_shown = phone.eval("!document.getElementById('keys').hidden").await;
    assert_eq!(
        keys_shown,
        serde_json::json!(true),
        "a touch screen has the keys"
    );
    for button in [
        "#keys [data-send=\"h\"]",
        "#keys [data-key=\"esc\"]",
        "#keys [data-key=\"ctrl\"]",
    ] {
        tap(&mut phone, button).await;
    }
    phone.type_text("d").await;
    tap(&mut phone, "#keys [data-key=\"left\"]").await;
    let keylog = server.data_dir.path().join("games/ivo/keys");
    eventually("the phone's keys to reach the game", || {
        std::fs::read(&keylog).is_ok_and(|k| k == b"h\x1b\x04\x1b[D")
    })
    .await;
    let size = server
        .manager
        .list()
        .iter()
        .find(|s| s.info.username == "ivo")
        .map(|s| s.hub.size())
        .expect("ivo's game");
    assert_eq!((size.cols, size.rows >= 24), (80, true), "{size}");
    phone.screenshot("phone-play").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_players_page_links_their_game_their_files_and_their_replays() {
    let server = start_server(|c| {
        let mut game = testgame("pub", &[]);
        game.rc_file = Some("%d/rc/%g/%u.rc".into());
        game.rc_default = Some("OPTIONS=color\n".into());
        game.rc_public = true;
        game.published
            .insert("xlogfile".into(), "%d/published/xlogfile".into());
        c.games.push(game);
    })
    .await;
    let mut client = server.client().await;
    // A finished, recorded game, and one in progress.
    let over = server.start_game("uma", "test").await;
    let mut player = Viewer::player(&mut client, &over).await.expect("player");
    player.ready().await;
    player.send(b"fq").await;
    player.read_to_end().await.expect("game over");
    let live = server.start_game("uma", "pub").await;
    let from = stranger(3);

    let mut page = String::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !page.contains("/replay/uma/test/") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never listed the replay: {page}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let reply = exchange(from, server.http_addr, "GET /player/uma HTTP/1.1", "").await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        page = reply.body;
    }
    for link in [
        format!("href=\"/watch/{}\"", live.id),
        "href=\"/rc/uma/pub\"".to_owned(),
        "href=\"/files/pub/xlogfile\"".to_owned(),
        "href=\"/recordings/uma/test/".to_owned(),
    ] {
        assert!(page.contains(&link), "{link} in {page}");
    }
    // The links work.
    let reply = exchange(from, server.http_addr, "GET /rc/uma/pub HTTP/1.1", "").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (200, "OPTIONS=color\n")
    );

    // Names no account has, and hostile ones: a plain 404.
    for path in [
        "/player/nobody",
        "/player/%3Cscript%3E",
        "/player/..%2F..%2Fetc",
    ] {
        let reply = exchange(from, server.http_addr, &format!("GET {path} HTTP/1.1"), "").await;
        assert_eq!(reply.status, 404, "{path}");
        assert!(!reply.body.contains("<script>"), "{}", reply.body);
    }
    server.shutdown().await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A play socket as a page opens it, with `cookie`.
async fn play_socket(server: &TestServer, game: &str, cookie: &str) -> Socket {
    let mut request = format!(
        "ws://{}/ws/play?game={game}&cols=80&rows=24",
        server.http_addr
    )
    .into_client_request()
    .expect("request");
    let headers = request.headers_mut();
    headers.insert(
        "origin",
        format!("http://{}", server.http_addr)
            .parse()
            .expect("origin"),
    );
    headers.insert("cookie", cookie.parse().expect("cookie"));
    tokio_tungstenite::connect_async(request)
        .await
        .expect("the upgrade")
        .0
}

/// The next `end` control on `socket` (other messages skipped).
async fn next_end(socket: &mut Socket) -> String {
    loop {
        let control = common::browser::next_json(socket).await;
        if control["type"] == "end" {
            return control["message"].as_str().unwrap_or_default().to_owned();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_over_play_socket_types_nothing_and_a_ban_ends_the_other() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let server = start_server(|c| {
        c.games
            .push(testgame("keyed", &["--keylog", "%d/games/%u/keys"]));
    })
    .await;
    server.account("zoe").await;
    let from = stranger(4);
    let cookie = log_in(&server, from, "zoe").await;
    let keylog = server.data_dir.path().join("games/zoe/keys");

    let mut first = play_socket(&server, "keyed", &cookie).await;
    first
        .send(Message::binary(b"f".to_vec()))
        .await
        .expect("a key");
    eventually("the first socket's key", || {
        std::fs::read(&keylog).is_ok_and(|k| k == b"f")
    })
    .await;
    // A second tab takes over: the first is told, and its keys go nowhere.
    let mut second = play_socket(&server, "keyed", &cookie).await;
    let told = next_end(&mut first).await;
    assert_eq!(told, "Another connection of yours took over this game.");
    let _ = first.send(Message::binary(b"qqq".to_vec())).await;
    second
        .send(Message::binary(b"s".to_vec()))
        .await
        .expect("a key");
    eventually("the second socket's key", || {
        std::fs::read(&keylog).is_ok_and(|k| k == b"fs")
    })
    .await;

    // The operator bans zoe: her open page is told why and ends.
    let store = dgate_server::accounts::AccountStore::open(
        &server.data_dir.path().join("dgate.db"),
        std::time::Duration::from_secs(60),
    )
    .expect("the store");
    store.set_banned("zoe", true).expect("ban");
    let told = next_end(&mut second).await;
    assert_eq!(
        told,
        "Your login has ended: your account was banned. Log in again."
    );
    let _ = second.send(Message::binary(b"q".to_vec())).await;
    let session_id = session_of(&server, "zoe").await;
    let session = server.manager.get(&session_id).expect("the game");
    eventually("the player to be detached", || session.is_detached()).await;
    assert_eq!(
        std::fs::read(&keylog).expect("keys"),
        b"fs",
        "nothing more typed"
    );
    server.shutdown().await;
}
