//! The recorder: a hub subscriber like any other, which writes one session to
//! `<ttyrec.directory>/<username>/<game_id>/<UTC start>.ttyrec`.
//!
//! It runs on a thread of its own, so a slow disk slows nobody: when it falls
//! behind, the hub resyncs it and it writes the snapshot as a record (still a
//! valid ttyrec). Each record is written straight to the file, so a crash loses
//! at most the frame being written. When the game ends the file is gzipped
//! (if configured) through a temporary file, fsync and rename, and a JSON
//! metadata file is written beside it. A failing disk costs the recording,
//! never the game: errors are logged and counted. Past `ttyrec.max_bytes`
//! of output the recording stops (its metadata says it was cut short); the
//! game goes on.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tracing::{error, info, warn};

use super::session::Session;
use crate::broadcast::{Delivery, GameExit, SnapshotReason, Subscription};
use crate::config::{Compression, TtyrecConfig};
use crate::metrics::Metrics;
use dgate_term::recording::{MetaResize, RecordingMeta};
use dgate_term::ttyrec::write_record;

/// Where a game's chat is kept beside its recording at `recording`
/// (`X.ttyrec` -> `X.chat.jsonl`).
pub fn chat_path(recording: &Path) -> PathBuf {
    recording.with_extension("chat.jsonl")
}

/// The plain recording's path for a session.
pub fn recording_path(directory: &Path, session: &Session) -> PathBuf {
    let start = humantime::format_rfc3339_millis(session.info.started_at).to_string();
    directory
        .join(&session.info.username)
        .join(&session.info.game_id)
        .join(format!("{start}.ttyrec"))
}

/// Subscribes to the session now and records it on a new thread until the
/// game ends; `finished` runs once the recording is on disk. Must be called
/// inside the tokio runtime.
pub fn start(
    session: &Arc<Session>,
    config: &TtyrecConfig,
    metrics: Arc<Metrics>,
    finished: impl FnOnce() + Send + 'static,
) -> io::Result<std::thread::JoinHandle<()>> {
    let subscription = session.hub.subscribe();
    let path = recording_path(&config.directory, session);
    let compression = config.compression;
    let max_bytes = config.max_bytes;
    let session = Arc::clone(session);
    let runtime = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name(format!("record-{}", &session.info.id[..8]))
        .spawn(move || {
            record(
                &session,
                subscription,
                &path,
                compression,
                max_bytes,
                &runtime,
                &metrics,
            );
            finished();
        })
}

fn record(
    session: &Session,
    mut subscription: Subscription,
    path: &Path,
    compression: Compression,
    max_bytes: u64,
    runtime: &tokio::runtime::Handle,
    metrics: &Metrics,
) {
    let id = &session.info.id;
    let mut file = match create(path) {
        Ok(file) => {
            session.chat.record_to(chat_path(path));
            Some(file)
        }
        Err(e) => {
            error!(session_id = %id, path = %path.display(), error = %e, "cannot record this game");
            None
        }
    };
    let mut meta = RecordingMeta::new(
        id,
        &session.info.username,
        &session.info.game_id,
        session.hub.size(),
        humantime::format_rfc3339_millis(session.info.started_at).to_string(),
    );
    let mut logged = false;
    let exit = write_deliveries(
        &mut subscription,
        runtime,
        file.as_mut(),
        &mut meta,
        max_bytes,
        |e| {
            if !std::mem::replace(&mut logged, true) {
                error!(session_id = %id, path = %path.display(), error = %e, "recording write failed; the game goes on");
            }
            metrics.recording_write_errors.inc();
        },
    );
    let Some(file) = file else { return };
    drop(file);
    session.chat.stop_recording();
    meta.end = humantime::format_rfc3339_millis(session.ended_at().unwrap_or_else(SystemTime::now))
        .to_string();
    meta.exit_code = exit.as_ref().and_then(GameExit::code);
    meta.signal = exit.as_ref().and_then(|e| e.signal()).map(str::to_owned);
    meta.end_reason = exit.as_ref().map(|e| session.end_reason(e));
    let finished = match compression {
        Compression::Gzip => match gzip(path) {
            Ok(gz) => gz,
            Err(e) => {
                error!(session_id = %id, path = %path.display(), error = %e, "cannot compress the recording; kept it plain");
                path.to_owned()
            }
        },
        Compression::None => path.to_owned(),
    };
    meta.recording = finished
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta_path = path.with_extension("json");
    if let Err(e) = write_atomically(&meta_path, |out| {
        serde_json::to_writer_pretty(&mut *out, &meta).map_err(io::Error::other)
    }) {
        error!(session_id = %id, path = %meta_path.display(), error = %e, "cannot write the recording's metadata");
    }
    info!(session_id = %id, path = %finished.display(), frames = meta.frames, "recording finished");
}

/// Writes every delivery of `subscription` to `file` (when there is one) as
/// ttyrec records until the game ends, keeping `meta`'s counts and resizes;
/// `on_error` hears each failed write. Past `max_bytes` of records nothing
/// more is written (`meta.truncated`), but the game is followed to its end.
/// Returns how the game ended.
pub fn write_deliveries(
    subscription: &mut Subscription,
    runtime: &tokio::runtime::Handle,
    mut file: Option<&mut impl Write>,
    meta: &mut RecordingMeta,
    max_bytes: u64,
    mut on_error: impl FnMut(&io::Error),
) -> Option<GameExit> {
    let mut exit: Option<GameExit> = None;
    // Records written: resizes are placed by it, for the replay.
    let mut records: u64 = 0;
    let mut bytes: u64 = 0;
    while let Some(delivery) = runtime.block_on(subscription.next()) {
        if meta.truncated {
            if let Delivery::Ended { exit: e, .. } = &delivery {
                exit = Some(e.clone());
            }
            continue;
        }
        let size = match &delivery {
            Delivery::Snapshot(s) => s.data.len(),
            Delivery::Frame(frame) => frame.data.len(),
            _ => 0,
        } as u64;
        if size > 0 && bytes + size + 12 > max_bytes {
            meta.truncated = true;
            warn!(session_id = %meta.session_id, max_bytes, "the recording reached ttyrec.max_bytes and stops here; the game goes on");
            continue;
        }
        bytes += if size > 0 { size + 12 } else { 0 };
        let written = match &delivery {
            Delivery::Snapshot(s) => {
                // The join snapshot is the recording's first record: its size
                // is the recording's, even if the game was resized since the
                // recorder was set up.
                if s.reason == SnapshotReason::Join {
                    meta.terminal = s.size.into();
                }
                if s.reason == SnapshotReason::Resync {
                    meta.resyncs += 1;
                    warn!(session_id = %meta.session_id, skipped = s.frames_skipped, "recorder fell behind; wrote a snapshot");
                }
                records += 1;
                file.as_mut().map(|f| write_record(f, s.timestamp, &s.data))
            }
            Delivery::Frame(frame) => {
                meta.frames += 1;
                records += 1;
                file.as_mut()
                    .map(|f| write_record(f, frame.timestamp, &frame.data))
            }
            Delivery::Resize { after, size } => {
                meta.resizes.push(MetaResize {
                    after_frame: after.get(),
                    after_record: records,
                    cols: size.cols,
                    rows: size.rows,
                });
                None
            }
            Delivery::Ended { exit: e, .. } => {
                exit = Some(e.clone());
                None
            }
        };
        if let Some(Err(e)) = written {
            meta.write_errors += 1;
            on_error(&e);
        }
    }
    exit
}

fn create(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    File::create(path)
}

/// `x.ttyrec` → `x.ttyrec.gz` (temporary file, fsync, rename), then removes `x.ttyrec`.
fn gzip(plain: &Path) -> io::Result<PathBuf> {
    let mut gz_name = plain.as_os_str().to_owned();
    gz_name.push(".gz");
    let gz = PathBuf::from(gz_name);
    write_atomically(&gz, |out| {
        let mut encoder = flate2::write::GzEncoder::new(out, flate2::Compression::default());
        io::copy(&mut File::open(plain)?, &mut encoder)?;
        encoder.finish()?;
        Ok(())
    })?;
    std::fs::remove_file(plain)?;
    Ok(gz)
}

/// Writes `path` through `path.tmp`, fsynced, then renamed into place.
fn write_atomically(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    let mut out = BufWriter::new(File::create(&tmp)?);
    fill(&mut out)?;
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Deletes recordings (and their metadata) older than `retention_days` under
/// `directory`; returns what it removed. 0 days keeps everything.
pub fn sweep(directory: &Path, retention_days: u32, now: SystemTime) -> io::Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    if retention_days == 0 || !directory.exists() {
        return Ok(removed);
    }
    let cutoff = now - Duration::from_secs(u64::from(retention_days) * 24 * 3600);
    let mut pending = vec![directory.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                pending.push(path);
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let ours = [".ttyrec", ".ttyrec.gz", ".json", ".chat.jsonl"]
                .iter()
                .any(|s| name.ends_with(s));
            if kind.is_file() && ours && entry.metadata()?.modified()? < cutoff {
                std::fs::remove_file(&path)?;
                removed.push(path);
            }
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_deletes_only_old_recordings() {
        let dir = std::env::temp_dir().join(format!("dgate-sweep-{}", std::process::id()));
        let games = dir.join("alice/nethack");
        std::fs::create_dir_all(&games).expect("dirs");
        let now = SystemTime::now();
        let file = |name: &str, age_days: u64| {
            let path = games.join(name);
            std::fs::write(&path, b"x").expect("write");
            let f = File::options().write(true).open(&path).expect("open");
            f.set_modified(now - Duration::from_secs(age_days * 24 * 3600))
                .expect("mtime");
            path
        };
        let old = [
            file("old.ttyrec.gz", 8),
            file("old.json", 8),
            file("older.ttyrec", 30),
        ];
        let young = [file("new.ttyrec.gz", 6), file("new.json", 1)];
        let foreign = file("notes.txt", 100);
        let mut removed = sweep(&dir, 7, now).expect("sweep");
        removed.sort();
        let mut expected = old.to_vec();
        expected.sort();
        assert_eq!(removed, expected);
        assert!(young.iter().all(|p| p.exists()));
        assert!(foreign.exists(), "only recordings are deleted");
        assert!(sweep(&dir, 0, now).expect("keep all").is_empty());
        let _ = std::fs::remove_dir_all(dir);
    }
}
