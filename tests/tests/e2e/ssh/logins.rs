//! What a player is told about logging in over SSH: the `ssh` command that
//! brings them back, and why a login is refused (by the real OpenSSH client).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{SIZE, anonymous, register, test_key};
use crate::common::ssh::{Login, SshTerminal};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_welcome_names_the_ssh_command_that_logs_in_again() {
    let server = start_server(|_| {}).await;
    let port = server.ssh_addr.port();
    let mut t = register(&server, "carol", "carols-password").await;
    t.wait_for(&format!(
        "Welcome, carol! Next time: ssh -p {port} carol@127.0.0.1"
    ))
    .await;
    // Adding a key says the same.
    let line = test_key(3).public_key().to_openssh().expect("key line");
    t.send(b"k").await;
    t.wait_for("(none yet)").await;
    t.send(format!("a{line}\r").as_bytes()).await;
    t.wait_for(&format!("Log in with: ssh -p {port} carol@127.0.0.1"))
        .await;
    server.shutdown().await;

    // The operator's name for the server, and the port players use (22: no -p).
    let server = start_server(|c| c.ssh.public_host = Some("nethack.example.org:22".into())).await;
    let mut t = register(&server, "dora", "doras-password").await;
    t.wait_for("Welcome, dora! Next time: ssh dora@nethack.example.org")
        .await;
    drop(t);
    server.shutdown().await;
    let server = start_server(|c| c.ssh.public_host = Some("nethack.example.org".into())).await;
    let mut t = anonymous(&server).await;
    t.send(b"r").await;
    t.wait_for("Username:").await;
    t.send(b"eve\reves-password\reves-password\r").await;
    t.wait_for(&format!(
        "Welcome, eve! Next time: ssh -p {} eve@nethack.example.org",
        server.ssh_addr.port()
    ))
    .await;
    server.shutdown().await;
}

/// `ssh NAME@127.0.0.1 true` by the real OpenSSH client, without a terminal:
/// every password it is asked for is `password` (by `SSH_ASKPASS`). What it
/// printed, once it exits.
fn openssh_login(port: u16, name: &str, password: &str) -> Output {
    let dir = tempfile::tempdir().expect("temporary directory");
    let askpass = dir.path().join("askpass");
    std::fs::write(&askpass, format!("#!/bin/sh\necho '{password}'\n")).expect("askpass");
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod askpass");
    // setsid: no controlling terminal for ssh to ask on, whatever runs the test.
    let mut child = Command::new("setsid")
        .args(["-w", "ssh", "-p", &port.to_string()])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "PubkeyAuthentication=no",
            &format!("{name}@127.0.0.1"),
            "true",
        ])
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ssh");
    let deadline = Instant::now() + WAIT;
    while child.try_wait().expect("wait for ssh").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("ssh's output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_openssh_client_says_why_a_login_is_refused() {
    let server = start_server(|c| c.accounts.failed_logins_per_minute = 2).await;
    drop(register(&server, "erin", "right-pass").await);
    let port = server.ssh_addr.port();
    // Two wrong passwords at ssh's own prompt (keyboard-interactive), then
    // the third attempt is not asked for: ssh says why.
    let wrong = tokio::task::spawn_blocking(move || openssh_login(port, "erin", "wrong-pass"))
        .await
        .expect("ssh ran");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(255), "{stderr}");
    let told = stderr
        .lines()
        .position(|l| l.starts_with("too many failed logins; try again in "))
        .unwrap_or_else(|| panic!("no reason in ssh's stderr:\n{stderr}"));
    let denied = stderr
        .lines()
        .position(|l| l.contains("Permission denied"))
        .unwrap_or_else(|| panic!("no refusal in ssh's stderr:\n{stderr}"));
    assert!(told < denied, "{stderr}");
    let seconds: u64 = stderr
        .lines()
        .nth(told)
        .and_then(|l| {
            l.strip_prefix("too many failed logins; try again in ")?
                .strip_suffix(" s")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no wait in ssh's stderr:\n{stderr}"));
    assert!((1..=60).contains(&seconds), "{stderr}");

    // Even the right password is not asked for until the minute has passed.
    let right = tokio::task::spawn_blocking(move || openssh_login(port, "erin", "right-pass"))
        .await
        .expect("ssh ran");
    let stderr = String::from_utf8_lossy(&right.stderr);
    assert_eq!(right.status.code(), Some(255), "{stderr}");
    assert!(
        stderr.contains("too many failed logins; try again in "),
        "{stderr}"
    );
    // The password method cannot say why; it is refused as before.
    assert!(
        SshTerminal::connect(server.ssh_addr, "erin", Login::Password("right-pass"), SIZE)
            .await
            .is_err()
    );
    let (_, metrics) = http_get(server.http_addr, "/metrics");
    assert_eq!(metric(&metrics, "failed_logins_total"), 2.0, "{metrics}");
    server.shutdown().await;
}
