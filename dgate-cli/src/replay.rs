//! `dgate replay`: a recording played in the terminal through the same view as
//! live watching, with a progress bar, pause, speed, seek and a go-to-time
//! prompt. A local file is opened here (a keyframe index is built once, so a
//! seek anywhere is one snapshot plus a few frames); a recording on the server
//! is played by the server's `StreamRecording`, which this screen steers.
//!
//! The game's chat plays with it: a local file's `X.chat.jsonl` beside
//! `X.ttyrec[.gz]` (each line placed where it was said, pauses capped as the
//! recording's; a damaged line is skipped), or the lines the server sends
//! at their moments and after each seek.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use dgate_term::ScreenModel;
use dgate_term::TermSize;
use dgate_term::recording::{Options, Recording, RecordingMeta, place_moments};
use dgate_term::ttyrec::Reader;
use tokio::signal::unix::{SignalKind, signal};
use tokio_stream::StreamExt;

use dgate_proto::pb;
use dgate_proto::pb::recording_control::Control;
use dgate_proto::pb::recording_event::Event as RemoteEvent;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::connection::{Connection, describe, status, with_token};
use crate::tokens::Saved;
use crate::tui::Tui;
use dgate_tui::chat_pane::ChatEntry;
use dgate_tui::replay_screen::{LocalReplay, PlacedChat, Progress, ReplayScreen, Steer};

/// The progress line is redrawn at least this often while playing.
const TICK: Duration = Duration::from_millis(200);

/// A recording file read into memory, with what its metadata says and its
/// chat.
pub struct LocalRecording {
    pub recording: Recording,
    pub title: String,
    pub chat: Vec<PlacedChat>,
}

/// A chat log's line (`dgate-server`'s `ChatLine` as it writes it).
#[derive(Debug, serde::Deserialize)]
struct LoggedLine {
    sender: String,
    text: String,
    /// RFC 3339.
    sent_at: String,
    #[serde(default)]
    from_player: bool,
    #[serde(default)]
    from_admin: bool,
}

/// The most of a chat log read (bytes)...
const CHAT_LOG_MAX_BYTES: u64 = 32 * 1024 * 1024;
/// ...and lines.
const CHAT_LOG_MAX_LINES: usize = 200_000;

/// Reads `path` (`.ttyrec`, or gzipped, told by its first bytes) and the
/// `.json` metadata beside it when there is one (for the terminal size and
/// resizes; `size` overrides the starting size).
pub fn open_file(
    path: &Path,
    max_idle: Option<Duration>,
    size: Option<TermSize>,
) -> Result<LocalRecording> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let plain = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut plain)
            .with_context(|| format!("{} is not a valid gzip file", path.display()))?;
        plain
    } else {
        bytes
    };
    if plain.is_empty() {
        bail!("{} is empty: there is nothing to replay", path.display());
    }
    let meta = read_meta(path);
    let mut options = meta
        .as_ref()
        .map(|m| m.options(max_idle))
        .unwrap_or_else(|| Options {
            max_idle,
            ..Options::default()
        });
    if let Some(size) = size {
        options.size = size;
    }
    let records = Reader::new(&plain[..])
        .read_all()
        .with_context(|| format!("{} is not a valid ttyrec recording", path.display()))?;
    let said = read_chat(path);
    let moments = said.iter().map(|(at, _)| *at).collect();
    let placed = place_moments(records.iter().map(|r| r.time), &options, moments);
    let chat = placed
        .into_iter()
        .zip(said)
        .map(|(at, (_, line))| PlacedChat {
            at,
            sender: line.sender,
            text: line.text,
            from_player: line.from_player,
            from_admin: line.from_admin,
        })
        .collect();
    let recording = Recording::new(records, &options);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let title = match &meta {
        Some(m) => format!("{} · {} · {}", m.username, m.game_id, name),
        None => name,
    };
    Ok(LocalRecording {
        recording,
        title,
        chat,
    })
}

/// The lines of `X.chat.jsonl` beside `X.ttyrec[.gz]`, with when each was
/// said, in the order written; none when there is none. A line that is
/// not a chat line is skipped.
fn read_chat(path: &Path) -> Vec<(SystemTime, LoggedLine)> {
    use std::io::BufRead;
    let Some(stem) = recording_stem(path) else {
        return Vec::new();
    };
    let Ok(file) = std::fs::File::open(path.with_file_name(format!("{stem}.chat.jsonl"))) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for text in std::io::BufReader::new(file.take(CHAT_LOG_MAX_BYTES)).split(b'\n') {
        let Ok(text) = text else { break };
        let Ok(line) = serde_json::from_slice::<LoggedLine>(&text) else {
            continue;
        };
        let Ok(at) = humantime::parse_rfc3339(&line.sent_at) else {
            continue;
        };
        if lines.len() == CHAT_LOG_MAX_LINES {
            break;
        }
        lines.push((at, line));
    }
    lines
}

/// `X` of `X.ttyrec.gz` or `X.ttyrec`.
fn recording_stem(path: &Path) -> Option<&str> {
    let name = path.file_name()?.to_str()?;
    name.strip_suffix(".ttyrec.gz")
        .or_else(|| name.strip_suffix(".ttyrec"))
}

/// `X.json` beside `X.ttyrec` or `X.ttyrec.gz`, if it is there and readable.
fn read_meta(path: &Path) -> Option<RecordingMeta> {
    let stem = recording_stem(path)?;
    let meta_path: PathBuf = path.with_file_name(format!("{stem}.json"));
    let text = std::fs::read(meta_path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Plays a local recording until `q`; returns a line for the shell.
pub async fn run_local(local: LocalRecording) -> Result<Option<String>> {
    let mut replay = LocalReplay::new(local.recording, local.title).with_chat(local.chat);
    let mut tui = Tui::enter()?;
    let mut events = EventStream::new();
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    loop {
        let progress = replay.tick();
        tui.draw(|f| replay.screen.render(f, &progress))?;
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if is_suspend(&key) => {
                    tui.suspend()?;
                    replay.resume();
                }
                Some(Ok(Event::Key(key))) => {
                    if replay.key(key) {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => break,
            },
            _ = tokio::time::sleep(replay.wait(TICK)) => {}
            _ = terminate.recv() => break,
        }
    }
    Ok(None)
}

/// Plays a recording on the server (`dgate replay --remote ID`); returns a
/// line for the shell.
pub async fn run_remote(
    connection: Connection,
    id: &str,
    max_idle: Option<Duration>,
) -> Result<Option<String>> {
    let login = connection.login()?;
    let stream = RemoteStream::open(&connection, login.as_ref(), id, max_idle).await?;
    let mut tui = Tui::enter()?;
    let mut events = EventStream::new();
    play_remote(&mut tui, &mut events, stream).await
}

/// A `StreamRecording` call: controls go out, events come in.
pub struct RemoteStream {
    controls: mpsc::Sender<pb::RecordingControl>,
    events: tonic::Streaming<pb::RecordingEvent>,
}

impl RemoteStream {
    /// Opens recording `id`; fails (before any screen is taken) when the
    /// server cannot play it.
    pub async fn open(
        connection: &Connection,
        login: Option<&Saved>,
        id: &str,
        max_idle: Option<Duration>,
    ) -> Result<Self> {
        let (controls, queue) = mpsc::channel(16);
        let open = Control::Open(pb::OpenRecording {
            recording_id: id.to_owned(),
            max_idle_seconds: max_idle.map_or(0.0, |d| d.as_secs_f64()),
        });
        controls
            .send(pb::RecordingControl {
                control: Some(open),
            })
            .await
            .context("the request queue closed")?;
        let events = connection
            .games()
            .stream_recording(with_token(ReceiverStream::new(queue), login))
            .await
            .map_err(status)?
            .into_inner();
        Ok(Self { controls, events })
    }

    async fn send(&self, control: Control) -> Result<()> {
        self.controls
            .send(pb::RecordingControl {
                control: Some(control),
            })
            .await
            .context("the server closed the replay")
    }
}

/// The replay screen for a recording the server plays, until `q`. Takes the
/// caller's terminal and key stream (the watch menu's, for its recent games).
pub async fn play_remote(
    tui: &mut Tui,
    events: &mut EventStream,
    mut stream: RemoteStream,
) -> Result<Option<String>> {
    let mut screen = ReplayScreen::new(String::new(), ScreenModel::new(TermSize::new(80, 24)));
    let mut progress = Progress {
        speed: 1.0,
        ..Progress::default()
    };
    // The position the server last told, and when: the progress line runs on
    // from it between frames.
    let mut told = Instant::now();
    let mut terminate = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    loop {
        let shown = progress.shown(told.elapsed());
        tui.draw(|f| screen.render(f, &shown))?;
        tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if is_suspend(&key) => tui.suspend()?,
                Some(Ok(Event::Key(key))) => {
                    let Some(intent) = screen.handle_key(key) else { continue };
                    let Some((steps, note)) = progress.steer(intent, &shown) else {
                        return Ok(None);
                    };
                    if note.is_some() {
                        screen.message = note;
                    }
                    for step in steps {
                        let control = match step {
                            Steer::SeekTo(t) => Control::SeekSeconds(t.as_secs_f64()),
                            Steer::Speed(speed) => Control::Speed(speed),
                            Steer::Paused(paused) => Control::Paused(paused),
                        };
                        stream.send(control).await?;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => return Ok(None),
            },
            message = stream.events.message() => {
                let event = match message {
                    Ok(Some(pb::RecordingEvent { event: Some(event) })) => event,
                    Ok(Some(_)) => continue,
                    Ok(None) => return Ok(Some("The server ended the replay.".to_owned())),
                    Err(e) => return Ok(Some(format!("Replay stopped: {}", describe(&e)))),
                };
                told = Instant::now();
                match event {
                    RemoteEvent::Opened(opened) => {
                        progress.duration = seconds(opened.duration_seconds);
                        screen.has_chat = opened.chat_lines > 0;
                        if let Some(info) = opened.info {
                            screen.title = format!("{} · {}", info.username, info.game_id);
                        }
                    }
                    RemoteEvent::Screen(s) => {
                        // The lines said before it follow.
                        screen.chat.clear();
                        let size = s.size.map(term_size).unwrap_or(TermSize::new(80, 24));
                        screen.view.model = ScreenModel::new(size);
                        screen.view.model.process(&s.data);
                        progress.position = seconds(s.position_seconds);
                        progress.ended = false;
                    }
                    RemoteEvent::Frame(f) => {
                        if let Some(size) = f.resize {
                            screen.view.model.resize(term_size(size));
                        }
                        screen.view.model.process(&f.data);
                        progress.position = seconds(f.position_seconds);
                    }
                    RemoteEvent::State(state) => {
                        progress.position = seconds(state.position_seconds);
                        progress.speed = state.speed;
                        progress.paused = state.paused;
                        progress.ended = state.ended;
                    }
                    RemoteEvent::Chat(chat) => {
                        if let Some(line) = chat.line {
                            screen.has_chat = true;
                            screen.chat.push(&ChatEntry {
                                sender: &line.sender,
                                text: &line.text,
                                from_player: line.from_player,
                                from_admin: line.from_admin,
                                answer: false,
                            });
                        }
                    }
                }
            }
            _ = tokio::time::sleep(TICK) => {}
            _ = terminate.recv() => return Ok(None),
        }
    }
}

fn seconds(s: f64) -> Duration {
    if s.is_finite() && s > 0.0 {
        Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

fn term_size(size: pb::TerminalSize) -> TermSize {
    let side = |v: u32| u16::try_from(v).unwrap_or(u16::MAX).max(1);
    TermSize::new(side(size.width), side(size.height))
}

fn is_suspend(key: &KeyEvent) -> bool {
    key.kind != KeyEventKind::Release
        && key.modifiers.contains(KeyModifiers::CONTROL)
        && key.code == KeyCode::Char('z')
}
