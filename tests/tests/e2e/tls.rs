//! TLS (`server.tls`): with a certificate made by the real `openssl` CLI,
//! the `dgate` binary and a gRPC client that trust it play and list over
//! `https://`; Chromium watches over HTTPS and WSS; a client that does not
//! trust it gets one clear line and exit 1; a plaintext client gets nothing.

use crate::common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use common::browser::{chromium_dom_until_with, terminal_rows};
use common::*;
use dgate_proto::auth::auth_service_client::AuthServiceClient;
use dgate_proto::pb;
use dgate_proto::pb::game_service_client::GameServiceClient;
use dgate_server::config::TlsConfig;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// A self-signed certificate for 127.0.0.1 and its key, as an operator
/// would make one with `openssl req` (see docs/SECURITY.md).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=dgate-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        made.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    (cert, key)
}

/// A gRPC channel over TLS that trusts `cert`.
async fn tls_channel(url: &str, cert: &Path) -> Result<Channel, tonic::transport::Error> {
    let pem = std::fs::read(cert).expect("read the certificate");
    Endpoint::from_shared(url.to_owned())?
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))?
        .connect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_trust_the_certificate_play_list_and_watch_over_tls() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(certs.path());
    let tls = TlsConfig {
        cert: cert.clone(),
        key,
    };
    let server = start_server(|c| c.server.tls = Some(tls)).await;
    let url = format!("https://{}", server.grpc_addr);

    // A player over gRPC with TLS: register, log in, start, play.
    let channel = tls_channel(&url, &cert).await.expect("TLS channel");
    let mut auth = AuthServiceClient::new(channel.clone());
    auth.register(dgate_proto::auth::RegisterRequest {
        username: "tess".into(),
        password: password_of("tess").into(),
        email: String::new(),
    })
    .await
    .expect("register over TLS");
    let token = auth
        .login(dgate_proto::auth::LoginRequest {
            username: "tess".into(),
            password: password_of("tess").into(),
        })
        .await
        .expect("log in over TLS")
        .into_inner()
        .token;
    let mut client = GameServiceClient::new(channel);
    let session = client
        .start_game_session(authed(
            pb::StartGameSessionRequest {
                game_id: "test".into(),
                ..Default::default()
            },
            &token,
        ))
        .await
        .expect("start a game over TLS")
        .into_inner()
        .session
        .expect("a session");
    let game = Game { session, token };
    let mut player = Viewer::player(&mut client, &game).await.expect("player");
    player.ready().await;
    player.send(b"fft").await;
    player.wait_for_text("keys: fft").await.expect("frames");
    let last = server.hub(&game.id).last_frame_id().get();
    player.wait_for_frame(last).await.expect("all frames");

    // The `dgate` binary, trusting the certificate by flag or by environment.
    let home = tempfile::tempdir().expect("home");
    let dgate = |args: &[&str], env_ca: bool| {
        let mut command = Command::new(workspace_binary("dgate"));
        command
            .args(["--server", &url])
            .args(args)
            .env_remove("DGATE_CA_CERT")
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .env("XDG_STATE_HOME", home.path().join("state"));
        if env_ca {
            command.env("DGATE_CA_CERT", &cert);
        }
        command.output().expect("run dgate")
    };
    let ca_flag = cert.to_str().expect("UTF-8 path");
    let listed = dgate(&["--ca-cert", ca_flag, "list"], false);
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(
        stdout.contains(&game.id) && stdout.contains("tess"),
        "{stdout}"
    );
    let games = dgate(&["games"], true);
    assert!(
        games.status.success() && String::from_utf8_lossy(&games.stdout).contains("test"),
        "{}",
        String::from_utf8_lossy(&games.stderr)
    );

    // Not trusting it: one clear line, exit 1.
    let refused = dgate(&["list"], false);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("does not trust") && stderr.contains("--ca-cert"),
        "{stderr}"
    );

    // Chromium over HTTPS: the page and its WSS socket show the player's screen.
    let watch = format!("https://{}/watch/{}", server.http_addr, game.id);
    let at_last = format!("data-frame=\"{last}\"");
    let dom = tokio::task::spawn_blocking(move || {
        chromium_dom_until_with(&watch, &["--ignore-certificate-errors"], |dom| {
            dom.contains(&at_last)
        })
    })
    .await
    .expect("chromium runs");
    assert!(dom.contains(&format!("data-frame=\"{last}\"")), "{dom}");
    assert_eq!(terminal_rows(&dom), player.rows());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_clients_get_nothing_from_a_tls_server() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = self_signed(certs.path());
    let tls = TlsConfig { cert, key };
    let server = start_server(|c| c.server.tls = Some(tls)).await;

    // gRPC in plaintext: refused, and the `dgate` binary says to use https://.
    let plain = format!("http://{}", server.grpc_addr);
    let mut client = GameServiceClient::connect(plain.clone())
        .await
        .expect("TCP connects");
    let listed = client.list_games(pb::ListGamesRequest::default()).await;
    assert!(
        listed.is_err(),
        "a plaintext gRPC call is answered: {listed:?}"
    );
    let out = Command::new(workspace_binary("dgate"))
        .args(["--server", &plain, "list"])
        .env_remove("DGATE_CA_CERT")
        .env("XDG_CONFIG_HOME", certs.path().join("config"))
        .output()
        .expect("run dgate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("https://"), "{stderr}");

    // HTTP in plaintext: not one byte of an HTTP answer.
    let mut socket = std::net::TcpStream::connect(server.http_addr).expect("connect");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    socket
        .write_all(b"GET /sessions HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    assert!(
        !String::from_utf8_lossy(&answer).contains("HTTP/1.1"),
        "a plaintext request was answered: {:?}",
        String::from_utf8_lossy(&answer)
    );
    assert!(
        !String::from_utf8_lossy(&answer).contains("sessions"),
        "{answer:?}"
    );

    // The server is unharmed: a client that trusts it is served.
    let trusted = tls_channel(
        &format!("https://{}", server.grpc_addr),
        &certs.path().join("cert.pem"),
    )
    .await
    .expect("TLS channel");
    GameServiceClient::new(trusted)
        .list_games(pb::ListGamesRequest::default())
        .await
        .expect("served over TLS");
    server.shutdown().await;
}
