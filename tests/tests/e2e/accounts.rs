//! Accounts end to end: AuthService round trips, the rate limit, and who may
//! do what to whose game.

use crate::common;

use common::*;
use dgate_proto::auth as auth_pb;
use dgate_proto::auth::auth_service_client::AuthServiceClient;
use dgate_proto::pb;
use tonic::Code;

async fn auth_client(server: &TestServer) -> AuthServiceClient<tonic::transport::Channel> {
    AuthServiceClient::connect(server.url())
        .await
        .expect("connect")
}

fn login(username: &str, password: &[u8]) -> auth_pb::LoginRequest {
    auth_pb::LoginRequest {
        username: username.into(),
        password: password.to_vec().into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_whoami_change_password_logout() {
    let server = start_server(|_| {}).await;
    let mut auth = auth_client(&server).await;
    let user = auth
        .register(auth_pb::RegisterRequest {
            username: "Rosa".into(),
            password: b"first password".to_vec().into(),
            email: "rosa@example.org".into(),
        })
        .await
        .expect("register")
        .into_inner()
        .user
        .expect("user");
    assert_eq!(user.username, "Rosa");

    for (name, password, code) in [
        ("rosa", &b"other password"[..], Code::AlreadyExists),
        ("r", b"long enough", Code::InvalidArgument),
        (
            "x'; DROP TABLE users;--",
            b"long enough",
            Code::InvalidArgument,
        ),
        ("ünïcode", b"long enough", Code::InvalidArgument),
        ("bell\x07", b"long enough", Code::InvalidArgument),
        ("newbie", b"short", Code::InvalidArgument),
    ] {
        let request = auth_pb::RegisterRequest {
            username: name.into(),
            password: password.to_vec().into(),
            email: String::new(),
        };
        assert_eq!(status_code(auth.register(request).await), code, "{name:?}");
    }

    let token = auth
        .login(login("ROSA", b"first password"))
        .await
        .expect("login")
        .into_inner()
        .token;
    let me = auth
        .who_am_i(authed(auth_pb::WhoAmIRequest {}, &token))
        .await
        .expect("whoami")
        .into_inner();
    assert_eq!(me.user.expect("user").username, "Rosa");
    assert_eq!(
        status_code(auth.who_am_i(auth_pb::WhoAmIRequest {}).await),
        Code::Unauthenticated
    );
    assert_eq!(
        status_code(
            auth.who_am_i(authed(auth_pb::WhoAmIRequest {}, "0000"))
                .await
        ),
        Code::Unauthenticated
    );

    let wrong_old = auth_pb::ChangePasswordRequest {
        old_password: b"not it at all".to_vec().into(),
        new_password: b"second password".to_vec().into(),
    };
    assert_eq!(
        status_code(auth.change_password(authed(wrong_old, &token)).await),
        Code::Unauthenticated
    );
    let change = auth_pb::ChangePasswordRequest {
        old_password: b"first password".to_vec().into(),
        new_password: b"second password".to_vec().into(),
    };
    auth.change_password(authed(change, &token))
        .await
        .expect("change password");
    assert_eq!(
        status_code(
            auth.who_am_i(authed(auth_pb::WhoAmIRequest {}, &token))
                .await
        ),
        Code::Unauthenticated,
        "a new password revokes old tokens"
    );
    assert_eq!(
        status_code(auth.login(login("rosa", b"first password")).await),
        Code::Unauthenticated
    );
    let token = auth
        .login(login("rosa", b"second password"))
        .await
        .expect("login")
        .into_inner()
        .token;
    auth.logout(authed(auth_pb::LogoutRequest {}, &token))
        .await
        .expect("logout");
    assert_eq!(
        status_code(
            auth.who_am_i(authed(auth_pb::WhoAmIRequest {}, &token))
                .await
        ),
        Code::Unauthenticated
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited_and_say_when_to_retry() {
    let server = start_server(|c| c.accounts.failed_logins_per_minute = 3).await;
    let mut auth = auth_client(&server).await;
    server.account("sam").await;
    for _ in 0..3 {
        assert_eq!(
            status_code(auth.login(login("sam", b"wrong password")).await),
            Code::Unauthenticated
        );
    }
    let status = auth
        .login(login("sam", b"wrong password"))
        .await
        .expect_err("limited");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(
        status.message().contains("try again in"),
        "{}",
        status.message()
    );
    // Even the right password waits: the limit is on the name and the address.
    let right = login("sam", &password_of("sam"));
    assert_eq!(
        status_code(auth.login(right).await),
        Code::ResourceExhausted
    );
    // Other calls are not limited.
    auth.register(auth_pb::RegisterRequest {
        username: "tess".into(),
        password: b"password of tess".to_vec().into(),
        email: String::new(),
    })
    .await
    .expect("register still works");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_expire() {
    let server = start_server(|c| c.accounts.token_lifetime = std::time::Duration::ZERO).await;
    let token = server.account("uma").await;
    let mut client = server.client().await;
    let request = pb::StartGameSessionRequest {
        game_id: "test".into(),
        ..Default::default()
    };
    assert_eq!(
        status_code(client.start_game_session(authed(request, &token)).await),
        Code::Unauthenticated
    );
    server.shutdown().await;
}

/// Nobody but the owner types into, resizes or stops a game; admins may stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_touch_your_game() {
    let server = start_server(|_| {}).await;
    let mut client = server.client().await;
    let game = server.start_game("vera", "test").await;
    let mallory = server.account("mallory").await;

    let connect = pb::GameIoRequest {
        request: Some(pb::game_io_request::Request::Connect(
            pb::ConnectPtyRequest {
                session_id: game.id.clone(),
                username: "vera".into(),
                ..Default::default()
            },
        )),
    };
    assert_eq!(
        status_code(
            open_stream(&mut client, Some(&mallory), connect)
                .await
                .map(|_| ())
        ),
        Code::PermissionDenied
    );
    let stop = pb::StopGameSessionRequest {
        session_id: game.id.clone(),
        reason: "mine now".into(),
        force: true,
    };
    assert_eq!(
        status_code(
            client
                .stop_game_session(authed(stop.clone(), &mallory))
                .await
        ),
        Code::PermissionDenied
    );
    assert_eq!(
        status_code(client.stop_game_session(stop.clone()).await),
        Code::Unauthenticated
    );
    let resize = pb::ResizeTerminalRequest {
        session_id: game.id.clone(),
        new_size: Some(pb::TerminalSize {
            width: 90,
            height: 30,
        }),
        username: "vera".into(),
    };
    assert_eq!(
        status_code(client.resize_terminal(authed(resize, &mallory)).await),
        Code::PermissionDenied
    );
    // Mallory may watch, read-only.
    let watching = Viewer::spectator_with(&mut client, &game.id, Some(&mallory))
        .await
        .expect("watch");
    watching.send(b"x").await;
    let mut player = Viewer::player(&mut client, &game)
        .await
        .expect("the owner plays");
    player.ready().await;
    player.send(b"f").await;
    player
        .wait_for_text("frame 000001")
        .await
        .expect("still running");

    // An administrator may stop anyone's game.
    let admin = server.account("boss").await;
    let store = dgate_server::accounts::AccountStore::open(
        &server.data_dir.path().join("dgate.db"),
        std::time::Duration::from_secs(60),
    )
    .expect("open the store as an operator would");
    store.set_admin("boss", true).expect("make boss an admin");
    client
        .stop_game_session(authed(stop, &admin))
        .await
        .expect("an admin stops it");
    player.read_to_end().await.expect("game over");
    assert!(matches!(player.seen.last(), Some(Seen::Exit(_))));
    server.shutdown().await;
}

/// With `allow_anonymous: false`, watching needs a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_watching_follows_the_config() {
    let server = start_server(|c| c.session_management.spectating.allow_anonymous = false).await;
    let mut client = server.client().await;
    let game = server.start_game("wes", "test").await;
    let status = Viewer::spectator(&mut client, &game.id, "anon")
        .await
        .map(|_| ())
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    let xena = server.account("xena").await;
    let mut watcher = Viewer::spectator_with(&mut client, &game.id, Some(&xena))
        .await
        .expect("a user may watch");
    watcher.step().await.expect("snapshot");
    let listed = client
        .get_game_session(pb::GetGameSessionRequest {
            session_id: game.id.clone(),
        })
        .await
        .expect("get")
        .into_inner()
        .session
        .expect("session");
    assert_eq!(listed.spectators[0].username, "xena");
    server.shutdown().await;
}

/// Accounts (not sessions) survive a server restart on the same data dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_survive_a_restart() {
    let kept = tempfile::TempDir::new().expect("dir");
    let data_dir = kept.path().to_owned();
    let server = start_server(|c| c.data_dir = data_dir.clone()).await;
    let token = server.account("yann").await;
    server.shutdown().await;

    let server = start_server(|c| c.data_dir = data_dir.clone()).await;
    let mut auth = auth_client(&server).await;
    let me = auth
        .who_am_i(authed(auth_pb::WhoAmIRequest {}, &token))
        .await;
    assert_eq!(
        me.expect("the token survived")
            .into_inner()
            .user
            .expect("user")
            .username,
        "yann"
    );
    auth.login(login("yann", &password_of("yann")))
        .await
        .expect("the password survived");
    server.shutdown().await;
}
