//! The load tool's smoke run: dgate-bench starts its own server, 20 gRPC,
//! WebSocket or SSH viewers watch a firehose game for a few seconds, and the
//! run must be sound: nothing lost or out of order, every checked screen equal
//! to the player's, and latency far below what a stalling hub would show.
//! With `--nodes`, the same on a cluster: the game on node 1, the viewers
//! on other nodes, and node 1 publishing each frame once.

use crate::common;

use std::process::Command;

use common::{HEAVY, workspace_binary};

fn smoke(transport: &str, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(workspace_binary("dgate-bench"))
        .args(["run", "--transport", transport, "--viewers", "20"])
        .args(["--check", "20", "--json"])
        .args(extra)
        .arg("--server-binary")
        .arg(workspace_binary("dgate-server"))
        .output()
        .expect("run dgate-bench");
    assert!(
        out.status.success(),
        "dgate-bench failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

fn assert_sound(report: &serde_json::Value) {
    assert_lossless(report);
    // A debug build on a loaded 2-core machine stays well inside this; a hub
    // that held frames back, or lost its wakeups, would not.
    let shown = serde_json::to_string_pretty(report).unwrap_or_default();
    let p99 = report["latency"]["p99_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(p99 < 250.0, "p99 {p99} ms: {shown}");
}

/// Nothing lost or out of order, and every checked screen the player's.
fn assert_lossless(report: &serde_json::Value) {
    let shown = serde_json::to_string_pretty(report).unwrap_or_default();
    let total = &report["viewers_total"];
    assert_eq!(total["lost"], 0, "{shown}");
    assert_eq!(total["disorder"], 0, "{shown}");
    assert_eq!(report["joined"], 20, "{shown}");
    assert_eq!(report["unfinished"], 0, "{shown}");
    assert_eq!(report["screens_checked"], 20, "{shown}");
    assert_eq!(report["screens_differing"], 0, "{shown}");
    // 20 viewers × 30 frames/s × 3 s, with room for a busy machine.
    let samples = report["latency"]["samples"].as_u64().unwrap_or(0);
    assert!(
        samples >= 600,
        "too few frames reached the viewers: {shown}"
    );
}

#[test]
fn twenty_grpc_viewers_lose_nothing_and_end_on_the_players_screen() {
    let _turn = HEAVY.blocking_lock();
    assert_sound(&smoke("grpc", &["--seconds", "3"]));
}

#[test]
fn with_chat_every_viewer_gets_every_line_in_order() {
    let _turn = HEAVY.blocking_lock();
    // 10 lines a second for 3 s: past the default per-user limit of 5 per
    // 10 s, which the bench's own server raises.
    let report = smoke("grpc", &["--seconds", "3", "--chat", "10"]);
    assert_sound(&report);
    let shown = serde_json::to_string_pretty(&report).unwrap_or_default();
    let chat = &report["chat"];
    let sent = chat["sent"].as_u64().unwrap_or(0);
    assert!(sent >= 25, "{shown}");
    assert_eq!(chat["said"], sent, "{shown}");
    assert_eq!(chat["refused"], 0, "{shown}");
    assert_eq!(chat["viewers"]["lines"], sent * 20, "{shown}");
    assert_eq!(chat["viewers"]["lost"], 0, "{shown}");
    assert_eq!(chat["viewers"]["disorder"], 0, "{shown}");
    assert_eq!(chat["viewers_complete"], 20, "{shown}");
    assert_eq!(chat["latency"]["samples"], sent * 20, "{shown}");
    let p99 = chat["latency"]["p99_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(p99 < 250.0, "chat p99 {p99} ms: {shown}");
}

#[test]
fn twenty_websocket_viewers_lose_nothing_and_end_on_the_players_screen() {
    let _turn = HEAVY.blocking_lock();
    assert_sound(&smoke("ws", &["--seconds", "3"]));
}

#[test]
fn twenty_ssh_viewers_lose_nothing_and_end_on_the_players_screen() {
    let _turn = HEAVY.blocking_lock();
    assert_sound(&smoke("ssh", &["--seconds", "3"]));
}

#[test]
fn paused_viewers_are_resynced_and_end_on_the_players_screen() {
    let _turn = HEAVY.blocking_lock();
    // 800 KB a second and a small queue: the paused quarter falls far behind
    // what the socket and HTTP/2 windows hold, within the run.
    let report = smoke(
        "grpc",
        &[
            "--seconds",
            "4",
            "--paused",
            "0.25",
            "--rate",
            "400",
            "--bytes",
            "2000",
        ]
        .into_iter()
        .chain(["--queue-frames", "64"])
        .collect::<Vec<_>>(),
    );
    // No latency bound here: at 800 KB/s for 20 viewers an unoptimised load
    // tool cannot keep up on two cores (it resyncs itself; p99 350-800 ms
    // before and after the viewing refactor alike), and latency is the
    // benchmarks' to measure. What must hold is that nothing is lost.
    assert_lossless(&report);
    assert_eq!(report["paused_viewers"], 5);
    assert!(
        report["viewers_total"]["resyncs"].as_u64().unwrap_or(0) >= 1,
        "the paused viewers were never resynced: {report}"
    );
}

/// A cluster run's node `n` (1-based) and node 1's relay messages per
/// frame, checked: nothing failed, the relay never fell behind, and node
/// 1 published one message a frame (its relay publishes frames, resizes,
/// ends, and heartbeats only after a second without output, which the
/// firehose never has), however many nodes watch.
fn assert_one_message_a_frame(report: &serde_json::Value) {
    let shown = serde_json::to_string_pretty(report).unwrap_or_default();
    assert_eq!(
        report["failures"].as_array().map(Vec::len),
        Some(0),
        "{shown}"
    );
    let cluster = &report["cluster"];
    let frames = cluster["frames_in_window"].as_u64().unwrap_or(0);
    // 30 frames a second for 3 s, with room for a busy machine.
    assert!(frames >= 45, "{shown}");
    let ratio = cluster["relay_messages_per_frame"].as_f64().unwrap_or(0.0);
    assert!(
        (0.8..1.2).contains(&ratio),
        "{ratio} relay messages a frame: {shown}"
    );
    let one = &cluster["nodes"][0];
    assert_eq!(one["relay_resyncs"], 0, "{shown}");
    // What NATS got from node 1: the relay's messages, its directory beats
    // (one a second) and its answers to the mirrors' first requests; not a
    // copy per viewer or per node.
    let sent = one["nats_in_msgs"].as_u64().unwrap_or(u64::MAX);
    assert!(
        (sent as f64) < 1.2 * frames as f64 + 10.0,
        "node 1 sent NATS {sent} messages for {frames} frames: {shown}"
    );
}

/// The viewers on node `n` of a cluster run: they all ended on the last
/// frame, without a resync or a slow consumer, and their node got every
/// frame from NATS once; its mirror cost node 1 one snapshot, not one per
/// viewer.
fn assert_remote_viewers(report: &serde_json::Value, n: usize, viewers: u64) {
    let shown = serde_json::to_string_pretty(report).unwrap_or_default();
    let cluster = &report["cluster"];
    let frames = cluster["frames_in_window"].as_u64().unwrap_or(0);
    let node = &cluster["nodes"][n - 1];
    assert_eq!(node["node"], n, "{shown}");
    assert_eq!(node["viewers"], viewers, "{shown}");
    assert_eq!(node["unfinished"], 0, "{shown}");
    assert_eq!(node["viewers_total"]["lost"], 0, "{shown}");
    assert_eq!(node["viewers_total"]["resyncs"], 0, "{shown}");
    assert_eq!(node["slow_consumers"], 0, "{shown}");
    assert!(
        node["latency"]["samples"].as_u64().unwrap_or(0) >= viewers * 45,
        "{shown}"
    );
    let got = node["nats_out_msgs"].as_u64().unwrap_or(0);
    assert!(
        got as f64 >= 0.8 * frames as f64 && (got as f64) < 1.2 * frames as f64 + 20.0,
        "node {n} got {got} messages from NATS for {frames} frames: {shown}"
    );
    let asked = node["snapshot_requests_sent"].as_u64().unwrap_or(0);
    assert!(
        (1..=3).contains(&asked),
        "node {n} asked {asked} snapshots: {shown}"
    );
}

#[test]
fn twenty_viewers_on_another_node_end_on_the_players_screen_and_node_1_publishes_each_frame_once() {
    let _turn = HEAVY.blocking_lock();
    let report = smoke(
        "grpc",
        &["--seconds", "3", "--nodes", "2", "--viewers-on", "2"],
    );
    assert_lossless(&report);
    assert_one_message_a_frame(&report);
    assert_remote_viewers(&report, 2, 20);
    let shown = serde_json::to_string_pretty(&report).unwrap_or_default();
    let one = &report["cluster"]["nodes"][0];
    assert_eq!(one["viewers"], 0, "{shown}");
    let served = one["snapshot_requests_served"].as_u64().unwrap_or(0);
    assert!(
        (1..=3).contains(&served),
        "node 1 served {served} snapshots: {shown}"
    );
}

#[test]
fn with_viewers_on_two_other_nodes_node_1_still_publishes_each_frame_once() {
    let _turn = HEAVY.blocking_lock();
    let report = smoke(
        "grpc",
        &["--seconds", "3", "--nodes", "3", "--viewers-on", "2,3"],
    );
    assert_lossless(&report);
    assert_one_message_a_frame(&report);
    assert_remote_viewers(&report, 2, 10);
    assert_remote_viewers(&report, 3, 10);
}

#[test]
fn a_server_that_is_not_on_loopback_is_refused() {
    let out = Command::new(workspace_binary("dgate-bench"))
        .args([
            "run",
            "--grpc",
            "192.0.2.1:50051",
            "--http",
            "192.0.2.1:8080",
        ])
        .output()
        .expect("run dgate-bench");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a loopback address"), "{err}");
}

#[test]
fn a_short_soak_releases_every_spectator_connection_and_session() {
    let _turn = HEAVY.blocking_lock();
    let out = Command::new(workspace_binary("dgate-bench"))
        .args(["soak", "--seconds", "8", "--sessions", "2"])
        .args(["--game-seconds", "1", "3", "--joins-per-second", "40"])
        .args(["--stay-seconds", "0.1", "1", "--json"])
        .arg("--server-binary")
        .arg(workspace_binary("dgate-server"))
        .output()
        .expect("run dgate-bench soak");
    assert!(
        out.status.success(),
        "dgate-bench soak failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let shown = serde_json::to_string_pretty(&report).unwrap_or_default();
    assert!(report["joins"].as_u64().unwrap_or(0) >= 100, "{shown}");
    assert!(report["games_ended"].as_u64().unwrap_or(0) >= 3, "{shown}");
    assert_eq!(report["games_started"], report["games_ended"], "{shown}");
    assert_eq!(report["viewers_total"]["lost"], 0, "{shown}");
    assert_eq!(report["viewers_total"]["disorder"], 0, "{shown}");
    assert_eq!(report["stuck"], 0, "{shown}");
    assert_eq!(report["spectators_left"], 0, "{shown}");
    assert_eq!(report["connections_left"], 0, "{shown}");
    assert_eq!(report["sessions_left"], 0, "{shown}");
    let fds = |at: &str| report[at]["fds"].as_u64().unwrap_or(u64::MAX);
    assert!(
        fds("idle_after") <= fds("idle_before"),
        "files left open: {shown}"
    );
}
