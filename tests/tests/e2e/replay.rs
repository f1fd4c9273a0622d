//! Recordings played back: the keyframe index seeks to the screens the player
//! saw (through a resize), `dgate replay` shows them in a real terminal,
//! `dgate export` writes asciicast that the real asciinema reads, and broken
//! files get one clear line.

use crate::common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::browser::{chromium_dom_until, http_get, next_json, terminal_rows};
use common::tmux::Tmux;
use common::*;
use dgate_term::ScreenModel;
use dgate_term::recording::{Recording, RecordingMeta};
use dgate_term::ttyrec::Reader;
use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

/// Plays a game (with a resize in the middle) and returns the compressed
/// recording, its metadata, and the screens the player saw after each frame.
async fn record_a_game(server: &TestServer) -> (PathBuf, RecordingMeta, String) {
    let mut client = server.client().await;
    let game = server.start_game("vera", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"fff").await;
    player.wait_for_text("frame 000003").await.expect("frames");
    player.send_resize(100, 30).await;
    player.send(b"s").await;
    player.wait_for_text("SIZE 100x30").await.expect("resized");
    player.send(b"fa").await;
    player
        .wait_for_text("ALTERNATE")
        .await
        .expect("alternate screen");
    player.send(b"x").await;
    player.read_to_end().await.expect("game over");
    let final_screen = player.screen.screen().contents_formatted();
    server.manager.finish_recordings().await;
    let dir = server.data_dir.path().join("ttyrec/vera/test");
    let mut gz = None;
    let mut meta = None;
    for entry in std::fs::read_dir(&dir).expect("recording dir").flatten() {
        let path = entry.path();
        let name = path.to_string_lossy().into_owned();
        if name.ends_with(".ttyrec.gz") {
            gz = Some(path);
        } else if name.ends_with(".json") {
            meta = Some(
                serde_json::from_slice(&std::fs::read(&path).expect("meta")).expect("meta JSON"),
            );
        }
    }
    (
        gz.expect("a .ttyrec.gz"),
        meta.expect("a .json"),
        final_screen,
    )
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("open"))
        .read_to_end(&mut plain)
        .expect("gzip");
    plain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeking_a_recording_lands_on_the_screens_the_game_drew() {
    let server = start_server(|_| {}).await;
    let (gz, meta, final_screen) = record_a_game(&server).await;
    assert_eq!(meta.resizes.len(), 1);
    let plain = gunzip(&gz);
    let recording = Recording::read(&plain[..], &meta.options(None)).expect("recording");

    // The end of the recording is the player's last screen, resize included.
    let (end, _) = recording.screen_at(recording.duration());
    assert_eq!(end.size(), dgate_term::TermSize::new(100, 30));
    assert_eq!(end.screen().contents_formatted(), final_screen);

    // Any point: the same screen as playing every record from the start.
    let records = Reader::new(&plain[..]).read_all().expect("records");
    let mut from_start = ScreenModel::new(recording.size());
    assert_eq!(records.len(), recording.frame_count());
    for (i, record) in records.iter().enumerate() {
        let (at, resize, data) = recording.frame(i).expect("frame");
        assert_eq!(data, &record.data[..], "frame {i} is the record's bytes");
        if let Some(size) = resize {
            from_start.resize(size);
        }
        from_start.process(data);
        if recording.frames_until(at) == i + 1 {
            let (seeked, _) = recording.screen_at(at);
            assert_eq!(
                seeked.screen().contents_formatted(),
                from_start.screen().contents_formatted(),
                "seek to frame {i}"
            );
        }
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dgate_replay_and_export_play_a_real_recording() {
    let server = start_server(|_| {}).await;
    let (gz, _meta, _) = record_a_game(&server).await;
    let plain = gunzip(&gz);
    let work = tempfile::tempdir().expect("work dir");
    let dgate = workspace_binary("dgate");

    // Export: a valid asciicast v2 whose output is every recorded byte.
    let cast = work.path().join("game.cast");
    let export = Command::new(&dgate)
        .arg("export")
        .arg(&gz)
        .arg("-o")
        .arg(&cast)
        .output()
        .expect("dgate export");
    assert!(export.status.success(), "{export:?}");
    let text = std::fs::read_to_string(&cast).expect("cast file");
    let header: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("header")).expect("header JSON");
    assert_eq!(
        (
            header["version"].as_u64(),
            header["width"].as_u64(),
            header["height"].as_u64()
        ),
        (Some(2), Some(80), Some(24))
    );
    assert!(text.contains(r#""r","100x30"]"#), "the resize is an event");
    let records = Reader::new(&plain[..]).read_all().expect("records");
    let all: Vec<u8> = records.iter().flat_map(|r| r.data.clone()).collect();
    // `asciinema cat` insists on a terminal: `script` gives it one, and its
    // output goes to a file.
    let replayed = work.path().join("replayed.bin");
    let asciinema = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "asciinema cat '{}' > '{}'",
            cast.display(),
            replayed.display()
        ))
        .arg("/dev/null")
        .output()
        .expect("script (util-linux)");
    assert!(
        asciinema.status.success(),
        "asciinema cat (apt-get install asciinema): {}",
        String::from_utf8_lossy(&asciinema.stdout)
    );
    let replayed = std::fs::read(&replayed).expect("asciinema's output");
    assert_eq!(
        replayed, all,
        "asciinema plays back exactly the recorded bytes"
    );

    // Replay in a real terminal: End jumps to the last screen.
    let tmux = Tmux::new();
    let state = work.path().to_string_lossy().into_owned();
    tmux.start(
        "replay",
        (100, 31),
        &[("XDG_STATE_HOME", &state), ("XDG_CONFIG_HOME", &state)],
        &format!("{} replay {}", dgate.display(), gz.display()),
    );
    tmux.wait_for_text("replay", "0:00 /");
    tmux.send("replay", &["End"]);
    // A short recording may reach its last screen by itself just before
    // End is read: wait for the screen and the ended state together.
    let screen = tmux.wait_for("replay", "the last screen, ended", |screen| {
        screen.iter().any(|l| l.contains("ALTERNATE SCREEN"))
            && screen.iter().any(|l| l.contains("■ end"))
    });
    assert!(
        screen.iter().any(|l| l.contains("■ end")),
        "{}",
        screen.join("\n")
    );
    // Home goes back to the start; g jumps to a time.
    tmux.send("replay", &["Home", "Space"]);
    tmux.wait_for_text("replay", "paused");
    tmux.send("replay", &["g", "9", "9", "Enter"]);
    tmux.wait_for_text("replay", "is past the end");
    tmux.send("replay", &["q"]);
    // The replay's position line ("0:00 / 0:03") is gone; tmux's own
    // "Pane is dead (..., 20:08:06)" may hold "0:0" too, so the line is
    // matched whole.
    tmux.wait_for("replay", "dgate to exit", |s| {
        !s.iter().any(|l| l.contains(" / 0:0"))
    });

    // The same recording from the watch menu's recent games, played by the server.
    let url = server.url();
    tmux.start(
        "watch",
        (100, 31),
        &[
            ("XDG_STATE_HOME", &state),
            ("XDG_CONFIG_HOME", &state),
            ("DGATE_SERVER", &url),
        ],
        &format!("{} watch", dgate.display()),
    );
    tmux.wait_for_text("watch", "Watch which game?");
    tmux.send("watch", &["r"]);
    let recent = tmux.wait_for_text("watch", "Recent Games");
    assert!(
        recent
            .iter()
            .any(|l| l.starts_with("a) vera") && l.contains("test")),
        "{}",
        recent.join("\n")
    );
    tmux.send("watch", &["a"]);
    tmux.wait_for_text("watch", "vera · test");
    tmux.send("watch", &["End"]);
    tmux.wait_for_text("watch", "ALTERNATE SCREEN");
    tmux.wait_for_text("watch", "■ end");
    tmux.send("watch", &["q"]);
    tmux.wait_for_text("watch", "Replay which game?");
    tmux.send("watch", &["q"]);
    tmux.wait_for_text("watch", "Watch which game?");
    server.shutdown().await;
}

#[test]
fn broken_recordings_get_one_clear_line() {
    let dir = tempfile::tempdir().expect("dir");
    let dgate = workspace_binary("dgate");
    let cases: [(&str, &[u8], &str); 4] = [
        ("empty.ttyrec", b"", "is empty"),
        (
            "huge.ttyrec",
            &[0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
            "says it is 4294967295 bytes long",
        ),
        (
            "cut.ttyrec",
            &[1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, b'a'],
            "cut short",
        ),
        (
            "bad.ttyrec.gz",
            &[0x1f, 0x8b, 1, 2, 3],
            "not a valid gzip file",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        for command in ["replay", "export"] {
            let out = Command::new(&dgate)
                .arg(command)
                .arg(&path)
                .env("XDG_CONFIG_HOME", dir.path())
                .output()
                .expect("dgate");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{command} {name}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{command} {name}: {stderr}");
            assert!(stderr.contains(expected), "{command} {name}: {stderr}");
        }
    }
    let missing = Command::new(&dgate)
        .args(["replay", "/nonexistent/x.ttyrec"])
        .output()
        .expect("dgate");
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("reading /nonexistent/x.ttyrec"));
}

use dgate_proto::pb;
use dgate_proto::pb::recording_control::Control;
use dgate_proto::pb::recording_event::Event;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Opens a `StreamRecording` call; controls go on the returned sender.
async fn stream_recording(
    client: &mut Client,
    first: Control,
) -> Result<
    (
        mpsc::Sender<pb::RecordingControl>,
        tonic::Streaming<pb::RecordingEvent>,
    ),
    tonic::Status,
> {
    let (tx, rx) = mpsc::channel(8);
    tx.send(pb::RecordingControl {
        control: Some(first),
    })
    .await
    .expect("queue");
    let events = client
        .stream_recording(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((tx, events))
}

async fn next_event(events: &mut tonic::Streaming<pb::RecordingEvent>) -> Event {
    tokio::time::timeout(WAIT, events.message())
        .await
        .expect("an event in time")
        .expect("a healthy stream")
        .and_then(|e| e.event)
        .expect("an event")
}

fn open(id: &str) -> Control {
    Control::Open(pb::OpenRecording {
        recording_id: id.to_owned(),
        max_idle_seconds: 0.0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_lists_recordings_and_plays_them_steered_by_the_client() {
    let server = start_server(|_| {}).await;
    let (_, meta, final_screen) = record_a_game(&server).await;
    let mut client = server.client().await;

    let listed = client
        .list_recordings(pb::ListRecordingsRequest::default())
        .await
        .expect("list")
        .into_inner()
        .recordings;
    assert_eq!(listed.len(), 1);
    let info = &listed[0];
    assert!(info.id.starts_with("vera/test/"), "{}", info.id);
    assert_eq!(
        (info.username.as_str(), info.game_id.as_str()),
        ("vera", "test")
    );
    assert_eq!(info.frames, meta.frames);
    assert!(info.exited && info.exit_code == 0);
    let none = client
        .list_recordings(pb::ListRecordingsRequest {
            username: "nobody".into(),
            ..Default::default()
        })
        .await
        .expect("list")
        .into_inner()
        .recordings;
    assert!(none.is_empty());

    // Open: the recording's length, then the screen at 0:00.
    let (controls, mut events) = stream_recording(&mut client, open(&info.id))
        .await
        .expect("open");
    let Event::Opened(opened) = next_event(&mut events).await else {
        panic!("opened first")
    };
    assert_eq!(
        opened.info.as_ref().map(|i| i.id.as_str()),
        Some(info.id.as_str())
    );
    assert!(opened.duration_seconds > 0.0);
    let Event::Screen(first) = next_event(&mut events).await else {
        panic!("then the screen")
    };
    assert_eq!(first.position_seconds, 0.0);

    // Paused, then sped up: the server says so.
    let control = |c| pb::RecordingControl { control: Some(c) };
    controls
        .send(control(Control::Paused(true)))
        .await
        .expect("pause");
    controls
        .send(control(Control::Speed(16.0)))
        .await
        .expect("speed");
    let mut state = None;
    while state
        .as_ref()
        .is_none_or(|s: &pb::RecordingState| s.speed != 16.0)
    {
        if let Event::State(s) = next_event(&mut events).await {
            state = Some(s);
        }
    }
    assert!(state.is_some_and(|s| s.paused));

    // A seek to the end gives the player's last screen, resize and all.
    controls
        .send(control(Control::SeekSeconds(1e9)))
        .await
        .expect("seek");
    let screen = loop {
        if let Event::Screen(s) = next_event(&mut events).await {
            break s;
        }
    };
    let size = screen.size.expect("size");
    assert_eq!((size.width, size.height), (100, 30));
    let mut model = ScreenModel::new(dgate_term::TermSize::new(100, 30));
    model.process(&screen.data);
    assert_eq!(model.screen().contents_formatted(), final_screen);
    assert!((screen.position_seconds - opened.duration_seconds).abs() < 1e-6);

    // Unpaused at 16×, from the start, every frame arrives in order to the end.
    controls
        .send(control(Control::SeekSeconds(0.0)))
        .await
        .expect("seek");
    controls
        .send(control(Control::Paused(false)))
        .await
        .expect("play");
    let mut replayed = ScreenModel::new(dgate_term::TermSize::new(80, 24));
    let mut last_position = -1.0;
    // The end of the earlier seek may still be reported: count from the new screen.
    let mut from_start = false;
    loop {
        match next_event(&mut events).await {
            Event::Screen(s) => {
                from_start = s.position_seconds == 0.0;
                let size = s.size.expect("size");
                replayed = ScreenModel::new(dgate_term::TermSize::new(
                    size.width as u16,
                    size.height as u16,
                ));
                replayed.process(&s.data);
                last_position = s.position_seconds;
            }
            Event::Frame(f) => {
                assert!(f.position_seconds >= last_position, "frames in order");
                last_position = f.position_seconds;
                if let Some(size) = f.resize {
                    replayed.resize(dgate_term::TermSize::new(
                        size.width as u16,
                        size.height as u16,
                    ));
                }
                replayed.process(&f.data);
            }
            Event::State(s) if s.ended && from_start => break,
            _ => {}
        }
    }
    assert_eq!(replayed.screen().contents_formatted(), final_screen);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replay_requests_get_clear_refusals() {
    let server = start_server(|c| c.session_management.spectating.allow_anonymous = false).await;
    let mut client = server.client().await;
    let anonymous = client
        .list_recordings(pb::ListRecordingsRequest::default())
        .await
        .expect_err("anonymous listing refused");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);
    let anonymous = stream_recording(&mut client, open("x/y/z"))
        .await
        .expect_err("refused");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);

    let token = server.account("ursula").await;
    let open_as = |id: &str| {
        let (tx, rx) = mpsc::channel(1);
        tx.try_send(pb::RecordingControl {
            control: Some(open(id)),
        })
        .expect("queue");
        (tx, authed(ReceiverStream::new(rx), &token))
    };
    for id in [
        "no/such/recording",
        "../../../etc/passwd",
        "",
        "a/b",
        "/etc/passwd",
    ] {
        let (_tx, request) = open_as(id);
        let refused = client
            .stream_recording(request)
            .await
            .expect_err("unknown id");
        assert_eq!(refused.code(), tonic::Code::NotFound, "{id:?}: {refused:?}");
    }
    let (tx, rx) = mpsc::channel(1);
    tx.try_send(pb::RecordingControl {
        control: Some(Control::Speed(2.0)),
    })
    .expect("queue");
    let refused = client
        .stream_recording(authed(ReceiverStream::new(rx), &token))
        .await
        .expect_err("not opened first");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    // The server is still fine.
    let listed = client
        .list_recordings(authed(pb::ListRecordingsRequest::default(), &token))
        .await
        .expect("list");
    assert!(listed.into_inner().recordings.is_empty());
    server.shutdown().await;
}

/// Reads until a message of `kind` (skipping the rest).
async fn next_of<S>(socket: &mut S, kind: &str) -> serde_json::Value
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let message = next_json(socket).await;
        if message["type"] == kind {
            return message;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_lists_downloads_and_replays_finished_games() {
    let server = start_server(|_| {}).await;
    let (gz, _meta, final_screen) = record_a_game(&server).await;
    let http = server.http_addr;

    // The lobby's list, newest first, with the recording's id.
    let (status, _, body) = http_get(http, "/recordings").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let listed = &list["recordings"][0];
    let id = listed["id"].as_str().expect("an id").to_owned();
    assert!(id.starts_with("vera/test/"), "{list}");
    assert_eq!(
        (listed["cols"].as_u64(), listed["rows"].as_u64()),
        (Some(80), Some(24))
    );

    // The file itself, byte for byte, as an attachment.
    let (status, head, body) = http_get(http, &format!("/recordings/{id}")).await;
    assert_eq!(status, 200, "{head}");
    assert!(
        head.to_lowercase()
            .contains("content-disposition: attachment"),
        "{head}"
    );
    assert_eq!(body, std::fs::read(&gz).expect("the recording"));

    // Unknown and hostile ids: a clear 404, never a file outside the directory.
    for path in [
        "/recordings/nobody/x/y",
        "/recordings/..%2F..%2Fdgate.db",
        "/replay/vera/test/nope",
    ] {
        let (status, _, body) = http_get(http, path).await;
        assert_eq!(status, 404, "{path}");
        assert!(
            String::from_utf8_lossy(&body).contains("no recording"),
            "{path}"
        );
    }

    // The replay page, opened at a moment past the end: the last screen the
    // player saw (after the game's resize), drawn as text.
    let url = format!("http://{http}/replay/{id}?at=3600");
    let dom = tokio::task::spawn_blocking(move || {
        // Ended, and its last screen drawn (xterm draws on the next
        // animation frame, after the state is shown).
        chromium_dom_until(&url, |dom| {
            dom.contains("\">ended<") && dom.contains("ALTERNATE SCREEN")
        })
    })
    .await
    .expect("chromium runs");
    let mut expected = ScreenModel::new(dgate_server::config::TermSize::new(100, 30));
    expected.process(final_screen.as_bytes());
    let want: Vec<String> = expected
        .screen()
        .rows(0, 100)
        .map(|row| row.trim_end().to_owned())
        .collect();
    assert_eq!(
        terminal_rows(&dom),
        want,
        "the page shows the game's last screen:\n{dom}"
    );
    assert!(
        dom.contains("Replay: vera · test"),
        "the status names the game"
    );
    assert!(
        dom.contains("class=\"state-down\">ended<"),
        "the replay says it ended"
    );

    // The lobby lists it under the recent games, linking to the replay.
    let lobby = format!("http://{http}/");
    let dom = tokio::task::spawn_blocking(move || {
        chromium_dom_until(&lobby, |dom| dom.contains("href=\"/replay/"))
    })
    .await
    .expect("chromium runs");
    let recent = dom.split("id=\"recent\"").nth(1).unwrap_or_default();
    // (Each path segment URL-encoded: the start time's colons are %3A.)
    let link = format!("href=\"/replay/{}\">vera</a>", id.replace(':', "%3A"));
    assert!(
        recent.contains(&link),
        "the recent games link to the replay: {recent}"
    );
    assert!(
        recent.contains("80x24") && recent.contains("ttyrec"),
        "{recent}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_socket_is_steered_by_the_page_and_ignores_garbage() {
    let server = start_server(|_| {}).await;
    let (_, meta, _) = record_a_game(&server).await;
    let (_, _, body) = http_get(server.http_addr, "/recordings").await;
    let list: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let id = list["recordings"][0]["id"].as_str().expect("id").to_owned();

    let url = format!("ws://{}/ws/replay?id={id}", server.http_addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.expect("socket");
    let header = next_json(&mut socket).await;
    assert_eq!(header["type"], "replay");
    assert_eq!(header["player"], "vera");
    assert!(header["duration"].as_f64().unwrap_or(-1.0) >= 0.0);
    let first = next_of(&mut socket, "snapshot").await;
    assert_eq!(
        (first["cols"].as_u64(), first["rows"].as_u64()),
        (Some(80), Some(24))
    );

    // Garbage is ignored; pause, speed and seek are answered with the state.
    socket.send(Message::text("rm -rf /")).await.expect("send");
    socket
        .send(Message::text(r#"{"speed": "fast"}"#))
        .await
        .expect("send");
    socket
        .send(Message::text(r#"{"paused": true}"#))
        .await
        .expect("send");
    let mut state = next_of(&mut socket, "replay_state").await;
    while state["paused"] != true {
        state = next_of(&mut socket, "replay_state").await;
    }
    socket
        .send(Message::text(r#"{"speed": 4}"#))
        .await
        .expect("send");
    let mut state = next_of(&mut socket, "replay_state").await;
    while state["speed"] != 4.0 {
        state = next_of(&mut socket, "replay_state").await;
    }
    socket
        .send(Message::text(r#"{"seek": 0}"#))
        .await
        .expect("send");
    let again = next_of(&mut socket, "snapshot").await;
    assert_eq!(
        again["cols"].as_u64(),
        Some(80),
        "back at the start, before the resize"
    );
    // Play to the end: the resize arrives as a whole screen at 100x30.
    socket
        .send(Message::text(r#"{"paused": false}"#))
        .await
        .expect("send");
    let mut resized = next_of(&mut socket, "snapshot").await;
    while resized["cols"].as_u64() != Some(100) {
        resized = next_of(&mut socket, "snapshot").await;
    }
    let mut state = next_of(&mut socket, "replay_state").await;
    while state["ended"] != true {
        state = next_of(&mut socket, "replay_state").await;
    }
    assert!(meta.frames > 0);

    // An unknown id is refused before the upgrade.
    let url = format!("ws://{}/ws/replay?id=nobody/x/y", server.http_addr);
    assert!(tokio_tungstenite::connect_async(url).await.is_err());
}
