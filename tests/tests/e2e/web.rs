//! Watching in a browser: real headless Chromium (Debian `chromium`,
//! installed by `.ci/run`) shows the player's screen on `/watch/ID` and the
//! session on `/`; a WebSocket viewer that stops reading converges after a
//! resync; hostile WebSocket input closes that socket alone.

use crate::common;

use common::browser::{chromium_dom_until, next_json, terminal_rows};
use common::*;
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
        "the page's text is the player's screen"
    );
    assert!(
        dom.contains(&format!("data-frame=\"{last}\"")),
        "at the player's last frame"
    );
    assert!(
        dom.contains("opal · test · 80x24"),
        "the status line names the game"
    );
    assert!(dom.contains("class=\"state-live\""));
    assert!(
        lobby_dom.contains(&format!("href=\"/watch/{}\"", game.id)),
        "{lobby_dom}"
    );
    assert!(lobby_dom.contains(">opal<"));
    assert!(lobby_dom.contains("80x24"));
    server.shutdown().await;
}

/// The WebSocket protocol as a page applies it: the rows' text.
#[derive(Default)]
struct Page {
    rows: Vec<String>,
    frame: u64,
    snapshots: u32,
    skipped: u64,
}

impl Page {
    fn apply(&mut self, message: &serde_json::Value) {
        let row_text = |runs: &serde_json::Value| -> String {
            runs.as_array()
                .expect("runs")
                .iter()
                .map(|r| r["t"].as_str().unwrap_or("").to_owned())
                .collect::<String>()
                .trim_end()
                .to_owned()
        };
        match message["type"].as_str() {
            Some("snapshot") => {
                self.rows = message["lines"]
                    .as_array()
                    .expect("lines")
                    .iter()
                    .map(row_text)
                    .collect();
                self.frame = message["frame_id"].as_u64().expect("frame id");
                self.snapshots += 1;
                self.skipped += message["skipped"].as_u64().unwrap_or(0);
            }
            Some("delta") => {
                for change in message["lines"].as_array().expect("lines") {
                    let index = change[0].as_u64().expect("index") as usize;
                    self.rows[index] = row_text(&change[1]);
                }
                let frame = message["frame_id"].as_u64().expect("frame id");
                assert_eq!(frame, self.frame + 1, "deltas come in order, none missing");
                self.frame = frame;
            }
            _ => {}
        }
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

/// Reads until the page is at `frame`.
/// The next message about the screen: status messages (watcher counts) can
/// come at any point and say nothing about frames.
async fn next_screen_message(socket: &mut Socket) -> serde_json::Value {
    loop {
        let message = next_json(socket).await;
        if message["type"] != "status" {
            return message;
        }
    }
}

async fn read_until(socket: &mut Socket, page: &mut Page, frame: u64) {
    while page.frame < frame {
        page.apply(&next_json(socket).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_browser_is_resynced_and_converges() {
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
    assert_eq!(page.rows, player.rows());
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
    assert_eq!(
        first["type"], "delta",
        "the frames since, not the whole screen: {first}"
    );
    assert_eq!(first["frame_id"].as_u64(), Some(page.frame + 1));
    page.apply(&first);
    read_until(&mut socket, &mut page, last).await;
    assert_eq!(page.snapshots, 1, "one snapshot in all: the first join");
    assert_eq!(
        page.rows,
        player.rows(),
        "the resumed page shows the player's screen"
    );

    // A frame the server never had (or no longer keeps): the whole screen.
    let query = format!("session={}&from={}", game.id, last + 1_000);
    let mut socket = open_query(&server, &query).await;
    let first = next_screen_message(&mut socket).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    assert_eq!(first["frame_id"].as_u64(), Some(last));
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
    assert_eq!(page.rows, player.rows());
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
