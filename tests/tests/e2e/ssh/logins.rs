//! What a player is told about logging in over SSH: the `ssh` command that
//! brings them back.

use super::{anonymous, register, test_key};
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
