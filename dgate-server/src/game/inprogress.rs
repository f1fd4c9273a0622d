//! dgamelaunch's in-progress files (`games[].inprogress_dir`), which IRC
//! and Discord bots and scripts read to know who is playing:
//! `<dir>/<name>:<YYYY-MM-DD.HH:MM:SS>.ttyrec` (UTC start time) holding
//! `pid\nrows\ncols\n`, write-locked with `fcntl` for the game's life (a
//! file nobody locks is a stale one), rewritten on a resize, removed when
//! the game ends.

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use nix::fcntl::{FcntlArg, fcntl};
use nix::libc;

use crate::config::TermSize;

/// A game's in-progress file, locked while this lives; removed on drop.
#[derive(Debug)]
pub struct InProgress {
    file: File,
    path: PathBuf,
    pid: u32,
}

impl InProgress {
    /// Creates and locks the file for `username`'s game started at `started`.
    pub fn create(
        dir: &Path,
        username: &str,
        started: SystemTime,
        pid: u32,
        size: TermSize,
    ) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(file_name(username, started));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        // Bots read it as another user, whatever the server's umask.
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        lock(&file, libc::F_WRLCK)?;
        let mut in_progress = Self { file, path, pid };
        in_progress.write(size)?;
        Ok(in_progress)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rewrites the size (the game's terminal was resized).
    pub fn write(&mut self, size: TermSize) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        write!(self.file, "{}\n{}\n{}\n", self.pid, size.rows, size.cols)?;
        self.file.flush()
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        // Removed first: a reader that finds it unlocked sees a stale file.
        let _ = std::fs::remove_file(&self.path);
        let _ = lock(&self.file, libc::F_UNLCK);
    }
}

/// `name:2026-11-26.15:04:05.ttyrec`, as dgamelaunch names them.
fn file_name(username: &str, started: SystemTime) -> String {
    let stamp = humantime::format_rfc3339_seconds(started).to_string();
    // 2026-11-26T15:04:05Z -> 2026-11-26.15:04:05
    let stamp = stamp.trim_end_matches('Z').replacen('T', ".", 1);
    format!("{username}:{stamp}.ttyrec")
}

/// A whole-file `fcntl` record lock as dgamelaunch takes it, held by the
/// open file itself (`F_OFD_SETLK`): other processes' `fcntl` locks and
/// `F_GETLK` see it as dgamelaunch's, and, unlike a per-process lock, it is
/// not dropped when some other code of this process closes the same file.
fn lock(file: &File, kind: libc::c_int) -> io::Result<()> {
    let request = libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    fcntl(file.as_fd(), FcntlArg::F_OFD_SETLK(&request))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dgamelaunchs() {
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_764_169_445);
        assert_eq!(file_name("alice", at), "alice:2025-11-26.15:04:05.ttyrec");
    }

    #[test]
    fn the_file_says_pid_rows_cols_until_it_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut file = InProgress::create(
            dir.path(),
            "bob",
            SystemTime::now(),
            4242,
            TermSize::new(80, 24),
        )
        .expect("created");
        let path = file.path().to_owned();
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "4242\n24\n80\n"
        );
        file.write(TermSize::new(132, 50)).expect("resized");
        assert_eq!(
            std::fs::read_to_string(&path).expect("read"),
            "4242\n50\n132\n"
        );
        drop(file);
        assert!(!path.exists());
    }
}
