//! A game's spectators and chat across nodes (docs/CLUSTER.md, "Spectators
//! and chat"): the game's node admits, caps, lists and kicks every node's
//! spectators, and its chat is one chat wherever it is read or written.

use std::time::Duration;

use crate::cluster::{Nats, wait_until_listed};
use crate::common;

use common::*;
use dgate_proto::pb;
use dgate_server::config::ClusterConfig;
use tonic::Code;

/// A node allowing `max` spectators per game.
async fn node(node_id: &str, url: &str, max: usize) -> TestServer {
    let (node_id, url) = (node_id.to_owned(), url.to_owned());
    start_server(move |c| {
        c.session_management.spectating.max_spectators_per_session = max;
        c.cluster = Some(ClusterConfig {
            node_id,
            nats_urls: vec![url],
            credentials: None,
            mirror_linger: Duration::from_secs(30),
            account_replicas: 1,
        });
    })
    .await
}

fn said(text: &'static str) -> impl Fn(&pb::ChatEvent) -> bool {
    move |e: &pb::ChatEvent| !e.answer && e.text == text
}

fn answered(part: &'static str) -> impl Fn(&pb::ChatEvent) -> bool {
    move |e: &pb::ChatEvent| e.answer && e.text.contains(part)
}

/// Reads `viewer`'s stream until it was told this audience.
async fn wait_for_audience(viewer: &mut Viewer, names: &[&str], anonymous: u32, what: &str) {
    let wanted = Some((names.iter().map(|n| (*n).to_owned()).collect(), anonymous));
    let deadline = tokio::time::Instant::now() + WAIT;
    while viewer.audience != wanted {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let stepped = tokio::time::timeout(left, viewer.step_any()).await;
        assert!(
            matches!(stepped, Ok(Ok(true))),
            "{what}: the audience stayed {:?}, not {wanted:?}",
            viewer.audience
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_games_node_admits_caps_lists_and_kicks_every_nodes_spectators() {
    let nats = Nats::start(1).await;
    let one = node("one", &nats.urls[0], 3).await;
    let two = node("two", &nats.urls[0], 100).await;
    let three = node("three", &nats.urls[0], 100).await;
    let mut client = one.client().await;
    let game = start_game_at(&one.url(), "alice", "test", None).await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    wait_until_listed(&two, &game.id).await;
    wait_until_listed(&three, &game.id).await;

    // Sam and an anonymous spectator on node 2, Bob on node 1.
    let sam_token = account(&two.url(), "sam").await;
    let mut client_two = two.client().await;
    let mut sam = Viewer::spectator_with(&mut client_two, &game.id, Some(&sam_token))
        .await
        .expect("sam watches on node 2");
    let anon = Viewer::spectator(&mut client_two, &game.id, "anon")
        .await
        .expect("an anonymous spectator on node 2");
    let bob_token = account(&one.url(), "bob").await;
    let mut bob = Viewer::spectator_with(&mut client, &game.id, Some(&bob_token))
        .await
        .expect("bob watches on node 1");
    // Everyone sees everyone, on both nodes, in the order they came.
    wait_for_audience(&mut player, &["sam", "bob"], 1, "the player on node 1").await;
    wait_for_audience(&mut sam, &["sam", "bob"], 1, "sam on node 2").await;
    // Node 3, which nobody watches on, lists the three (node 1's beats).
    let mut client_three = three.client().await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sessions = client_three
            .list_game_sessions(pb::ListGameSessionsRequest::default())
            .await
            .expect("list on node 3")
            .into_inner()
            .sessions;
        let listed = sessions.iter().find(|s| s.id == game.id);
        let count = listed.map_or(0, |s| s.spectator_count);
        if count == 3 {
            // Listed with the node it runs on.
            assert_eq!(listed.map(|s| s.node_id.as_str()), Some("one"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node 3 lists {count} spectators"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (status, body) = http_get(two.http_addr, "/sessions");
    assert_eq!(status, 200);
    assert!(body.contains("\"node\":\"one\""), "{body}");
    let home = tempfile::tempdir().expect("a home");
    let listing = dgate_as(home.path(), &two.url(), &["list"], "");
    let text = String::from_utf8_lossy(&listing.stdout);
    let header = text.lines().next().unwrap_or_default();
    let row = text
        .lines()
        .find(|l| l.contains("alice"))
        .unwrap_or_default();
    assert!(header.contains("NODE") && row.contains(" one"), "{text}");

    // Node 1's cap (3) holds for a fourth spectator on node 3.
    let carol_token = account(&three.url(), "carol").await;
    let refused = Viewer::spectator_with(&mut client_three, &game.id, Some(&carol_token))
        .await
        .err()
        .expect("a fourth spectator is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(refused.message().contains("maximum of 3"), "{refused:?}");

    // One chat: node 2's line reaches node 1, node 1's reaches node 2; the
    // game's node answers a bad line in its own words.
    sam.say("hello from two").await;
    for (viewer, who) in [(&mut player, "the player"), (&mut bob, "bob")] {
        let line = viewer
            .wait_for_chat(said("hello from two"))
            .await
            .unwrap_or_else(|e| panic!("{who}: {e:#}"));
        assert_eq!(line.sender, "sam");
    }
    // Sam sees his own line too, as node 1's chat relayed it back.
    sam.wait_for_chat(said("hello from two"))
        .await
        .expect("sam's own line on node 2");
    player.say("hi sam").await;
    let line = sam
        .wait_for_chat(said("hi sam"))
        .await
        .expect("node 1's line on node 2");
    assert!(line.from_player);
    sam.say("   ").await;
    sam.wait_for_chat(answered("empty"))
        .await
        .expect("node 1's answer");
    // A spectator joining on node 3 later is given the chat's history.
    let dan_token = account(&three.url(), "dan").await;
    drop(bob);
    wait_for_audience(&mut player, &["sam"], 1, "bob left").await;
    let mut dan = Viewer::spectator_with(&mut client_three, &game.id, Some(&dan_token))
        .await
        .expect("a place is free again");
    dan.wait_for_chat(said("hi sam"))
        .await
        .expect("the history on node 3");

    // Sam's message to the player, sent on node 2, is node 1's to deliver.
    client_two
        .send_player_message(authed(
            pb::SendPlayerMessageRequest {
                session_id: game.id.clone(),
                text: "nice dodge!".into(),
            },
            &sam_token,
        ))
        .await
        .expect("a message through node 2");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !player.seen.iter().any(
        |s| matches!(s, Seen::Notice(from, text, false) if from == "sam" && text == "nice dodge!"),
    ) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notice: {:?}",
            player.seen
        );
        let _ = tokio::time::timeout(Duration::from_millis(500), player.step_any()).await;
    }

    // The player kicks sam: his stream on node 2 ends, he may not come
    // back on any node, and his place is free.
    player.say("/kick sam 5").await;
    player
        .wait_for_chat(answered("sam is sent away for 5 min"))
        .await
        .expect("kicked");
    sam.read_to_end()
        .await
        .expect("sam's stream on node 2 ends");
    for (client, node) in [(&mut client_two, "node 2"), (&mut client_three, "node 3")] {
        let refused = Viewer::spectator_with(client, &game.id, Some(&sam_token))
            .await
            .err()
            .unwrap_or_else(|| panic!("sam may not come back on {node}"));
        assert_eq!(refused.code(), Code::PermissionDenied, "{node}");
        assert!(refused.message().contains("sent you away"), "{refused:?}");
    }
    wait_for_audience(&mut player, &["dan"], 1, "sam is gone").await;
    // The anonymous spectator on node 2 leaves: node 1 forgets it.
    drop(anon);
    wait_for_audience(&mut player, &["dan"], 0, "the anonymous one left").await;
    wait_for_audience(&mut dan, &["dan"], 0, "node 3 shows it too").await;

    three.shutdown().await;
    two.shutdown().await;
    one.shutdown().await;
}
