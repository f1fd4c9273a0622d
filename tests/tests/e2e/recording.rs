//! Every game is recorded as ttyrec: byte for byte, with its timing, readable
//! by the real `ttyplay` (Debian `ttyrec`, installed by `.ci/run`).

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use dgate_term::ScreenModel;
use dgate_term::ttyrec::Reader;

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn micros(t: std::time::SystemTime) -> u128 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// What `ttyplay -n` prints for a plain ttyrec file, as a terminal shows it.
fn ttyplay_screen(plain: &Path, size: dgate_server::config::TermSize) -> Option<ScreenModel> {
    let output = std::process::Command::new("ttyplay")
        .arg("-n")
        .arg(plain)
        .output()
        .ok()?;
    assert!(
        output.status.success(),
        "ttyplay failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut screen = ScreenModel::new(size);
    screen.process(&output.stdout);
    Some(screen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_game_is_recorded_byte_for_byte_and_ttyplay_replays_it() {
    let server = start_server(|c| c.games.push(testgame("exit3", &["--exit-code", "3"]))).await;
    let mut client = server.client().await;
    let game = server.start_game("rita", "exit3").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"fff").await;
    player.wait_for_text("frame 000003").await.expect("frames");
    player.send(b"m").await;
    player.wait_for_text("keys: m").await.expect("modes");
    player.send(b"x").await;
    player.read_to_end().await.expect("game over");
    let final_screen = player.screen.screen().contents_formatted();
    server.manager.finish_recordings().await;

    let dir = server.data_dir.path().join("ttyrec/rita/exit3");
    let files = files_under(&dir);
    let names: Vec<String> = files
        .iter()
        .map(|p| {
            p.file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert_eq!(names.len(), 2, "a .ttyrec.gz and its .json: {names:?}");
    let gz = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".ttyrec.gz"))
        .expect("compressed recording");
    let meta = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".json"))
        .expect("metadata");

    // The gzip file is valid and complete.
    let mut plain = Vec::new();
    std::io::copy(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(gz).expect("open")),
        &mut plain,
    )
    .expect("valid gzip");
    let records = Reader::new(&plain[..]).read_all().expect("a valid ttyrec");
    assert!(records.len() >= 2);

    // After its first record (a snapshot taken as the game started), the
    // recording is every frame, with its time: it ends with exactly the frames
    // the player got after joining.
    let recorded = &records[1..];
    assert!(
        recorded.len() >= player.frames.len(),
        "the recorder joined first"
    );
    let recorded = &recorded[recorded.len() - player.frames.len()..];
    let seen = &player.frames[..];
    for (record, (id, time, data)) in recorded.iter().zip(seen) {
        assert_eq!(&record.data[..], &data[..], "frame {id}");
        assert_eq!(micros(record.time), micros(*time), "frame {id} time");
    }

    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(meta).expect("read")).expect("JSON");
    assert_eq!(meta["username"], "rita");
    assert_eq!(meta["game_id"], "exit3");
    assert_eq!(meta["exit_code"], 3);
    assert_eq!(meta["frames"], (records.len() - 1) as u64);
    assert_eq!(meta["terminal"]["cols"], 80);
    assert_eq!(
        meta["recording"],
        gz.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .as_ref()
    );

    // The real ttyplay plays our file to the same screen the player saw.
    let plain_path = server.data_dir.path().join("plain.ttyrec");
    std::fs::write(&plain_path, &plain).expect("write");
    match ttyplay_screen(&plain_path, dgate_server::config::TermSize::new(80, 24)) {
        Some(replayed) => assert_eq!(replayed.screen().contents_formatted(), final_screen),
        None => eprintln!("ttyplay is not installed (apt-get install ttyrec); skipped that check"),
    }
    server.shutdown().await;
}

/// A recorder that cannot write costs the recording, never the game.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_recording_directory_does_not_stop_the_game() {
    let blocker = tempfile::NamedTempFile::new().expect("a file where a directory should be");
    let path = blocker.path().to_owned();
    let server =
        start_server(move |c| c.session_management.ttyrec.directory = path.join("ttyrec")).await;
    let mut client = server.client().await;
    let game = server.start_game("sid", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"f").await;
    player
        .wait_for_text("frame 000001")
        .await
        .expect("the game runs");
    tokio::time::sleep(Duration::from_millis(50)).await;
    server.shutdown().await;
}

/// Each recording says how its game ended, in its metadata and listings:
/// the player quit, its owner stopped it, the detach grace ran out, the
/// server shut down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn how_each_game_ended_is_recorded_and_listed() {
    use dgate_proto::pb;
    let server = start_server(|c| {
        c.session_management.detach_grace = Duration::from_millis(300);
    })
    .await;
    let mut client = server.client().await;

    // Quit by the player.
    let quit = server.start_game("quinn", "test").await;
    let mut player = Viewer::player(&mut client, &quit).await.expect("player");
    player.ready().await;
    player.send(b"q").await;
    player.read_to_end().await.expect("the game ends");
    // Stopped by its owner.
    let stopped = server.start_game("stella", "test").await;
    let mut player = Viewer::player(&mut client, &stopped).await.expect("player");
    player.ready().await;
    client
        .stop_game_session(authed(
            pb::StopGameSessionRequest {
                session_id: stopped.id.clone(),
                reason: "enough".into(),
                force: false,
            },
            &stopped.token,
        ))
        .await
        .expect("stopped");
    player.read_to_end().await.expect("the game ends");
    // Never attached to: hung up after the detach grace.
    let _left = server.start_game("della", "test").await;
    eventually("the unattended game was hung up", || {
        server.manager.active_count() == 0
    })
    .await;
    // Running at shutdown.
    let running = server.start_game("shane", "test").await;
    let mut player = Viewer::player(&mut client, &running).await.expect("player");
    player.ready().await;

    let listed = |name: &'static str| {
        let mut client = client.clone();
        async move {
            let request = pb::ListRecordingsRequest {
                username: name.into(),
                ..Default::default()
            };
            let mut found = None;
            for _ in 0..100 {
                let recordings = client
                    .list_recordings(request.clone())
                    .await
                    .expect("listed")
                    .into_inner()
                    .recordings;
                if let Some(r) = recordings.into_iter().next() {
                    found = Some(r);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            found.expect("a recording")
        }
    };
    assert_eq!(listed("quinn").await.end_reason, "exited");
    assert_eq!(listed("stella").await.end_reason, "stopped");
    assert_eq!(listed("della").await.end_reason, "detach_grace");
    // The page's listing says it in words.
    let addr = server.http_addr;
    let (status, body) = tokio::task::spawn_blocking(move || http_get(addr, "/recordings"))
        .await
        .expect("GET");
    assert_eq!(status, 200, "{body}");
    let page: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let ended: Vec<(String, String)> = page["recordings"]
        .as_array()
        .expect("recordings")
        .iter()
        .map(|r| {
            (
                r["username"].as_str().unwrap_or("").to_owned(),
                r["ended"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert!(
        ended.contains(&("quinn".into(), "exited".into())),
        "{ended:?}"
    );
    assert!(
        ended.contains(&("della".into(), "hung up after the detach grace".into())),
        "{ended:?}"
    );

    // The shutdown's first step, as SIGTERM takes it: every game hung up.
    server.manager.shutdown().await;
    player.read_to_end().await.expect("the stream ends");
    let entry = server
        .manager
        .library()
        .list("shane", "", 0)
        .await
        .into_iter()
        .next()
        .expect("a recording");
    assert_eq!(
        entry.meta.end_reason,
        Some(dgate_term::recording::EndReason::Shutdown)
    );
    assert_eq!(entry.summary().ending(), "hung up at shutdown");
    server.shutdown().await;
}
