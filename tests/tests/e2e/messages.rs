//! Messages to players: a logged-in spectator's `m` line and an admin's
//! announcement reach the game's mail spool in dgamelaunch's format and the
//! player's own view; bad messages, anonymous senders and floods are
//! refused with clear codes.

use crate::common;

use std::time::{Duration, Instant};

use common::ssh::{Login, SshTerminal};
use common::*;
use dgate_proto::pb;
use tonic::Code;

/// Reads the player's stream until it has seen a notice; the notices seen.
async fn notices(player: &mut Viewer, wanted: usize) -> Vec<(String, String, bool)> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen: Vec<_> = player
            .seen
            .iter()
            .filter_map(|s| match s {
                Seen::Notice(from, text, announcement) => {
                    Some((from.clone(), text.clone(), *announcement))
                }
                _ => None,
            })
            .collect();
        if seen.len() >= wanted {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "no notice came: {:?}",
            player.seen
        );
        let _ = tokio::time::timeout(Duration::from_millis(500), player.step()).await;
    }
}

fn message(
    session_id: &str,
    text: &str,
    token: &str,
) -> tonic::Request<pb::SendPlayerMessageRequest> {
    authed(
        pb::SendPlayerMessageRequest {
            session_id: session_id.into(),
            text: text.into(),
        },
        token,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spectators_message_reaches_the_spool_and_the_players_view() {
    let server = start_server(|c| {
        let mut game = testgame("mailgame", &[]);
        game.mail_spool = Some("%d/mail/%u".into());
        c.games.push(game);
    })
    .await;
    let spool = server.data_dir.path().join("mail/pia");
    let mut client = server.client().await;
    let game = server.start_game("pia", "mailgame").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let sam = server.account("sam").await;

    let sent = client
        .send_player_message(message(&game.id, "  nice dodge!\r\n", &sam))
        .await
        .expect("sent")
        .into_inner();
    assert!(sent.spooled);
    assert_eq!(
        std::fs::read_to_string(&spool).expect("spool"),
        "sam:nice dodge!\n"
    );
    assert_eq!(
        notices(&mut player, 1).await,
        [("sam".to_owned(), "nice dodge!".to_owned(), false)]
    );

    // Refused, with the reason, and nothing written.
    let code = |r: Result<tonic::Response<pb::SendPlayerMessageResponse>, tonic::Status>| {
        r.expect_err("refused").code()
    };
    let anonymous = client
        .send_player_message(pb::SendPlayerMessageRequest {
            session_id: game.id.clone(),
            text: "hi".into(),
        })
        .await;
    assert_eq!(code(anonymous), Code::Unauthenticated);
    for bad in ["", " \x07\x1b ", &"x".repeat(81)] {
        let refused = client
            .send_player_message(message(&game.id, bad, &sam))
            .await;
        assert_eq!(code(refused), Code::InvalidArgument, "{bad:?}");
    }
    let unknown = client
        .send_player_message(message("nosuchgame", "hi", &sam))
        .await;
    assert_eq!(code(unknown), Code::NotFound);
    // Control characters never reach the spool (a terminal escape would
    // reach whoever reads it).
    client
        .send_player_message(message(&game.id, "a\x1b[2Jb\x07", &sam))
        .await
        .expect("sent");
    assert_eq!(
        std::fs::read_to_string(&spool).expect("spool"),
        "sam:nice dodge!\nsam:a[2Jb\n"
    );

    // Five a minute from one sender; others are not held up by it.
    for i in 0..3 {
        client
            .send_player_message(message(&game.id, &format!("m{i}"), &sam))
            .await
            .expect("within the limit");
    }
    let flood = client
        .send_player_message(message(&game.id, "one more", &sam))
        .await
        .expect_err("over the limit");
    assert_eq!(flood.code(), Code::ResourceExhausted);
    assert!(
        flood.message().contains("at most 5 messages a minute"),
        "{flood:?}"
    );

    // The game holds the spool's lock a moment: the message waits for it.
    // Held longer than the server waits, the message still reaches the
    // player's view, and the server is not held up.
    let tom = server.account("tom").await;
    for (hold, spooled) in [(1, true), (5, false)] {
        let mut locker = std::process::Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import fcntl,sys,time\nf=open(sys.argv[1],'a')\nfcntl.lockf(f,fcntl.LOCK_EX)\nprint('locked',flush=True)\ntime.sleep({hold})"
                ),
                &spool.to_string_lossy(),
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(locker.stdout.as_mut().expect("stdout")),
            &mut line,
        )
        .expect("locked");
        let started = Instant::now();
        let sent = client
            .send_player_message(message(&game.id, &format!("held {hold}"), &tom))
            .await
            .expect("sent")
            .into_inner();
        assert_eq!(sent.spooled, spooled, "lock held {hold} s");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        let _ = locker.wait();
    }
    let spooled = std::fs::read_to_string(&spool).expect("spool");
    assert!(spooled.ends_with("tom:held 1\n"), "{spooled}");
    let seen = notices(&mut player, 7).await;
    assert!(
        seen.contains(&("tom".into(), "held 5".into(), false)),
        "{seen:?}"
    );
    server.shutdown().await;
}

/// `dgate-server announce` beside the running server, and the admin RPC:
/// every player hears it, spools get `SERVERID:text`, the SSH menu shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcements_reach_every_player_and_the_menus() {
    let server = start_server(|c| {
        let mut game = testgame("mailgame", &[]);
        game.mail_spool = Some("%d/mail/%u".into());
        c.games.push(game);
    })
    .await;
    let mut client = server.client().await;
    let first = server.start_game("ann", "mailgame").await;
    let second = server.start_game("ben", "test").await;
    let mut ann = Viewer::player(&mut client, &first).await.expect("player");
    let mut ben = Viewer::player(&mut client, &second).await.expect("player");
    ann.ready().await;
    ben.ready().await;

    let out = std::process::Command::new(workspace_binary("dgate-server"))
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .args([
            "announce",
            "Restart at 12:00 UTC; your games will be saved.",
        ])
        .output()
        .expect("dgate-server announce");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let heard = (
        "".to_owned(),
        "Restart at 12:00 UTC; your games will be saved.".to_owned(),
        true,
    );
    assert_eq!(notices(&mut ann, 1).await, std::slice::from_ref(&heard));
    assert_eq!(notices(&mut ben, 1).await, std::slice::from_ref(&heard));
    assert_eq!(
        std::fs::read_to_string(server.data_dir.path().join("mail/ann")).expect("spool"),
        "dgate:Restart at 12:00 UTC; your games will be saved.\n"
    );
    let queue = server.data_dir.path().join("announcements");
    assert_eq!(
        std::fs::read_dir(&queue).expect("queue").count(),
        0,
        "delivered once"
    );
    let refused = std::process::Command::new(workspace_binary("dgate-server"))
        .arg("--data-dir")
        .arg(server.data_dir.path())
        .args(["announce", ""])
        .output()
        .expect("dgate-server announce");
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("empty"));

    // The menus show it for an hour.
    let mut t = SshTerminal::connect(server.ssh_addr, "guest", Login::None, (100, 30))
        .await
        .expect("ssh");
    t.wait_for("Restart at 12:00 UTC").await;
    assert!(t.contents().contains("Announcement ("), "{}", t.contents());

    // The RPC: admins only.
    let carl = server.account("carl").await;
    let announce = |token: &str| {
        authed(
            pb::AnnounceRequest {
                text: "Tournament starts now".into(),
            },
            token,
        )
    };
    let refused = client
        .announce(announce(&carl))
        .await
        .expect_err("not an admin");
    assert_eq!(refused.code(), Code::PermissionDenied);
    dgate_server::accounts::AccountStore::open(
        &server.data_dir.path().join("dgate.db"),
        Duration::from_secs(60),
    )
    .expect("store")
    .set_admin("carl", true)
    .expect("admin");
    let players = client
        .announce(announce(&carl))
        .await
        .expect("an admin announces")
        .into_inner()
        .players;
    assert_eq!(players, 2);
    assert_eq!(notices(&mut ben, 2).await[1].1, "Tournament starts now");
    server.shutdown().await;
}
