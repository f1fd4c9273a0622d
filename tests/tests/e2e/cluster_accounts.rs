//! Accounts shared by a cluster's nodes (docs/CLUSTER.md, "Shared
//! accounts"): real `nats-server`s with JetStream on loopback, dgate nodes
//! in the test process, and `dgate-server` run as an operator runs it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cluster::Nats;
use crate::common;
use crate::common::ssh::{Login, SshTerminal};

use common::*;
use dgate_proto::auth as auth_pb;
use dgate_proto::auth::auth_service_client::AuthServiceClient;
use dgate_server::config::ClusterConfig;
use tonic::Code;

/// A node `node_id` on the NATS server `url`, its accounts kept by
/// `replicas` NATS servers.
async fn node(node_id: &str, url: &str, replicas: usize) -> TestServer {
    let (node_id, url) = (node_id.to_owned(), url.to_owned());
    start_server(move |c| {
        c.cluster = Some(ClusterConfig {
            node_id,
            nats_urls: vec![url],
            credentials: None,
            mirror_linger: Duration::from_secs(30),
            account_replicas: replicas,
        });
    })
    .await
}

async fn auth(url: &str) -> AuthServiceClient<tonic::transport::Channel> {
    AuthServiceClient::connect(url.to_owned())
        .await
        .expect("connect")
}

async fn register(url: &str, username: &str, password: &str) -> Result<(), tonic::Status> {
    auth(url)
        .await
        .register(auth_pb::RegisterRequest {
            username: username.into(),
            password: password.as_bytes().to_vec().into(),
            email: String::new(),
        })
        .await
        .map(drop)
}

async fn login(url: &str, username: &str, password: &str) -> Result<String, tonic::Status> {
    auth(url)
        .await
        .login(auth_pb::LoginRequest {
            username: username.into(),
            password: password.as_bytes().to_vec().into(),
        })
        .await
        .map(|r| r.into_inner().token)
}

/// Who `token` is on the node at `url`.
async fn whoami(url: &str, token: &str) -> Result<String, tonic::Status> {
    auth(url)
        .await
        .who_am_i(authed(auth_pb::WhoAmIRequest {}, token))
        .await
        .map(|r| r.into_inner().user.map(|u| u.username).unwrap_or_default())
}

/// Waits until `check` holds on a node (its copy follows the store a
/// moment behind).
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logs in on the node at `url` as soon as its copy has the account: the token.
async fn login_when_known(url: &str, username: &str, password: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match login(url, username, password).await {
            Ok(token) => return token,
            Err(status) => assert!(
                tokio::time::Instant::now() < deadline,
                "{url} never logged {username} in: {status:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A config for `dgate-server` commands run by an operator beside node
/// `node_id` (its own data_dir: the commands keep a copy there too).
fn operator_config(dir: &Path, node_id: &str, url: &str) -> PathBuf {
    let path = dir.join(format!("{node_id}.yaml"));
    std::fs::write(
        &path,
        format!(
            "data_dir: {:?}\ncluster:\n  node_id: {node_id:?}\n  nats_urls: [{url:?}]\n  account_replicas: 1\n",
            dir.join(node_id)
        ),
    )
    .expect("write the operator's config");
    path
}

fn dgate_server(config: &Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut command = Command::new(workspace_binary("dgate-server"));
    command
        .args(["--config", &config.to_string_lossy()])
        .args(args)
        .env("RUST_LOG", "warn");
    run_with_stdin(command, stdin)
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn test_key(seed: u8) -> russh::keys::PrivateKey {
    russh::keys::PrivateKey::from(russh::keys::ssh_key::private::Ed25519Keypair::from_seed(
        &[seed; 32],
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_made_on_one_node_works_on_every_node() {
    let nats = Nats::start(3).await;
    let one = node("one", &nats.urls[0], 3).await;
    let two = node("two", &nats.urls[1], 3).await;
    let three = node("three", &nats.urls[2], 3).await;
    let (one_url, two_url, three_url) = (one.url(), two.url(), three.url());

    register(&one_url, "alice", "alice's password")
        .await
        .expect("register on node 1");
    // Node 2 logs her in (its copy has her a moment later), and node 3
    // takes node 2's token.
    let token = login_when_known(&two_url, "alice", "alice's password").await;
    for url in [&three_url, &one_url] {
        until("every node takes node 2's token", || async {
            whoami(url, &token).await.is_ok_and(|name| name == "alice")
        })
        .await;
    }
    // The name is taken on every node, in any case.
    let again = register(&three_url, "ALICE", "another password").await;
    assert_eq!(status_code(again), Code::AlreadyExists);
    let wrong = login(&three_url, "alice", "not her password").await;
    assert_eq!(status_code(wrong), Code::Unauthenticated);

    // Three nodes register one name at the same moment: one of them gets it.
    let results = tokio::join!(
        register(&one_url, "bob", "password of node 1"),
        register(&two_url, "bob", "password of node 2"),
        register(&three_url, "bob", "password of node 3"),
    );
    let results = [results.0, results.1, results.2];
    let won: Vec<usize> = (0..3).filter(|&i| results[i].is_ok()).collect();
    assert_eq!(won.len(), 1, "exactly one registration wins: {results:?}");
    for (i, result) in results.iter().enumerate() {
        if let Err(status) = result {
            assert_eq!(
                status.code(),
                Code::AlreadyExists,
                "node {}: {status:?}",
                i + 1
            );
        }
    }
    let password = format!("password of node {}", won[0] + 1);
    for url in [&one_url, &two_url, &three_url] {
        until(
            "every node logs bob in with the winner's password",
            || async { login(url, "bob", &password).await.is_ok() },
        )
        .await;
    }

    // A key added on node 1 logs her in over SSH on node 3.
    let key = test_key(41);
    let line = key.public_key().to_openssh().expect("OpenSSH line");
    auth(&one_url)
        .await
        .add_public_key(authed(
            auth_pb::AddPublicKeyRequest {
                public_key: line.clone(),
            },
            &token,
        ))
        .await
        .expect("add a key on node 1");
    // Another account cannot take it, on any node.
    let bob = login(&two_url, "bob", &password).await.expect("bob");
    let taken = auth(&two_url)
        .await
        .add_public_key(authed(
            auth_pb::AddPublicKeyRequest { public_key: line },
            &bob,
        ))
        .await;
    assert_eq!(status_code(taken), Code::AlreadyExists);
    until("node 3 lists alice's key", || async {
        auth(&three_url)
            .await
            .list_public_keys(authed(auth_pb::ListPublicKeysRequest {}, &token))
            .await
            .is_ok_and(|r| r.into_inner().keys.len() == 1)
    })
    .await;
    let mut ssh = SshTerminal::connect_from(
        stranger(40),
        three.ssh_addr,
        "alice",
        Login::Key(&key),
        (80, 24),
        (80, 24),
    )
    .await
    .expect("a key login on node 3");
    ssh.wait_for("Logged in as alice").await;
    drop(ssh);

    // Logging out on node 3 ends the token on node 1 too.
    auth(&three_url)
        .await
        .logout(authed(auth_pb::LogoutRequest {}, &token))
        .await
        .expect("logout on node 3");
    assert_eq!(
        status_code(whoami(&three_url, &token).await),
        Code::Unauthenticated
    );
    until("node 1 refuses the token logged out on node 3", || async {
        whoami(&one_url, &token)
            .await
            .is_err_and(|s| s.code() == Code::Unauthenticated)
    })
    .await;
    // Bob's valid token with one digit of its signature changed is nobody.
    assert_eq!(whoami(&one_url, &bob).await.expect("bob's token"), "bob");
    let last = bob.chars().last().expect("a token");
    let forged = format!(
        "{}{}",
        &bob[..bob.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    assert_eq!(
        status_code(whoami(&one_url, &forged).await),
        Code::Unauthenticated
    );

    three.shutdown().await;
    two.shutdown().await;
    one.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_or_a_new_password_on_one_node_holds_on_every_node() {
    let nats = Nats::start(1).await;
    let one = node("one", &nats.urls[0], 1).await;
    let two = node("two", &nats.urls[0], 1).await;
    let operator = tempfile::tempdir().expect("the operator's directory");
    let config = operator_config(operator.path(), "one", &nats.urls[0]);

    // Carol plays on node 2, registered there.
    let game = start_game_at(&two.url(), "carol", "test", None).await;
    let mut client = two.client().await;
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    let token_on_one = login_when_known(&one.url(), "carol", "password of carol").await;

    // The operator bans her with node 1's `dgate-server user ban`.
    let banned = dgate_server(&config, &["user", "ban", "carol"], "");
    assert!(banned.status.success(), "{}", text(&banned));
    let ended = tokio::time::timeout(WAIT, player.read_to_end())
        .await
        .expect("her game's stream on node 2 ended in time");
    let error = ended.expect_err("ended by the server");
    assert!(format!("{error:#}").contains("banned"), "{error:#}");
    let refused = whoami(&one.url(), &token_on_one).await;
    assert!(
        matches!(
            status_code(refused),
            Code::Unauthenticated | Code::PermissionDenied
        ),
        "a banned account's token"
    );
    let refused = login(&two.url(), "carol", "password of carol").await;
    assert_eq!(status_code(refused), Code::PermissionDenied);
    let listing = dgate_server(&config, &["user", "list"], "");
    assert!(text(&listing).contains("banned"), "{}", text(&listing));

    // Unbanned, she changes her password on node 2: node 1 takes only the
    // new one, and her older token nowhere.
    let unbanned = dgate_server(&config, &["user", "unban", "carol"], "");
    assert!(unbanned.status.success(), "{}", text(&unbanned));
    let token = login_when_known(&two.url(), "carol", "password of carol").await;
    auth(&two.url())
        .await
        .change_password(authed(
            auth_pb::ChangePasswordRequest {
                old_password: b"password of carol".to_vec().into(),
                new_password: b"carol's new password".to_vec().into(),
            },
            &token,
        ))
        .await
        .expect("a new password on node 2");
    until("node 1 takes the new password", || async {
        login(&one.url(), "carol", "carol's new password")
            .await
            .is_ok()
    })
    .await;
    assert_eq!(
        status_code(login(&one.url(), "carol", "password of carol").await),
        Code::Unauthenticated
    );
    assert_eq!(
        status_code(whoami(&one.url(), &token).await),
        Code::Unauthenticated
    );
    // A single server's token format is nobody on a node.
    assert_eq!(
        status_code(whoami(&one.url(), &"ab".repeat(32)).await),
        Code::Unauthenticated
    );
    two.shutdown().await;
    one.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_most_nats_servers_still_logs_people_in() {
    let mut nats = Nats::start(3).await;
    let one = node("one", &nats.urls[0], 3).await;
    let three = node("three", &nats.urls[2], 3).await;
    register(&one.url(), "dave", "dave's password")
        .await
        .expect("register on node 1");
    until("node 3's copy has dave", || async {
        login(&three.url(), "dave", "dave's password").await.is_ok()
    })
    .await;

    // NATS servers 1 and 2 die: server 3, node 3's, is alone, a minority.
    for child in &mut nats.children[..2] {
        child.kill().expect("kill nats-server");
        child.wait().expect("reap nats-server");
    }
    let token = login(&three.url(), "dave", "dave's password")
        .await
        .expect("node 3 logs dave in from its copy");
    assert_eq!(whoami(&three.url(), &token).await.expect("whoami"), "dave");
    assert_eq!(
        status_code(login(&three.url(), "dave", "a wrong password").await),
        Code::Unauthenticated
    );
    // What changes the store waits for it, and says so.
    let refused = register(&three.url(), "erin", "erin's password")
        .await
        .expect_err("no registering without the store");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(
        refused.message().contains("cannot be changed now"),
        "{refused:?}"
    );
    let (status, _) = http_get(three.http_addr, "/healthz");
    assert_eq!(status, 200);
    three.shutdown().await;
    one.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_servers_accounts_move_into_the_cluster() {
    // A single server with two accounts, one with an SSH key.
    let single = start_server(|_| {}).await;
    let frank = account(&single.url(), "frank").await;
    let key = test_key(42);
    auth(&single.url())
        .await
        .add_public_key(authed(
            auth_pb::AddPublicKeyRequest {
                public_key: key.public_key().to_openssh().expect("line"),
            },
            &frank,
        ))
        .await
        .expect("frank's key");
    account(&single.url(), "grace").await;
    // Its database as `dgate-server backup` copies it.
    let copies = tempfile::tempdir().expect("a directory");
    let database = copies.path().join("single.db");
    dgate_server::accounts::AccountStore::open(
        &single.data_dir.path().join("dgate.db"),
        Duration::from_secs(60),
    )
    .expect("the single server's store")
    .backup(&database)
    .expect("a copy");
    single.shutdown().await;

    let nats = Nats::start(1).await;
    let one = node("one", &nats.urls[0], 1).await;
    // The cluster has a grace of its own already.
    register(&one.url(), "Grace", "the cluster's grace")
        .await
        .expect("grace in the cluster");
    let operator = tempfile::tempdir().expect("the operator's directory");
    let config = operator_config(operator.path(), "one", &nats.urls[0]);
    let database = database.to_string_lossy().into_owned();

    let imported = dgate_server(&config, &["import", "node", "--db", &database], "");
    assert!(imported.status.success(), "{}", text(&imported));
    let report = text(&imported);
    assert!(
        report.contains("added 1 account(s) to the cluster: frank"),
        "{report}"
    );
    assert!(
        report.contains("left 1 the cluster has already: grace"),
        "{report}"
    );
    // Again: nothing more.
    let again = dgate_server(&config, &["import", "node", "--db", &database], "");
    assert!(
        text(&again).contains("added 0 account(s)"),
        "{}",
        text(&again)
    );

    // Frank logs in on the node with his old password and key.
    let two = node("two", &nats.urls[0], 1).await;
    let password = String::from_utf8(password_of("frank")).expect("text");
    let token = login(&two.url(), "frank", &password)
        .await
        .expect("frank's old password on node 2");
    let keys = auth(&two.url())
        .await
        .list_public_keys(authed(auth_pb::ListPublicKeysRequest {}, &token))
        .await
        .expect("keys")
        .into_inner()
        .keys;
    assert_eq!(keys.len(), 1);
    let mut ssh = SshTerminal::connect_from(
        stranger(41),
        two.ssh_addr,
        "frank",
        Login::Key(&key),
        (80, 24),
        (80, 24),
    )
    .await
    .expect("frank's key on node 2");
    ssh.wait_for("Logged in as frank").await;
    drop(ssh);
    // The cluster's grace kept her own password.
    assert!(
        login(&two.url(), "grace", "the cluster's grace")
            .await
            .is_ok()
    );
    // Without a cluster section there is nothing to import into.
    let plain = operator.path().join("plain.yaml");
    std::fs::write(
        &plain,
        format!("data_dir: {:?}\n", operator.path().join("p")),
    )
    .expect("write");
    let refused = dgate_server(&plain, &["import", "node", "--db", &database], "");
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused).contains("no cluster section"),
        "{}",
        text(&refused)
    );
    two.shutdown().await;
    one.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_to_start_on_a_nats_without_jetstream() {
    // A NATS server as Debian starts it by default: no JetStream.
    let port = crate::cluster::free_port();
    let mut child = Command::new(crate::cluster::nats_binary())
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server");
    Nats::wait_listening(&[port]).await;
    let operator = tempfile::tempdir().expect("a directory");
    let config = operator_config(operator.path(), "one", &format!("nats://127.0.0.1:{port}"));
    let out = dgate_server(&config, &["user", "list"], "");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("start nats-server with -js"),
        "{}",
        text(&out)
    );
    let _ = child.kill();
    let _ = child.wait();
}
