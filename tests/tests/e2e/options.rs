//! Players' options files edited in dgate's own editor: `o` in the SSH menu
//! (then a real NetHack started with them) and `dgate options` in a real
//! terminal; saves over the limit refused; public rc files on the web.

use crate::common;

use std::path::Path;

use common::ssh::{Login, SshTerminal};
use common::tmux::Tmux;
use common::*;
use dgate_proto::pb;

const NETHACK: &str = "/usr/games/nethack";
const DOWN: &[u8] = b"\x1b[B";
const CTRL_S: &[u8] = b"\x13";

/// The acceptance path of the issue: register over SSH, `o`, choose NetHack,
/// add a line, Ctrl+S, Esc; the file is saved, and the next NetHack plays
/// with it (the role and race it names are taken without asking).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_edits_their_nethack_options_with_o_and_plays_with_them() {
    assert!(
        Path::new(NETHACK).exists(),
        "{NETHACK} is needed (apt-get install nethack-console; .ci/run installs it)"
    );
    let server = start_server(|_| {}).await;
    let name = format!("op{}", std::process::id());
    let mut t = SshTerminal::connect(server.ssh_addr, "guest", Login::None, (100, 30))
        .await
        .expect("ssh");
    t.wait_for("=>").await;
    t.send(b"r").await;
    t.wait_for("Username:").await;
    t.send(format!("{name}\r").as_bytes()).await;
    t.wait_for("Password:").await;
    t.send(b"options-pass\r").await;
    t.wait_for("Again:").await;
    t.send(b"options-pass\r").await;
    t.wait_for("o) Edit your game options").await;

    // Two games have options (NetHack and DCSS): `o` asks which.
    t.send(b"o").await;
    t.wait_for("Edit the options of which game?").await;
    assert!(t.contents().contains("a) NH36"), "{}", t.contents());
    assert!(t.contents().contains("b) DCSS"), "{}", t.contents());
    t.send(b"a").await;
    t.wait_for("NetHack 3.6 options of").await;
    t.wait_for("OPTIONS=color,showexp").await;
    t.wait_for("Ctrl+S save").await;
    // Below the default text (two lines and an empty last one).
    t.send(&[DOWN, DOWN].concat()).await;
    t.send(b"OPTIONS=role:Valkyrie,race:human,gender:female,align:neutral")
        .await;
    t.wait_for("[modified]").await;
    t.send(CTRL_S).await;
    t.wait_for("Saved.").await;
    t.send(b"\x1b").await;
    t.wait_for("Your NetHack 3.6 options are saved").await;

    let rc = server
        .data_dir
        .path()
        .join(format!("rcfiles/nethack/{name}.nethackrc"));
    let saved = std::fs::read_to_string(&rc).expect("the rc file");
    assert!(
        saved.ends_with(
            "suppress_alert:3.4.3\nOPTIONS=role:Valkyrie,race:human,gender:female,align:neutral\n"
        ),
        "{saved:?}"
    );
    // Public: the web shows it as saved.
    let (status, body) = http_get(server.http_addr, &format!("/rc/{name}/nethack"));
    assert_eq!((status, body.as_str()), (200, saved.as_str()));

    // NetHack reads it: no "Shall I pick ..." question, a Valkyrie at once.
    t.send(b"p").await;
    t.wait_for("Play which game?").await;
    t.send(b"a").await;
    t.wait_for("You are a neutral human Valkyrie").await;
    drop(t);
    server.shutdown().await;
    crate::nethack::remove_save_files(&name);
}

/// `dgate options` in a real terminal (tmux): with two games that have
/// options it asks which; typing and Ctrl+S saves; Esc with unsaved changes
/// asks first.
/// Over gRPC, a save over 64 KiB and a game without options are refused
/// with clear codes, and nothing is changed. `/rc` serves only public games'
/// files of real names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dgate_options_edits_in_a_real_terminal_and_bad_saves_change_nothing() {
    let server = start_server(|c| {
        // One game with options (the embedded ones are removed).
        c.games.retain(|g| g.rc_file.is_none());
        let mut game = testgame("opt", &[]);
        game.rc_file = Some("%d/rc/%g/%u.rc".into());
        game.rc_default = Some("# your options\n".into());
        c.games.push(game);
        let mut private = testgame("private", &[]);
        private.rc_file = Some("%d/rc/%g/%u.rc".into());
        c.games.push(private);
        c.games.iter_mut().for_each(|g| g.rc_public = g.id == "opt");
    })
    .await;
    let url = server.url();
    let token = server.account("olive").await;
    let rc = server.data_dir.path().join("rc/opt/olive.rc");
    let homes = tempfile::tempdir().expect("homes");
    let home = homes.path().join("olive");
    let url_for_cli = url.clone();
    let rc_for_cli = rc.clone();
    tokio::task::spawn_blocking(move || {
        let env = dgate_logged_in(&home, &url_for_cli, "olive");
        let tmux = Tmux::new();
        let dgate_bin = workspace_binary("dgate");
        // Two games have options: it asks which, by letter.
        tmux.start_with(
            "edit",
            (90, 20),
            &env,
            &format!("{} options; sleep 30", dgate_bin.display()),
        );
        tmux.wait_for_text("edit", "Edit the options of which game?");
        tmux.send("edit", &["a", "Enter"]);
        tmux.wait_for_text("edit", "# your options");
        tmux.wait_for_text("edit", "Ctrl+S save");
        tmux.send(
            "edit",
            &["Down", "O", "P", "T", "I", "O", "N", "S", "=", "x"],
        );
        tmux.wait_for_text("edit", "[modified]");
        // Esc with changes asks; any other key goes back to editing.
        tmux.send("edit", &["Escape"]);
        tmux.wait_for_text("edit", "Unsaved changes");
        tmux.send("edit", &["Right"]);
        tmux.send("edit", &["C-s"]);
        tmux.wait_for_text("edit", "Saved.");
        tmux.send("edit", &["Escape"]);
        tmux.wait_for_text("edit", "options are saved; your next game uses them");
        assert_eq!(
            std::fs::read_to_string(&rc_for_cli).expect("rc"),
            "# your options\nOPTIONS=x\n"
        );
    })
    .await
    .expect("the terminal part");

    let mut client = server.client().await;
    let loaded = client
        .get_game_options(authed(
            pb::GetGameOptionsRequest {
                game_id: "opt".into(),
            },
            &token,
        ))
        .await
        .expect("get")
        .into_inner();
    assert_eq!(loaded.text, "# your options\nOPTIONS=x\n");
    assert_eq!(loaded.max_bytes, 65536);
    let save = |game: &str, text: String| {
        authed(
            pb::SaveGameOptionsRequest {
                game_id: game.into(),
                text,
            },
            &token,
        )
    };
    let status = client
        .save_game_options(save("opt", "x".repeat(65537)))
        .await
        .expect_err("too large");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("at most 65536 bytes"),
        "{status:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&rc).expect("rc"),
        "# your options\nOPTIONS=x\n",
        "a refused save changes nothing"
    );
    let status = client
        .save_game_options(save("test", "x".into()))
        .await
        .expect_err("no options");
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let status = client
        .save_game_options(save("nosuchgame", "x".into()))
        .await
        .expect_err("no game");
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
    let anonymous = client
        .get_game_options(pb::GetGameOptionsRequest {
            game_id: "opt".into(),
        })
        .await
        .expect_err("anonymous");
    assert_eq!(anonymous.code(), tonic::Code::Unauthenticated);

    // The web: the public game's file; nothing for a private game, a
    // player without one, or a name no account could have.
    assert_eq!(
        http_get(server.http_addr, "/rc/olive/opt"),
        (200, "# your options\nOPTIONS=x\n".to_owned())
    );
    for path in [
        "/rc/olive/private",
        "/rc/nobody/opt",
        "/rc/..%2F..%2Fdgate.db/opt",
        "/rc/olive/..",
    ] {
        assert_eq!(http_get(server.http_addr, path).0, 404, "{path}");
    }
    server.shutdown().await;
}
