//! What operators of dgamelaunch servers rely on: per-player rc files made
//! from a template, in-progress files bots read, the status file, and
//! online backups of the accounts.

use crate::common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use dgate_proto::pb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_players_rc_file_is_made_from_the_template_once_and_given_to_the_game() {
    let templates = tempfile::tempdir().expect("tempdir");
    let template = templates.path().join("nethackrc");
    std::fs::write(&template, "OPTIONS=color,showexp\n").expect("template");
    std::fs::set_permissions(&template, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let server = start_server(|c| {
        let mut game = testgame("rc", &["--dump-env", "%d/games/%u/env"]);
        game.rc_file = Some("%d/rcfiles/%g/%u.rc".into());
        game.rc_template = Some(template.clone());
        game.environment
            .insert("NETHACKOPTIONS".into(), "@%r".into());
        c.games.push(game);
    })
    .await;
    let data = server.data_dir.path().to_owned();
    let rc = data.join("rcfiles/rc/rhoda.rc");
    let mut client = server.client().await;
    let game = server.start_game("rhoda", "rc").await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;

    assert_eq!(
        std::fs::read_to_string(&rc).expect("the rc file was made"),
        "OPTIONS=color,showexp\n"
    );
    let meta = std::fs::metadata(&rc).expect("rc");
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    if std::fs::metadata("/proc/self").expect("/proc").uid() == 0 {
        let games = nix::unistd::User::from_name("games")
            .expect("lookup")
            .expect("a games user");
        assert_eq!(meta.uid(), games.uid.as_raw(), "the game's account owns it");
    }
    let env = std::fs::read_to_string(data.join("games/rhoda/env")).expect("env");
    assert!(
        env.lines()
            .any(|l| l == format!("NETHACKOPTIONS=@{}", rc.display())),
        "{env}"
    );

    // The player's own changes are kept: the template is copied once.
    std::fs::write(&rc, "OPTIONS=!color\n").expect("edit");
    client
        .stop_game_session(authed(
            pb::StopGameSessionRequest {
                session_id: game.id.clone(),
                reason: "again".into(),
                force: false,
            },
            &game.token,
        ))
        .await
        .expect("stop");
    player.read_to_end().await.expect("the game ends");
    let again = server.start_game("rhoda", "rc").await;
    let mut player = Viewer::player(&mut client, &again).await.expect("player");
    player.ready().await;
    assert_eq!(
        std::fs::read_to_string(&rc).expect("rc"),
        "OPTIONS=!color\n"
    );
    server.shutdown().await;
}
