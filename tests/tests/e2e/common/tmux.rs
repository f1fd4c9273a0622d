//! Real terminals for end-to-end tests of terminal programs: a private tmux
//! server (its own socket, no user config) whose windows run our binaries, read
//! back with `capture-pane` and driven with `send-keys`. Dropping it kills the
//! tmux server and everything in it.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::WAIT;

pub struct Tmux {
    socket: String,
}

impl Tmux {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        Self {
            socket: format!(
                "dgate-test-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    /// The private server's socket name (`tmux -L NAME`).
    pub fn socket(&self) -> &str {
        &self.socket
    }

    fn tmux(&self, args: &[&str]) -> Output {
        let output = Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("run tmux (is it installed?)");
        assert!(
            output.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// A window `name` of `cols`x`rows` running `command` (through `sh -c`)
    /// with `env` added. The window stays readable after the command exits.
    pub fn start(&self, name: &str, (cols, rows): (u16, u16), env: &[(&str, &str)], command: &str) {
        let (cols, rows) = (cols.to_string(), rows.to_string());
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut args = vec!["new-session", "-d", "-s", name, "-x", &cols, "-y", &rows];
        for e in &env {
            args.extend(["-e", e]);
        }
        args.extend([
            command,
            ";",
            "set-option",
            "-t",
            name,
            "remain-on-exit",
            "on",
        ]);
        self.tmux(&args);
    }

    /// [`Tmux::start`] with an environment of owned values.
    pub fn start_with(
        &self,
        name: &str,
        size: (u16, u16),
        env: &[(&'static str, String)],
        command: &str,
    ) {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        self.start(name, size, &env, command);
    }

    /// The visible screen, one string per row, trailing blanks removed.
    pub fn capture(&self, name: &str) -> Vec<String> {
        let output = self.tmux(&["capture-pane", "-p", "-t", name]);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| l.trim_end().to_owned())
            .collect()
    }

    /// The visible screen with tmux's own escape codes for colours and
    /// attributes (`capture-pane -e`): `ESC[33m` for a basic colour,
    /// `ESC[38;5;3m` for the same colour sent as a 256-colour code.
    pub fn capture_escaped(&self, name: &str) -> String {
        let output = self.tmux(&["capture-pane", "-e", "-p", "-t", name]);
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Keys as tmux names them (`a`, `Enter`, `C-z`, `Down`).
    pub fn send(&self, name: &str, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", name];
        args.extend(keys);
        self.tmux(&args);
    }

    pub fn resize(&self, name: &str, (cols, rows): (u16, u16)) {
        self.tmux(&[
            "resize-window",
            "-t",
            name,
            "-x",
            &cols.to_string(),
            "-y",
            &rows.to_string(),
        ]);
    }

    /// Waits until the window's screen satisfies `done`; returns that screen.
    pub fn wait_for(
        &self,
        name: &str,
        what: &str,
        mut done: impl FnMut(&[String]) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            let screen = self.capture(name);
            if done(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!(
                    "{name}: gave up waiting for {what}; the screen is:\n{}",
                    screen.join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until the window shows `text` somewhere.
    pub fn wait_for_text(&self, name: &str, text: &str) -> Vec<String> {
        self.wait_for(name, &format!("{text:?}"), |screen| {
            screen.iter().any(|l| l.contains(text))
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}
