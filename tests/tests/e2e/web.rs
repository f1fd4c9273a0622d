//! Watching in a browser: real headless Chromium (Debian `chromium`,
//! installed by `.ci/run`) draws the game's bytes with xterm.js on
//! `/watch/ID`: a late joiner's page shows the player's screen in xterm's
//! bright colours, a paused page converges after a resync, a spectator's
//! keys never reach the game, the end links the replay, which plays to its
//! end, and a finished game's page links it too. The socket's protocol
//! (terminal bytes as binary messages, JSON controls) is checked as a page
//! applies it, with a screen model: resync, resume, hostile input.
//! Screenshots of the Chromium pages are kept in `target/tmp/web-screenshots/`.

use crate::common;

use common::browser::{Browser, chromium_dom_until, next_json, terminal_rows};
use common::*;
use dgate_term::{ScreenModel, TermSize};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_shows_the_players_screen_and_the_lobby_lists_the_game() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("opal", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"ffm").await;
    player.wait_for_text("keys: ffm").await.expect("frames");
    let last = server.hub(&game.id).last_frame_id().get();
    player.wait_for_frame(last).await.expect("all frames");

    let watch = format!("http://{}/watch/{}", server.http_addr, game.id);
    let lobby = format!("http://{}/", server.http_addr);
    let at_last = format!("data-frame=\"{last}\"");
    let (dom, lobby_dom) = tokio::task::spawn_blocking(move || {
        (
            chromium_dom_until(&watch, |dom| dom.contains(&at_last)),
            chromium_dom_until(&lobby, |dom| dom.contains("href=\"/watch/")),
        )
    })
    .await
    .expect("chromium runs");
    assert_eq!(
        terminal_rows(&dom),
        player.rows(),
        "the page's text is the player's screen: {dom}"
    );
    assert!(
        dom.contains(&format!("data-frame=\"{last}\"")),
        "at the player's last frame"
    );
    assert!(
        dom.contains("opal · TEST · 80x24"),
        "the status line names the game as menus do: {dom}"
    );
    assert!(dom.contains("class=\"state-live\""));
    assert!(
        lobby_dom.contains(&format!("href=\"/watch/{}\"", game.id)),
        "{lobby_dom}"
    );
    assert!(lobby_dom.contains(">opal<"));
    assert!(lobby_dom.contains(">TEST<"), "the game's short name");
    assert!(lobby_dom.contains("80x24"));
    server.shutdown().await;
}

/// The class and colour of the terminal's cell run holding `text`.
async fn style_of(browser: &mut Browser, text: &str) -> (String, String) {
    let found = browser
        .eval(&format!(
            "(() => {{ const span = Array.from(document.querySelectorAll('#screen .xterm-rows span'))\
             .find(s => s.textContent.includes({text:?})); \
             return span ? [span.className, getComputedStyle(span).color] : null; }})()"
        ))
        .await;
    (
        found[0].as_str().unwrap_or_default().to_owned(),
        found[1].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_sees_the_game_in_bright_colours_and_its_keys_never_reach_it() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("iris", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    // Frames (bold colours), then the alternate screen's bold yellow title.
    player.send(b"fffa").await;
    player
        .wait_for_text("ALTERNATE SCREEN")
        .await
        .expect("alternate screen");
    let last = server.hub(&game.id).last_frame_id().get();
    player.wait_for_frame(last).await.expect("all frames");

    // Joining late: the snapshot alone draws the player's screen.
    let mut browser = Browser::launch(1200, 800).await;
    browser
        .goto(&format!("http://{}/watch/{}", server.http_addr, game.id))
        .await;
    browser
        .wait_for(
            "the player's last frame",
            &format!("document.getElementById('screen').dataset.frame === '{last}'"),
        )
        .await;
    assert_eq!(browser.terminal_rows().await, player.rows());
    // `ESC[1;33m`: bold draws colour 3 as colour 11, xterm's bright yellow.
    let (class, colour) = style_of(&mut browser, "ALTERNATE SCREEN").await;
    assert!(
        class.split(' ').any(|c| c == "xterm-fg-11"),
        "bold yellow is drawn bright: {class}"
    );
    assert_eq!(colour, "rgb(255, 255, 0)");
    let (class, colour) = style_of(&mut browser, "@").await;
    assert!(class.split(' ').any(|c| c == "xterm-fg-2"), "{class}");
    assert_eq!(colour, "rgb(0, 205, 0)", "plain green stays green");
    // Back on the primary screen: each frame's bold colour brightened.
    player.send(b"Af").await;
    player.wait_for_text("frame 000004").await.expect("frame 4");
    let last = server.hub(&game.id).last_frame_id().get();
    player.wait_for_frame(last).await.expect("all frames");
    browser
        .wait_for(
            "the primary screen",
            &format!("document.getElementById('screen').dataset.frame === '{last}'"),
        )
        .await;
    assert_eq!(browser.terminal_rows().await, player.rows());
    // Frame 4 is drawn in `ESC[1;35m` (the game's colour is 31 + n % 7):
    // magenta, drawn as colour 13 (bright) as xterm draws bold.
    let (class, _) = style_of(&mut browser, "frame 000004").await;
    assert!(class.split(' ').any(|c| c == "xterm-fg-13"), "{class}");
    assert!(class.split(' ').any(|c| c == "xterm-bold"), "{class}");
    browser.screenshot("late-joiner").await;

    // A spectator types into the page: nothing reaches the game.
    browser.click("#screen").await;
    browser.type_text("qxyz\r").await;
    player.send(b"f").await;
    player.wait_for_text("frame 000005").await.expect("frame 5");
    let last = server.hub(&game.id).last_frame_id().get();
    browser
        .wait_for(
            "the frame after the typing",
            &format!("document.getElementById('screen').dataset.frame === '{last}'"),
        )
        .await;
    // The game shows the last keys it read: the player's, not the page's
    // (whose `q` and `x` would have ended it).
    assert_eq!(
        player.rows()[1],
        "keys: f",
        "only the player's keys reached the game"
    );
    assert!(server.manager.get(&game.id).is_ok(), "the game goes on");
    browser.screenshot("spectator-typed").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_end_links_the_replay_which_plays_to_its_end() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("juno", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"fff").await;
    player.wait_for_text("frame 000003").await.expect("frames");
    // A line in the game's chat: recorded beside the game, it replays too.
    player.say("good luck, <me>").await;
    player
        .wait_for_chat(|e| e.text == "good luck, <me>")
        .await
        .expect("the line");

    let mut browser = Browser::launch(1200, 800).await;
    browser
        .goto(&format!("http://{}/watch/{}", server.http_addr, game.id))
        .await;
    browser
        .wait_for(
            "the live page",
            "document.getElementById('state').textContent === 'live'",
        )
        .await;
    // The game ends while the page watches: it says so and links the replay
    // once the recording is on disk.
    player.send(b"q").await;
    player.read_to_end().await.expect("game over");
    let final_rows = player.rows();
    let replay = browser
        .wait_for(
            "the replay's link",
            "(() => { const a = document.getElementById('replay-link'); \
             return a && !a.hidden && a.getAttribute('href'); })()",
        )
        .await;
    let replay = replay.as_str().expect("a link").to_owned();
    assert!(
        replay.starts_with("/replay/juno/test/"),
        "the link is the recording's replay: {replay}"
    );
    let status = browser
        .eval("document.getElementById('status').textContent")
        .await;
    assert!(
        status.as_str().unwrap_or_default().contains("has ended"),
        "{status}"
    );
    browser.screenshot("game-ended").await;

    // The finished game's own page: it ended, and where its replay is.
    let (status, body) = http_get(server.http_addr, &format!("/watch/{}", game.id));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("has ended"), "{body}");
    assert!(
        body.contains("juno · TEST"),
        "the game's short name: {body}"
    );
    assert!(
        body.contains(&format!("href=\"{replay}\"")),
        "the finished game's page links its replay: {body}"
    );
    browser
        .goto(&format!("http://{}/watch/{}", server.http_addr, game.id))
        .await;
    browser
        .wait_for(
            "the finished game's page",
            "document.getElementById('replay-link') !== null",
        )
        .await;
    browser.screenshot("finished-game-page").await;

    // Its replay plays to the end and shows the player's last screen.
    browser.click("#replay-link").await;
    browser
        .wait_for(
            "the replay's end",
            "document.getElementById('state') && \
             document.getElementById('state').textContent === 'ended' && \
             document.getElementById('screen').dataset.frame",
        )
        .await;
    assert_eq!(browser.terminal_rows().await, final_rows);
    let status = browser
        .eval("document.getElementById('status').textContent")
        .await;
    assert!(
        status
            .as_str()
            .unwrap_or_default()
            .starts_with("Replay: juno · test (TEST)"),
        "{status}"
    );
    // The chat said during the game is beside its replay, once, as text.
    let chat = browser
        .wait_for(
            "the replayed chat",
            "document.querySelectorAll('#chat-log li').length === 1 && \
             document.getElementById('chat-log').textContent",
        )
        .await;
    assert!(
        chat.as_str()
            .unwrap_or_default()
            .ends_with("juno: good luck, <me>"),
        "{chat}"
    );
    browser.screenshot("replay-ended").await;
    // Back to the start, paused: the line is not said yet there.
    browser.eval("steer({ paused: true }); seek(0)").await;
    browser
        .wait_for(
            "the chat at 0:00",
            "document.querySelectorAll('#chat-log li').length === 0 && \
             replay.position === 0 && replay.paused",
        )
        .await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_chromium_page_is_resynced_and_converges() {
    let server = start_server(|c| {
        c.games
            .push(testgame("burst", &["--burst", "30000", "--pad", "8"]));
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("pax", "burst").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let mut browser = Browser::launch(1200, 800).await;
    browser
        .goto(&format!("http://{}/watch/{}", server.http_addr, game.id))
        .await;
    browser
        .wait_for(
            "the first screen",
            "document.getElementById('screen').dataset.frame !== undefined",
        )
        .await;
    // The page stops (its script paused in the debugger, so it reads
    // nothing: Chromium stops reading its socket) while the game bursts; the
    // player is not held up.
    browser.call("Debugger.enable", serde_json::json!({})).await;
    browser.call("Debugger.pause", serde_json::json!({})).await;
    player.send(b"b").await;
    player
        .wait_for_text("BURST-DONE 30000")
        .await
        .expect("the player gets the whole burst");
    let last = server.hub(&game.id).last_frame_id().get();
    player
        .wait_for_frame(last)
        .await
        .expect("the player is at the last frame");
    browser.call("Debugger.resume", serde_json::json!({})).await;
    browser
        .wait_for(
            "the last frame after the pause",
            &format!("document.getElementById('screen').dataset.frame === '{last}'"),
        )
        .await;
    let skipped = browser
        .eval("Number(document.getElementById('screen').dataset.skipped)")
        .await;
    assert!(
        skipped.as_u64().unwrap_or(0) > 0,
        "the paused page was resynced (skipped {skipped})"
    );
    assert_eq!(browser.terminal_rows().await, player.rows());
    browser.screenshot("paused-and-resynced").await;
    server.shutdown().await;
}

/// The WebSocket protocol as a page applies it: a terminal of its own fed
/// the snapshots and frames, the frames counted on from each snapshot.
#[derive(Default)]
struct Page {
    screen: Option<ScreenModel>,
    frame: u64,
    snapshots: u32,
    skipped: u64,
    /// A snapshot was announced: the next binary message is its body.
    announced: Option<serde_json::Value>,
}

impl Page {
    fn apply(&mut self, message: &Message) {
        match message {
            Message::Text(text) => {
                let control: serde_json::Value = serde_json::from_str(text).expect("JSON");
                if control["type"] == "snapshot" {
                    self.announced = Some(control);
                }
            }
            Message::Binary(bytes) => match self.announced.take() {
                Some(snapshot) => {
                    let size = |key: &str| snapshot[key].as_u64().expect("size") as u16;
                    let mut screen = ScreenModel::new(TermSize::new(size("cols"), size("rows")));
                    screen.process(bytes);
                    self.screen = Some(screen);
                    self.frame = snapshot["frame_id"].as_u64().expect("frame id");
                    self.snapshots += 1;
                    self.skipped += snapshot["skipped"].as_u64().unwrap_or(0);
                }
                None => {
                    self.screen
                        .as_mut()
                        .expect("a snapshot comes first")
                        .process(bytes);
                    self.frame += 1;
                }
            },
            _ => {}
        }
    }

    fn rows(&self) -> Vec<String> {
        let screen = self.screen.as_ref().expect("a screen");
        screen
            .screen()
            .rows(0, screen.size().cols)
            .map(|row| row.trim_end().to_owned())
            .collect()
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(server: &TestServer, session: &str) -> Socket {
    open_query(server, &format!("session={session}")).await
}

async fn open_query(server: &TestServer, query: &str) -> Socket {
    let url = format!("ws://{}/ws/spectate?{query}", server.http_addr);
    tokio_tungstenite::connect_async(url)
        .await
        .expect("WebSocket")
        .0
}

async fn next_message(socket: &mut Socket) -> Message {
    tokio::time::timeout(WAIT, socket.next())
        .await
        .expect("a message in time")
        .expect("the socket is open")
        .expect("a message")
}

/// The next message about the screen: status messages (watcher counts) can
/// come at any point and say nothing about frames.
async fn next_screen_message(socket: &mut Socket) -> Message {
    loop {
        let message = next_message(socket).await;
        if let Message::Text(text) = &message
            && text.contains("\"type\":\"status\"")
        {
            continue;
        }
        return message;
    }
}

/// Reads until the page is at `frame` (with a screen).
async fn read_until(socket: &mut Socket, page: &mut Page, frame: u64) {
    while page.screen.is_none() || page.frame < frame || page.announced.is_some() {
        page.apply(&next_message(socket).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_socket_is_resynced_and_converges() {
    let server = start_server(|c| {
        c.games
            .push(testgame("burst", &["--burst", "30000", "--pad", "8"]));
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("pia", "burst").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let mut socket = open(&server, &game.id).await;
    let mut page = Page::default();
    read_until(&mut socket, &mut page, 0).await;
    // The page stops reading while the game bursts; the player is not held up.
    player.send(b"b").await;
    player
        .wait_for_text("BURST-DONE 30000")
        .await
        .expect("the player gets the whole burst");
    let last = server.hub(&game.id).last_frame_id().get();
    // (On a busy machine the player may be resynced too; what counts is that
    // it gets the whole burst without waiting for the page.)
    player
        .wait_for_frame(last)
        .await
        .expect("the player is at the last frame");
    // Reading again: a resync snapshot, then exactly the player's screen.
    read_until(&mut socket, &mut page, last).await;
    assert!(
        page.snapshots >= 2 && page.skipped > 0,
        "the paused page was resynced"
    );
    assert_eq!(page.rows(), player.rows());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_that_reconnects_resumes_from_its_last_frame() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("rhea", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let mut page = Page::default();
    let mut socket = open(&server, &game.id).await;
    let shown = server.hub(&game.id).last_frame_id().get();
    read_until(&mut socket, &mut page, shown).await;
    // The connection drops; the game goes on for a few frames.
    drop(socket);
    player.send(b"fff").await;
    player
        .wait_for_text("frame 000003")
        .await
        .expect("three frames");
    let last = server.hub(&game.id).last_frame_id().get();
    player
        .wait_for_frame(last)
        .await
        .expect("the player is there");

    let query = format!("session={}&from={}", game.id, page.frame);
    let mut socket = open_query(&server, &query).await;
    let first = next_screen_message(&mut socket).await;
    assert!(
        matches!(first, Message::Binary(_)),
        "the frames since, not the whole screen: {first:?}"
    );
    page.apply(&first);
    read_until(&mut socket, &mut page, last).await;
    assert_eq!(page.snapshots, 1, "one snapshot in all: the first join");
    assert_eq!(
        page.rows(),
        player.rows(),
        "the resumed page shows the player's screen"
    );

    // A frame the server never had (or no longer keeps): the whole screen.
    let query = format!("session={}&from={}", game.id, last + 1_000);
    let mut socket = open_query(&server, &query).await;
    let first = next_json(&mut socket).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    assert!(first["frame_id"].as_u64() <= Some(last), "{first}");
    let mut again = Page::default();
    again.apply(&Message::text(first.to_string()));
    read_until(&mut socket, &mut again, last).await;
    assert_eq!(again.rows(), player.rows());
    // Not a number: a clear HTTP error, not a socket.
    let url = format!(
        "http://{}/ws/spectate?session={}&from=yesterday",
        server.http_addr, game.id
    );
    let refused = tokio_tungstenite::connect_async(url.replace("http://", "ws://")).await;
    assert!(refused.is_err(), "a bad frame id is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_websocket_input_closes_that_socket_alone() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("quin", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;

    let mut good = open(&server, &game.id).await;
    let mut page = Page::default();
    read_until(&mut good, &mut page, 0).await;

    // Thousands of small text messages: ignored (the page is read-only).
    let mut chatty = open(&server, &game.id).await;
    for i in 0..2000 {
        chatty
            .send(Message::text(format!("q{i}")))
            .await
            .expect("send");
    }
    // Binary garbage, and a message over the size limit: each closes its own socket.
    let mut binary = open(&server, &game.id).await;
    binary
        .send(Message::binary(vec![0xff; 64]))
        .await
        .expect("send");
    let mut huge = open(&server, &game.id).await;
    let _ = huge.send(Message::text("x".repeat(1 << 20))).await;
    for socket in [&mut binary, &mut huge] {
        let closed = tokio::time::timeout(WAIT, async {
            loop {
                match socket.next().await {
                    None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                    Some(Ok(_)) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the hostile socket is closed");
    }

    // The game, the player and the good viewer go on; the chatty one too.
    player.send(b"ff").await;
    player.wait_for_text("frame 000002").await.expect("frames");
    let last = server.hub(&game.id).last_frame_id().get();
    read_until(&mut good, &mut page, last).await;
    assert_eq!(page.rows(), player.rows());
    let mut chatty_page = Page::default();
    read_until(&mut chatty, &mut chatty_page, last).await;
    assert!(
        !player.screen.screen().contents().contains("q1"),
        "page input never reaches the game"
    );
    eventually("the hostile sockets to be unregistered", || {
        server
            .manager
            .get(&game.id)
            .is_ok_and(|s| s.spectators.len() == 2)
    })
    .await;

    // Unknown sessions: clear HTTP errors.
    let (status, body) = http_get(server.http_addr, "/ws/spectate?session=nope");
    assert_eq!(status, 404, "{body}");
    assert!(body.contains("no session with id"));
    let (status, body) = http_get(server.http_addr, "/watch/nope");
    assert_eq!(status, 404);
    assert!(body.contains("The games in progress"));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_drawing_wide_characters_and_the_title_are_drawn_as_the_player_sees_them() {
    let server = start_server(|c| {
        let mut drawing = testgame("drawing", &[]);
        drawing.binary.path = "/bin/sh".into();
        drawing.binary.args = vec![
            "-c".into(),
            "printf '\\033]2;the title\\007\\033(0lqqk\\033(B wide: \\345\\255\\227x\\r\\n\
             \\033(0x  x\\033(B\\r\\n\\033(0mqqj\\033(B\\r\\nDONE'; sleep 30"
                .into(),
        ];
        c.games.push(drawing);
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("lark", "drawing").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.wait_for_text("DONE").await.expect("the drawing");
    let last = server.hub(&game.id).last_frame_id().get();
    player.wait_for_frame(last).await.expect("all frames");

    let mut browser = Browser::launch(1200, 800).await;
    browser
        .goto(&format!("http://{}/watch/{}", server.http_addr, game.id))
        .await;
    browser
        .wait_for(
            "the drawing",
            &format!("document.getElementById('screen').dataset.frame === '{last}'"),
        )
        .await;
    let rows = browser.terminal_rows().await;
    assert_eq!(&rows[..4], ["┌──┐ wide: 字x", "│  │", "└──┘", "DONE"]);
    assert_eq!(
        rows,
        player.rows(),
        "the page shows what the player's terminal shows"
    );
    let title = browser
        .eval("document.getElementById('screen').dataset.title")
        .await;
    assert_eq!(title, "the title", "the game's title (OSC 2)");
    browser.screenshot("line-drawing").await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_a_renewed_keyframe_and_the_games_resize() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("mira", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    // A page watching from the start, through more frames than the feed
    // keeps behind its keyframe (it renews it from the hub)...
    let mut early = open(&server, &game.id).await;
    let mut early_page = Page::default();
    read_until(&mut early, &mut early_page, 0).await;
    for _ in 0..5 {
        player.send(&[b'f'; 10]).await;
    }
    player
        .wait_for_text("frame 000050")
        .await
        .expect("50 frames");
    let last = server.hub(&game.id).last_frame_id().get();
    player.wait_for_frame(last).await.expect("all frames");
    // ... and one joining after them: both show the player's screen.
    let mut late = open(&server, &game.id).await;
    let mut late_page = Page::default();
    read_until(&mut late, &mut late_page, last).await;
    read_until(&mut early, &mut early_page, last).await;
    assert_eq!(late_page.rows(), player.rows());
    assert_eq!(early_page.rows(), player.rows());
    assert_eq!(
        early_page.snapshots, 1,
        "no resync for a page that keeps up"
    );

    // The game's terminal is resized: every page gets the new size and the
    // screen at it.
    player.send_resize(100, 30).await;
    player.send(b"s").await;
    player.wait_for_text("SIZE 100x30").await.expect("resized");
    let last = server.hub(&game.id).last_frame_id().get();
    player.wait_for_frame(last).await.expect("all frames");
    for (socket, page) in [(&mut early, &mut early_page), (&mut late, &mut late_page)] {
        read_until(socket, page, last).await;
        let size = page.screen.as_ref().expect("a screen").size();
        assert_eq!((size.cols, size.rows), (100, 30));
        assert_eq!(page.rows(), player.rows());
    }
    server.shutdown().await;
}
