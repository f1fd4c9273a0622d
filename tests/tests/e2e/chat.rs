//! A game's chat over gRPC: logged-in spectators and the player speak,
//! anonymous spectators read; joiners get the history; the player mutes,
//! kicks and blocks, which holds for their later games; the chat is kept
//! beside the recording. Nothing said in the chat reaches the game.

use crate::common;

use std::time::Duration;

use common::*;
use dgate_proto::pb;
use tonic::Code;

fn said(text: &'static str) -> impl Fn(&pb::ChatEvent) -> bool {
    move |e: &pb::ChatEvent| !e.answer && e.text == text
}

fn answered(part: &'static str) -> impl Fn(&pb::ChatEvent) -> bool {
    move |e: &pb::ChatEvent| e.answer && e.text.contains(part)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spectators_and_the_player_chat_and_the_player_is_in_charge() {
    let server = start_server(|c| {
        c.games
            .push(testgame("chatty", &["--keylog", "%d/games/%u/keys"]));
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("pat", "chatty").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let sue_token = server.account("sue").await;
    let tom_token = server.account("tom").await;
    let mut sue = Viewer::spectator_with(&mut client, &game.id, Some(&sue_token))
        .await
        .expect("sue watches");
    let mut anon = Viewer::spectator(&mut client, &game.id, "anon")
        .await
        .expect("an anonymous spectator");

    // Everyone sees a logged-in spectator's line, with the sender's login.
    sue.say("  hello from sue\x1b[2J ").await;
    for viewer in [&mut player, &mut sue, &mut anon] {
        let line = viewer
            .wait_for_chat(said("hello from sue[2J"))
            .await
            .expect("the line");
        assert_eq!(line.sender, "sue");
        assert!(!line.from_player && !line.history);
    }
    player.say("thanks!").await;
    let line = sue
        .wait_for_chat(said("thanks!"))
        .await
        .expect("the player's line");
    assert!(line.from_player);
    assert_eq!(line.sender, "pat");

    // An anonymous spectator reads but cannot write; bad lines get answers.
    anon.say("can I talk?").await;
    anon.wait_for_chat(answered("log in to chat"))
        .await
        .expect("told why");
    sue.say("").await;
    sue.wait_for_chat(answered("empty")).await.expect("told");
    sue.say(&"x".repeat(201)).await;
    sue.wait_for_chat(answered("at most 200"))
        .await
        .expect("told");
    sue.say("/kick pat").await;
    sue.wait_for_chat(answered("only pat (or an admin) gives commands"))
        .await
        .expect("told");

    // A joiner gets the history first, marked as such.
    let tom = Viewer::spectator_with(&mut client, &game.id, Some(&tom_token))
        .await
        .expect("tom watches");
    let mut tom = tom;
    let history = tom
        .wait_for_chat(said("thanks!"))
        .await
        .expect("the history");
    assert!(history.history);
    assert!(tom.chat.iter().all(|e| e.history));
    assert!(!tom.chat.iter().any(|e| e.text.contains("can I talk")));

    // Who is watching, live.
    player.say("/help").await;
    player
        .wait_for_chat(answered("/mute NAME"))
        .await
        .expect("the commands");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while player.audience != Some((vec!["sue".into(), "tom".into()], 1)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            player.audience
        );
        let _ = tokio::time::timeout(Duration::from_millis(300), player.step_any()).await;
    }

    // /mute: sue's lines reach nobody, and she is told.
    player.say("/mute sue").await;
    player
        .wait_for_chat(answered("sue is muted"))
        .await
        .expect("muted");
    sue.say("am I heard?").await;
    sue.wait_for_chat(answered("you are muted"))
        .await
        .expect("told");
    // Nor may she write to pat with `m`.
    let refused = client
        .send_player_message(authed(
            pb::SendPlayerMessageRequest {
                session_id: game.id.clone(),
                text: "psst".into(),
            },
            &sue_token,
        ))
        .await
        .expect_err("muted");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(
        refused.message().contains("pat has muted you"),
        "{refused:?}"
    );
    tom.say("tom here").await;
    let seen = player
        .wait_for_chat(said("tom here"))
        .await
        .expect("tom's line");
    assert_eq!(seen.sender, "tom");
    assert!(!player.chat.iter().any(|e| e.text == "am I heard?"));

    // /kick: sue's watch ends, and she may not come back for a while.
    player.say("/kick zed").await;
    player
        .wait_for_chat(answered("zed is not watching this game"))
        .await
        .expect("told");
    player.say("/kick sue 5").await;
    player
        .wait_for_chat(answered("sue is sent away for 5 min"))
        .await
        .expect("kicked");
    sue.read_to_end().await.expect("sue's stream ends");
    let refused = Viewer::spectator_with(&mut client, &game.id, Some(&sue_token))
        .await
        .err()
        .expect("sue may not come back");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("sent you away"), "{refused:?}");

    // /block anon: the anonymous spectator leaves and no other comes in.
    player.say("/block anon").await;
    anon.read_to_end().await.expect("the anonymous stream ends");
    let refused = Viewer::spectator(&mut client, &game.id, "again")
        .await
        .err()
        .expect("anonymous spectators are refused");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // Nothing said reached the game.
    let keys = std::fs::read(server.data_dir.path().join("games/pat/keys")).unwrap_or_default();
    assert!(keys.is_empty(), "{:?}", String::from_utf8_lossy(&keys));

    // The chat is kept beside the recording once the game ends.
    stop_game(&mut client, &game).await;
    player.read_to_end().await.expect("the game ends");
    let ttyrec = server.data_dir.path().join("ttyrec");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let chat_file = loop {
        let found = walk(&ttyrec)
            .into_iter()
            .find(|p| p.to_string_lossy().ends_with(".chat.jsonl"));
        if let Some(found) = found {
            break found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no chat file under {ttyrec:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let kept = std::fs::read_to_string(chat_file).expect("chat file");
    let texts: Vec<String> = kept
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("JSON line")["text"].to_string()
        })
        .collect();
    assert_eq!(
        texts,
        ["\"hello from sue[2J\"", "\"thanks!\"", "\"tom here\""]
    );

    // The rules hold for pat's next game: /block all makes it private.
    let again = server.start_game("pat", "chatty").await;
    let refused = Viewer::spectator(&mut client, &again.id, "anon")
        .await
        .err()
        .expect("still blocked");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut player = Viewer::player(&mut client, &again).await.expect("player");
    player.ready().await;
    player.say("/block all").await;
    player
        .wait_for_chat(answered("nobody may watch"))
        .await
        .expect("private");
    let refused = Viewer::spectator_with(&mut client, &again.id, Some(&tom_token))
        .await
        .err()
        .expect("nobody may watch");
    assert_eq!(refused.code(), Code::PermissionDenied);
    // But pat may, to undo it from a watcher too.
    Viewer::spectator_with(&mut client, &again.id, Some(&again.token))
        .await
        .expect("the player always may watch");
    // Listed as private meanwhile.
    let (_, sessions) = http_get(server.http_addr, "/sessions");
    let sessions: serde_json::Value = serde_json::from_str(&sessions).expect("JSON");
    let listed = sessions["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["id"] == again.id.as_str())
        .expect("listed");
    assert_eq!(listed["private"], true, "{listed}");
    player.say("/unblock").await;
    player
        .wait_for_chat(answered("anyone may watch"))
        .await
        .expect("open");
    Viewer::spectator(&mut client, &again.id, "anon")
        .await
        .expect("anyone may watch again");

    // Counted: lines said, lines refused by reason, commands.
    let (_, metrics) = http_get(server.http_addr, "/metrics");
    for counted in [
        "chat_lines_total 3",
        "chat_refused_total{reason=\"anonymous\"} 1",
        "chat_refused_total{reason=\"muted\"} 1",
        "chat_refused_total{reason=\"not_the_player\"} 1",
        "chat_refused_total{reason=\"invalid\"} 3",
        "chat_commands_total{command=\"kick\"} 1",
        "chat_commands_total{command=\"block\"} 2",
    ] {
        assert!(metrics.contains(counted), "{counted} in\n{metrics}");
    }
    server.shutdown().await;
}

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(walk(&path));
        } else {
            found.push(path);
        }
    }
    found
}

/// Over SSH: `c` opens the chat over the game and says a line, `m` sends
/// the player a message; the chat's last line shows on the status line;
/// the game is redrawn whole after either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ssh_spectator_chats_and_messages_the_player() {
    use common::ssh::{Login, SshTerminal};
    let server = start_server(|c| {
        let mut game = testgame("talky", &[]);
        game.mail_spool = Some("%d/mail/%u".into());
        c.games.push(game);
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("pia", "talky").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    server.account("sam").await;
    let password = String::from_utf8(password_of("sam")).expect("utf-8");
    let mut sam = SshTerminal::connect(
        server.ssh_addr,
        "sam",
        Login::Password(&password),
        (100, 30),
    )
    .await
    .expect("ssh");
    sam.wait_for("Logged in as sam.").await;
    sam.send(b"wa").await;
    sam.wait_for("pia · TEST").await;
    sam.wait_for("m: message · c: chat").await;

    sam.send(b"c").await;
    sam.wait_for("Chat (Enter says it, Esc closes)").await;
    sam.send(b"hello pia\r").await;
    let line = player
        .wait_for_chat(|e| e.text == "hello pia")
        .await
        .expect("the player hears it");
    assert_eq!(line.sender, "sam");
    // Redrawn after: the game's screen again, and the line on the status line.
    sam.wait_for("sam: hello pia").await;
    sam.wait_for("dgate test game").await;

    player.say("hi sam").await;
    sam.wait_for("pia: hi sam").await;

    sam.send(b"m").await;
    sam.wait_for("Message to pia").await;
    sam.send(b"look behind you\r").await;
    sam.wait_for("Sent to pia.").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if player
            .seen
            .iter()
            .any(|s| matches!(s, Seen::Notice(from, text, false) if from == "sam" && text == "look behind you"))
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no notice: {:?}",
            player.seen
        );
        let _ = tokio::time::timeout(Duration::from_millis(300), player.step()).await;
    }
    assert_eq!(
        std::fs::read_to_string(server.data_dir.path().join("mail/pia")).expect("spool"),
        "sam:look behind you\n"
    );

    // An anonymous watcher reads the chat but is told it cannot write.
    let mut guest = SshTerminal::connect(server.ssh_addr, "guest", Login::None, (100, 30))
        .await
        .expect("ssh");
    guest.wait_for("=>").await;
    guest.send(b"wa").await;
    // The status line shows the chat's last line.
    guest.wait_for("pia: hi sam").await;
    guest.send(b"m").await;
    guest
        .wait_for("Log in (l in the main menu) to send messages")
        .await;
    guest.send(b"c").await;
    guest.wait_for("anonymous spectators read").await;
    guest.wait_for("sam: hello pia").await;
    guest.send(b"\x1b").await;
    guest.wait_for("dgate test game").await;
    server.shutdown().await;
}

/// `dgate watch` in a real terminal: the chat beside the game (the
/// terminal has room), who watches in its title, `c` says a line, `m`
/// messages the player.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dgate_watch_shows_the_chat_beside_the_game_and_talks() {
    use common::tmux::Tmux;
    let server = start_server(|c| {
        let mut game = testgame("talky", &[]);
        game.mail_spool = Some("%d/mail/%u".into());
        c.games.push(game);
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("pia", "talky").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.say("welcome, watchers").await;
    server.account("wes").await;
    let url = server.url();
    let homes = tempfile::tempdir().expect("homes");
    let home = homes.path().join("wes");
    let spool = server.data_dir.path().join("mail/pia");
    let tmux = tokio::task::spawn_blocking(move || {
        let env = dgate_logged_in(&home, &url, "wes");
        let tmux = Tmux::new();
        let dgate = workspace_binary("dgate");
        tmux.start_with(
            "watch",
            (120, 30),
            &env,
            &format!("{} watch; sleep 30", dgate.display()),
        );
        tmux.wait_for_text("watch", "pia");
        tmux.send("watch", &["a"]);
        tmux.wait_for_text("watch", "dgate test game");
        // The history, and who watches, beside the game.
        tmux.wait_for_text("watch", "pia: welcome, watchers");
        tmux.wait_for_text("watch", "Chat · 1 watching: wes");
        tmux.send("watch", &["c"]);
        tmux.wait_for_text("watch", "Chat (Enter says it, Esc closes)");
        tmux.send("watch", &["h", "i", " ", "p", "i", "a", "Enter"]);
        tmux.wait_for_text("watch", "wes: hi pia");
        tmux.send("watch", &["m"]);
        tmux.wait_for_text("watch", "Message to pia");
        tmux.send(
            "watch",
            &["b", "e", "h", "i", "n", "d", " ", "y", "o", "u", "Enter"],
        );
        tmux.wait_for_text("watch", "Sent to pia.");
        assert_eq!(
            std::fs::read_to_string(&spool).expect("spool"),
            "wes:behind you\n"
        );
        tmux
    })
    .await
    .expect("the terminal part");
    let line = player
        .wait_for_chat(|e| e.text == "hi pia")
        .await
        .expect("the player hears the watcher");
    assert_eq!(line.sender, "wes");
    drop(tmux);
    server.shutdown().await;
}

/// `spectating.chat.anonymous_read: false`: anonymous spectators see no
/// chat at all; logged-in ones do. `lines_per_10s` sets the rate limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_can_be_kept_from_anonymous_spectators() {
    let server = start_server(|c| {
        let chat = &mut c.session_management.spectating.chat;
        chat.anonymous_read = false;
        chat.lines_per_10s = 2;
    })
    .await;
    let mut client = server.client().await;
    let game = server.start_game("pat", "test").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let sue_token = server.account("sue").await;
    let mut sue = Viewer::spectator_with(&mut client, &game.id, Some(&sue_token))
        .await
        .expect("sue watches");
    let mut anon = Viewer::spectator(&mut client, &game.id, "anon")
        .await
        .expect("anonymous");
    player.say("one").await;
    player.say("two").await;
    player.say("three").await;
    sue.wait_for_chat(said("two")).await.expect("sue reads");
    player
        .wait_for_chat(answered("at most 2 lines per 10 s"))
        .await
        .expect("the third is refused");
    // The anonymous stream went on (frames), with no chat in it.
    player.send(b"f").await;
    anon.wait_for_text("frame 000001").await.expect("frames");
    assert!(anon.chat.is_empty(), "{:?}", anon.chat);
    server.shutdown().await;
}

/// The player in `dgate play`: Ctrl+] c says a line (and gives a command),
/// the game is redrawn after, nothing typed there reaches the game, and
/// Ctrl+] d detaches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_chats_from_dgate_play_with_ctrl_bracket_c() {
    use common::tmux::Tmux;
    let server = start_server(|c| {
        c.games
            .push(testgame("keyed", &["--keylog", "%d/games/%u/keys"]));
    })
    .await;
    server.account("pia").await;
    let sue_token = server.account("sue").await;
    let url = server.url();
    let homes = tempfile::tempdir().expect("homes");
    let home = homes.path().join("pia");
    let tmux = Tmux::new();
    let env = dgate_logged_in(&home, &url, "pia");
    let dgate = workspace_binary("dgate");
    tmux.start_with(
        "play",
        (80, 24),
        &env,
        &format!("{} play keyed; sleep 30", dgate.display()),
    );
    tmux.wait_for_text("play", "dgate test game");
    let session = server
        .manager
        .list()
        .into_iter()
        .find(|s| s.info.username == "pia")
        .expect("pia's game");
    let mut client = server.client().await;
    let mut sue = Viewer::spectator_with(&mut client, &session.info.id, Some(&sue_token))
        .await
        .expect("sue watches");

    tmux.send("play", &["C-]"]);
    tmux.wait_for_text("play", "d: detach");
    tmux.send("play", &["c"]);
    tmux.wait_for_text("play", "Chat (Enter says it");
    tmux.send("play", &["h", "i", " ", "s", "u", "e", "Enter"]);
    let line = sue
        .wait_for_chat(|e| e.text == "hi sue")
        .await
        .expect("sue hears the player");
    assert!(line.from_player);
    // The game is back whole.
    tmux.wait_for("play", "the game redrawn", |screen| {
        screen.iter().any(|l| l.contains("dgate test game"))
            && !screen.iter().any(|l| l.contains("Chat (Enter"))
    });
    tmux.send("play", &["C-]", "c"]);
    tmux.send(
        "play",
        &[
            "/", "b", "l", "o", "c", "k", " ", "a", "n", "o", "n", "Enter",
        ],
    );
    tmux.wait_for_text("play", "only logged-in spectators may watch now");
    tmux.send("play", &["C-]", "d"]);
    tmux.wait_for_text("play", "Detached.");
    let keys = std::fs::read(server.data_dir.path().join("games/pia/keys")).unwrap_or_default();
    assert!(keys.is_empty(), "{:?}", String::from_utf8_lossy(&keys));
    server.shutdown().await;
}

/// The player over SSH: Ctrl+] c says a line in the chat, Ctrl+] d
/// detaches back to the menu; neither reaches the game.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_chats_over_ssh_with_ctrl_bracket_c() {
    use common::ssh::{Login, SshTerminal};
    let server = start_server(|c| {
        c.games
            .push(testgame("keyed", &["--keylog", "%d/games/%u/keys"]));
    })
    .await;
    server.account("pia").await;
    let sue_token = server.account("sue").await;
    let password = String::from_utf8(password_of("pia")).expect("utf-8");
    let mut t = SshTerminal::connect(
        server.ssh_addr,
        "pia",
        Login::Password(&password),
        (100, 30),
    )
    .await
    .expect("ssh");
    t.wait_for("Logged in as pia.").await;
    t.send(b"p").await;
    t.wait_for("Play which game?").await;
    // NetHack, DCSS, the test game, the missing one, then `keyed`.
    t.send(b"e").await;
    t.wait_for("dgate test game").await;
    let session = server
        .manager
        .list()
        .into_iter()
        .find(|s| s.info.username == "pia")
        .expect("pia's game");
    let mut client = server.client().await;
    let mut sue = Viewer::spectator_with(&mut client, &session.info.id, Some(&sue_token))
        .await
        .expect("sue watches");
    t.send(b"\x1d").await;
    t.wait_for("d: detach").await;
    t.send(b"c").await;
    t.wait_for("Chat (Enter says it").await;
    t.send(b"hello from ssh\r").await;
    let line = sue
        .wait_for_chat(|e| e.text == "hello from ssh")
        .await
        .expect("sue hears it");
    assert!(line.from_player);
    t.send(b"\x1dd").await;
    t.wait_for("Detached: the game waits for you").await;
    let keys = std::fs::read(server.data_dir.path().join("games/pia/keys")).unwrap_or_default();
    assert!(keys.is_empty(), "{:?}", String::from_utf8_lossy(&keys));
    server.shutdown().await;
}
