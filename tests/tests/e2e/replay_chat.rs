//! A finished game's chat replays with it: each line when the replay
//! reaches the moment it was said (after the frame before it, idle pauses
//! capped as the frames' are), and after every seek the lines said up to
//! there, each once. Checked where users see it: `StreamRecording` (what
//! `dgate replay --remote` plays), the browser's `/ws/replay`, `dgate
//! replay` in a real terminal, local and remote, and the SSH front end's
//! recent games. A damaged line of the chat log is skipped.
//!
//! The recordings are written here, as the recorder writes them, with
//! known times: frames at 0, 1, 2, 3 s, then a 10 s pause (played as the
//! 5 s cap) and frames at 13 and 14 s (played at 8 and 9 s).

use crate::common;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use common::browser::{http_get, next_json};
use common::tmux::Tmux;
use common::*;
use dgate_proto::pb;
use dgate_proto::pb::recording_control::Control;
use dgate_proto::pb::recording_event::Event;
use dgate_server::broadcast::chat::ChatLine;
use dgate_term::TermSize;
use dgate_term::recording::RecordingMeta;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::tungstenite::Message;

/// Wall-clock seconds after the start at which each frame was written.
const FRAMES: [f64; 6] = [0.0, 1.0, 2.0, 3.0, 13.0, 14.0];
/// Where each plays: the 10 s pause is cut to 5 s.
const FRAME_AT: [f64; 6] = [0.0, 1.0, 2.0, 3.0, 8.0, 9.0];

/// Each line: when it was said (seconds after the start), who said it,
/// what, and where it plays.
const SAID: [(f64, &str, &str, f64); 5] = [
    (-2.0, "vera", "before the game", 0.0),
    (1.5, "ann", "between frames", 1.5),
    (5.0, "vera", "in the pause", 5.0),
    // 10.5 s into the pause: after the 5 s cap, past the frame at 13 s.
    (13.5, "ann", "after the pause", 8.5),
    // After the last frame: at the end.
    (30.0, "bob", "after the end", 9.0),
];

fn texts() -> Vec<String> {
    SAID.iter()
        .map(|(_, _, text, _)| (*text).to_owned())
        .collect()
}

/// Writes a finished recording of `user`'s `test` game under the server's
/// recordings, with its chat (and damaged lines among it); returns its id
/// and the recording file.
fn write_recording(server: &TestServer, user: &str) -> (String, PathBuf) {
    let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let at = |s: f64| {
        if s >= 0.0 {
            start + Duration::from_secs_f64(s)
        } else {
            start - Duration::from_secs_f64(-s)
        }
    };
    let dir = server
        .data_dir
        .path()
        .join("ttyrec")
        .join(user)
        .join("test");
    std::fs::create_dir_all(&dir).expect("recording dir");
    let stem = "2023-11-14T22:13:20.000Z".to_owned();
    let mut ttyrec = Vec::new();
    for (i, s) in FRAMES.iter().enumerate() {
        let data = format!("\x1b[{};1HFRAME {i}", i + 1);
        dgate_term::ttyrec::write_record(&mut ttyrec, at(*s), data.as_bytes()).expect("record");
    }
    let recording = format!("{stem}.ttyrec");
    std::fs::write(dir.join(&recording), ttyrec).expect("ttyrec");
    let mut meta = RecordingMeta::new("s1", user, "test", TermSize::new(80, 24), stem.clone());
    meta.recording = recording.clone();
    meta.end = "2023-11-14T22:13:34.000Z".to_owned();
    meta.frames = FRAMES.len() as u64;
    meta.exit_code = Some(0);
    std::fs::write(
        dir.join(format!("{stem}.json")),
        serde_json::to_vec_pretty(&meta).expect("meta JSON"),
    )
    .expect("meta");
    let mut log = String::new();
    for (i, (s, sender, text, _)) in SAID.iter().enumerate() {
        let line = ChatLine {
            id: i as u64 + 1,
            sender: (*sender).to_owned(),
            text: (*text).to_owned(),
            sent_at: at(*s),
            from_player: *sender == "vera",
            from_admin: false,
        };
        log.push_str(&serde_json::to_string(&line).expect("line JSON"));
        log.push('\n');
        if i == 1 {
            // Damage: not JSON, a line missing its fields, a bad time.
            log.push_str("}{ not a chat line\n{\"id\": 9}\n");
            log.push_str(
                "{\"id\":10,\"sender\":\"x\",\"text\":\"never\",\"sent_at\":\"yesterday\",\
                 \"from_player\":false,\"from_admin\":false}\n",
            );
        }
    }
    std::fs::write(dir.join(format!("{stem}.chat.jsonl")), log).expect("chat log");
    (format!("{user}/test/{stem}"), dir.join(recording))
}

/// A `StreamRecording` call opened on `id` with the default idle cap.
async fn open_remote(
    server: &TestServer,
    id: &str,
) -> (
    mpsc::Sender<pb::RecordingControl>,
    tonic::Streaming<pb::RecordingEvent>,
) {
    let mut client = server.client().await;
    let (tx, rx) = mpsc::channel(8);
    let open = Control::Open(pb::OpenRecording {
        recording_id: id.to_owned(),
        max_idle_seconds: 5.0,
    });
    tx.send(pb::RecordingControl {
        control: Some(open),
    })
    .await
    .expect("queue");
    let events = client
        .stream_recording(ReceiverStream::new(rx))
        .await
        .expect("the recording opens")
        .into_inner();
    (tx, events)
}

async fn next_event(events: &mut tonic::Streaming<pb::RecordingEvent>) -> Event {
    tokio::time::timeout(WAIT, events.message())
        .await
        .expect("an event in time")
        .expect("a healthy stream")
        .and_then(|e| e.event)
        .expect("an event")
}

async fn steer(controls: &mut mpsc::Sender<pb::RecordingControl>, control: Control) {
    controls
        .send(pb::RecordingControl {
            control: Some(control),
        })
        .await
        .expect("control");
}

/// What a client shows as the chat: cleared at each screen (opening,
/// seek), then every line in the order it came.
#[derive(Debug, Default)]
struct ChatLog {
    lines: Vec<String>,
    /// The lines since the last screen that came as history.
    history: Vec<String>,
}

impl ChatLog {
    fn screen(&mut self) {
        self.lines.clear();
        self.history.clear();
    }

    fn line(&mut self, text: &str, history: bool) {
        if history {
            assert_eq!(
                self.lines.len(),
                self.history.len(),
                "history comes right after the screen, before any live line: {text:?} after {:?}",
                self.lines
            );
            self.history.push(text.to_owned());
        }
        self.lines.push(text.to_owned());
    }
}

/// Seeks to `t` (paused), and reads to the state the marker speed asks
/// for: the screen's position, and the log then.
async fn seek_remote(
    controls: &mut mpsc::Sender<pb::RecordingControl>,
    events: &mut tonic::Streaming<pb::RecordingEvent>,
    log: &mut ChatLog,
    t: f64,
    marker: f64,
) -> f64 {
    steer(controls, Control::SeekSeconds(t)).await;
    steer(controls, Control::Speed(marker)).await;
    let mut position = None;
    loop {
        match next_event(events).await {
            Event::Screen(s) => {
                log.screen();
                position = Some(s.position_seconds);
            }
            Event::Chat(chat) => {
                let line = chat.line.expect("a line");
                log.line(&line.text, line.history);
            }
            Event::State(s) if s.speed == marker && position.is_some() => break,
            _ => {}
        }
    }
    position.unwrap_or_default()
}

/// The lines said at or before `t`.
fn said_until(t: f64) -> Vec<String> {
    SAID.iter()
        .filter(|(_, _, _, at)| *at <= t)
        .map(|(_, _, text, _)| (*text).to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_recording_plays_the_chat_where_it_was_said_and_after_seeks() {
    let server = start_server(|_| {}).await;
    let (id, _) = write_recording(&server, "vera");
    let (mut controls, mut events) = open_remote(&server, &id).await;
    let Event::Opened(opened) = next_event(&mut events).await else {
        panic!("opened first")
    };
    assert_eq!(opened.chat_lines, 5, "the damaged lines are skipped");
    assert!((opened.duration_seconds - 9.0).abs() < 1e-6);
    // The screen at 0:00, then the line said before the game, as history.
    let mut log = ChatLog::default();
    let Event::Screen(screen) = next_event(&mut events).await else {
        panic!("then the screen")
    };
    assert_eq!(screen.position_seconds, 0.0);
    log.screen();
    // Played at 2x to the end: every line once, in order, each after the
    // frames before its place and before the frames after it, at its place.
    steer(&mut controls, Control::Speed(2.0)).await;
    let started = Instant::now();
    let mut frames_seen = 1; // The frame at 0 is in the screen.
    loop {
        match next_event(&mut events).await {
            Event::Frame(f) => {
                assert!((f.position_seconds - FRAME_AT[frames_seen]).abs() < 1e-6);
                frames_seen += 1;
            }
            Event::Chat(chat) => {
                let line = chat.line.expect("a line");
                log.line(&line.text, line.history);
                let (_, sender, _, at) = SAID
                    .iter()
                    .find(|(_, _, text, _)| *text == line.text)
                    .expect("a line that was said");
                assert_eq!(&line.sender, sender);
                assert_eq!(line.from_player, *sender == "vera");
                assert!(
                    (chat.position_seconds - at).abs() < 1e-3,
                    "{:?} plays at {at}, not {}",
                    line.text,
                    chat.position_seconds
                );
                let frames_before = FRAME_AT.iter().filter(|f| **f <= *at).count();
                assert_eq!(frames_seen, frames_before, "{:?}", line.text);
                if !line.history {
                    let played = started.elapsed().as_secs_f64() * 2.0;
                    assert!(
                        (played - at).abs() < 1.5,
                        "{:?} came {played:.2} s into the replay, said at {at}",
                        line.text
                    );
                }
            }
            Event::State(s) if s.ended => break,
            _ => {}
        }
    }
    assert_eq!(log.lines, texts());
    assert_eq!(log.history, ["before the game"]);

    // Seeks, paused: the lines said up to there, each once, as history.
    steer(&mut controls, Control::Paused(true)).await;
    for (t, marker) in [(6.0, 0.25), (1.0, 0.5), (8.7, 4.0), (9.0, 8.0), (0.0, 0.5)] {
        let position = seek_remote(&mut controls, &mut events, &mut log, t, marker).await;
        assert_eq!(position, t);
        assert_eq!(log.lines, said_until(t), "after a seek to {t}");
        assert_eq!(log.history, log.lines);
    }
    // Back past a line and forward again, playing: it comes once.
    seek_remote(&mut controls, &mut events, &mut log, 1.2, 16.0).await;
    assert_eq!(log.lines, ["before the game"]);
    steer(&mut controls, Control::Paused(false)).await;
    loop {
        match next_event(&mut events).await {
            Event::Chat(chat) => {
                let line = chat.line.expect("a line");
                log.line(&line.text, line.history);
            }
            Event::State(s) if s.ended => break,
            _ => {}
        }
    }
    assert_eq!(log.lines, texts(), "every line exactly once, in order");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_without_a_chat_replays_without_one() {
    let server = start_server(|_| {}).await;
    let (id, file) = write_recording(&server, "ann");
    // X.ttyrec's chat is X.chat.jsonl.
    std::fs::remove_file(file.with_extension("chat.jsonl")).expect("no chat");
    let (mut controls, mut events) = open_remote(&server, &id).await;
    let Event::Opened(opened) = next_event(&mut events).await else {
        panic!("opened first")
    };
    assert_eq!(opened.chat_lines, 0);
    steer(&mut controls, Control::Speed(16.0)).await;
    loop {
        match next_event(&mut events).await {
            Event::Chat(chat) => panic!("no chat, but {chat:?}"),
            Event::State(s) if s.ended => break,
            _ => {}
        }
    }
    server.shutdown().await;
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One message of a replay page's socket.
enum PageMessage {
    Control(serde_json::Value),
    Frame(Vec<u8>),
}

async fn next_message(socket: &mut Socket) -> PageMessage {
    loop {
        let message = tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("a message in time")
            .expect("the socket is open")
            .expect("a message");
        match message {
            Message::Text(text) => {
                return PageMessage::Control(serde_json::from_str(&text).expect("JSON"));
            }
            Message::Binary(data) => return PageMessage::Frame(data.to_vec()),
            _ => {}
        }
    }
}

/// Seeks the page's replay to `t` and reads to the state the marker speed
/// asks for; checks the history came after the snapshot's two messages.
async fn seek_page(socket: &mut Socket, log: &mut ChatLog, t: f64, marker: f64) {
    let send = |text: String| Message::text(text);
    socket
        .send(send(format!(r#"{{"seek": {t}}}"#)))
        .await
        .expect("seek");
    socket
        .send(send(format!(r#"{{"speed": {marker}}}"#)))
        .await
        .expect("marker");
    // After the snapshot control: its body, then the rest.
    let mut after_snapshot = None;
    loop {
        match next_message(socket).await {
            PageMessage::Control(c) if c["type"] == "snapshot" => {
                log.screen();
                after_snapshot = Some(0);
            }
            PageMessage::Frame(_) => {
                if let Some(n) = &mut after_snapshot {
                    *n += 1;
                }
            }
            PageMessage::Control(c) if c["type"] == "chat" => {
                assert!(
                    after_snapshot.is_some_and(|n| n >= 1),
                    "history after the snapshot's body: {c}"
                );
                log.line(c["text"].as_str().expect("text"), c["history"] == true);
            }
            PageMessage::Control(c)
                if c["type"] == "replay_state"
                    && c["speed"] == marker
                    && after_snapshot.is_some() =>
            {
                break;
            }
            PageMessage::Control(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_page_gets_each_chat_line_at_its_moment_and_after_seeks() {
    let server = start_server(|_| {}).await;
    let (id, _) = write_recording(&server, "vera");
    let (status, _, body) = http_get(server.http_addr, "/recordings").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(list["recordings"][0]["id"], id.as_str());

    let url = format!("ws://{}/ws/replay?id={id}", server.http_addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("socket");
    let header = next_json(&mut socket).await;
    assert_eq!(header["type"], "replay");
    assert!((header["duration"].as_f64().unwrap_or(-1.0) - 9.0).abs() < 1e-6);
    socket
        .send(Message::text(r#"{"speed": 2}"#))
        .await
        .expect("speed");
    let started = Instant::now();
    let mut log = ChatLog::default();
    // Frames drawn so far (the snapshot holds the first).
    let mut frames = 0;
    let mut body_due = false;
    loop {
        match next_message(&mut socket).await {
            PageMessage::Control(c) if c["type"] == "snapshot" => {
                log.screen();
                body_due = true;
                frames = 1;
            }
            PageMessage::Frame(data) => {
                if std::mem::take(&mut body_due) {
                    continue;
                }
                let text = String::from_utf8_lossy(&data).into_owned();
                assert!(text.ends_with(&format!("FRAME {frames}")), "{text:?}");
                frames += 1;
            }
            PageMessage::Control(c) if c["type"] == "chat" => {
                let text = c["text"].as_str().expect("text").to_owned();
                let history = c["history"] == true;
                log.line(&text, history);
                let (_, sender, _, at) = SAID
                    .iter()
                    .find(|(_, _, said, _)| *said == text)
                    .expect("a line that was said");
                assert_eq!(c["sender"], *sender);
                assert_eq!(c["from_player"], *sender == "vera");
                assert!(c["sent_at"].as_str().is_some_and(|t| t.ends_with('Z')));
                let frames_before = FRAME_AT.iter().filter(|f| **f <= *at).count();
                assert_eq!(frames, frames_before, "{text:?} after the frames before it");
                if !history {
                    let played = started.elapsed().as_secs_f64() * 2.0;
                    assert!(
                        (played - at).abs() < 1.5,
                        "{text:?} came {played:.2} s into the replay, said at {at}"
                    );
                }
            }
            PageMessage::Control(c) if c["type"] == "replay_state" && c["ended"] == true => break,
            PageMessage::Control(_) => {}
        }
    }
    assert_eq!(log.lines, texts(), "every line once, in order");
    assert_eq!(log.history, ["before the game"]);

    // Paused, seeking: the lines said up to there, after the snapshot.
    socket
        .send(Message::text(r#"{"paused": true}"#))
        .await
        .expect("pause");
    for (t, marker) in [(8.6, 0.25), (2.0, 0.5), (5.0, 4.0), (0.5, 8.0)] {
        seek_page(&mut socket, &mut log, t, marker).await;
        assert_eq!(log.lines, said_until(t), "after a seek to {t}");
        assert_eq!(log.history, log.lines);
    }
    // Forward again, playing fast: each line after there comes once.
    socket
        .send(Message::text(r#"{"speed": 16}"#))
        .await
        .expect("speed");
    socket
        .send(Message::text(r#"{"paused": false}"#))
        .await
        .expect("play");
    loop {
        match next_message(&mut socket).await {
            PageMessage::Control(c) if c["type"] == "chat" => {
                log.line(c["text"].as_str().expect("text"), c["history"] == true);
            }
            PageMessage::Control(c) if c["type"] == "replay_state" && c["ended"] == true => break,
            _ => {}
        }
    }
    assert_eq!(log.lines, texts());
    server.shutdown().await;
}

/// The chat pane's lines on `screen`, top to bottom (the pane is right of
/// an 80-column game).
fn pane(screen: &[String]) -> Vec<String> {
    // Not the progress line.
    screen[..screen.len().saturating_sub(1)]
        .iter()
        .filter_map(|row| {
            let right: String = row.chars().skip(81).collect();
            let right = right.trim_end_matches(['│', ' ']).trim();
            right.contains(": ").then(|| right.to_owned())
        })
        .collect()
}

fn wait_for_pane(tmux: &Tmux, name: &str, want: &[&str]) -> Vec<String> {
    let want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    let screen = tmux.wait_for(name, &format!("the chat pane to show {want:?}"), |screen| {
        let shown = pane(screen);
        shown.len() == want.len()
            && shown
                .iter()
                .zip(&want)
                .all(|(s, w)| s.ends_with(w.as_str()))
    });
    pane(&screen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dgate_replay_shows_the_chat_beside_the_game_local_and_remote() {
    let server = start_server(|_| {}).await;
    let (id, file) = write_recording(&server, "vera");
    let work = tempfile::tempdir().expect("work dir");
    let dgate = workspace_binary("dgate");
    let env = dgate_env(work.path(), &server.url());
    let tmux = Tmux::new();
    for (name, command) in [
        (
            "local",
            format!("{} replay '{}'", dgate.display(), file.display()),
        ),
        (
            "remote",
            format!("{} replay --remote '{id}'", dgate.display()),
        ),
    ] {
        tmux.start_with(name, (120, 30), &env, &command);
        tmux.wait_for_text(name, " Chat ");
        // At the start: the line said before the game.
        wait_for_pane(&tmux, name, &["vera: before the game"]);
        // Paused at the end: every line, in order.
        tmux.send(name, &["Space", "End"]);
        let all = wait_for_pane(
            &tmux,
            name,
            &[
                "vera: before the game",
                "ann: between frames",
                "vera: in the pause",
                "ann: after the pause",
                "bob: after the end",
            ],
        );
        assert_eq!(all.len(), 5, "{name}: {all:?}");
        // Back to the start, then to 0:06: exactly the lines said by then.
        tmux.send(name, &["Home"]);
        wait_for_pane(&tmux, name, &["vera: before the game"]);
        tmux.send(name, &["g", "6", "Enter"]);
        wait_for_pane(
            &tmux,
            name,
            &[
                "vera: before the game",
                "ann: between frames",
                "vera: in the pause",
            ],
        );
        tmux.send(name, &["q"]);
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_replay_shows_the_chat_beside_the_game() {
    use common::ssh::{Login, SshTerminal};
    let server = start_server(|_| {}).await;
    write_recording(&server, "vera");
    let mut t = SshTerminal::connect(server.ssh_addr, "guest", Login::None, (120, 30))
        .await
        .expect("anonymous login");
    t.wait_for("=>").await;
    t.send(b"w").await;
    t.wait_for("Watch which game?").await;
    t.send(b"r").await;
    t.wait_for("Recent Games").await;
    t.send(b"a").await;
    t.wait_for(" Chat ").await;
    let shown = |t: &SshTerminal| pane(&t.rows(120, 30));
    let says = |want: &'static [&'static str]| {
        move |t: &SshTerminal| {
            let shown = shown(t);
            shown.len() == want.len() && shown.iter().zip(want).all(|(s, w)| s.ends_with(w))
        }
    };
    t.wait_until(
        "the line said before the game",
        says(&["vera: before the game"]),
    )
    .await;
    // Paused, at the end (as the terminal sends End): every line, in order.
    t.send(b" ").await;
    t.send(b"\x1b[F").await;
    t.wait_until(
        "every line",
        says(&[
            "vera: before the game",
            "ann: between frames",
            "vera: in the pause",
            "ann: after the pause",
            "bob: after the end",
        ]),
    )
    .await;
    // Home: back to the line said before the game alone.
    t.send(b"\x1b[H").await;
    t.wait_until("the start's line alone", says(&["vera: before the game"]))
        .await;
    t.send(b"q").await;
    t.wait_for("Replay which game?").await;
    server.shutdown().await;
}
