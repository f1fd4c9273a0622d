//! An in-process SSH client (russh) with a terminal of its own: what the
//! server sends goes through a screen model, so tests read the screen a user
//! would see.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dgate_term::{ScreenModel, TermSize};
use russh::client;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};
use russh::{ChannelMsg, client::Msg};

use super::WAIT;

pub struct AcceptAnyHostKey;

impl client::Handler for AcceptAnyHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        _key: &russh::keys::PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// How a test logs in.
pub enum Login<'a> {
    /// No password: anonymous, unless the name is an account's.
    None,
    Password(&'a str),
    Key(&'a PrivateKey),
}

pub struct SshTerminal {
    _handle: client::Handle<AcceptAnyHostKey>,
    channel: russh::Channel<Msg>,
    pub screen: ScreenModel,
    /// Everything received, for tests that look at raw bytes.
    pub received: Vec<u8>,
    pub closed: bool,
}

impl SshTerminal {
    /// Connects as `user`, logs in, and opens a shell on a `cols`x`rows` pty.
    /// `Err` says why authentication failed.
    pub async fn connect(
        addr: SocketAddr,
        user: &str,
        login: Login<'_>,
        size: (u16, u16),
    ) -> Result<Self, String> {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let pty = (size.0.into(), size.1.into());
        Self::connect_with(client::Config::default(), stream, user, login, pty, size).await
    }

    /// A stranger's connection from `source` (127.0.0.2 and up) that asks
    /// for a `pty` of any size; the test's own screen is `screen`.
    pub async fn connect_from(
        source: std::net::IpAddr,
        addr: SocketAddr,
        user: &str,
        login: Login<'_>,
        pty: (u32, u32),
        screen: (u16, u16),
    ) -> Result<Self, String> {
        let stream = super::tcp_from(source, addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        Self::connect_with(client::Config::default(), stream, user, login, pty, screen).await
    }

    /// A client that buffers little: when the test stops reading, the server
    /// soon cannot send either.
    pub async fn connect_small_window(
        addr: SocketAddr,
        user: &str,
        size: (u16, u16),
    ) -> Result<Self, String> {
        let config = client::Config {
            window_size: 16 * 1024,
            channel_buffer_size: 4,
            ..Default::default()
        };
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let pty = (size.0.into(), size.1.into());
        Self::connect_with(config, stream, user, Login::None, pty, size).await
    }

    async fn connect_with(
        config: client::Config,
        stream: tokio::net::TcpStream,
        user: &str,
        login: Login<'_>,
        (pty_cols, pty_rows): (u32, u32),
        (cols, rows): (u16, u16),
    ) -> Result<Self, String> {
        let config = Arc::new(config);
        let mut handle = client::connect_stream(config, stream, AcceptAnyHostKey)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let result = match login {
            Login::None => handle.authenticate_none(user).await,
            Login::Password(password) => handle.authenticate_password(user, password).await,
            Login::Key(key) => {
                let key = PrivateKeyWithHashAlg::new(Arc::new(key.clone()), None);
                handle.authenticate_publickey(user, key).await
            }
        }
        .map_err(|e| format!("authenticate: {e}"))?;
        if !result.success() {
            return Err(format!("authentication refused: {result:?}"));
        }
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| format!("open a session: {e}"))?;
        channel
            .request_pty(true, "xterm-256color", pty_cols, pty_rows, 0, 0, &[])
            .await
            .map_err(|e| format!("pty: {e}"))?;
        channel
            .request_shell(true)
            .await
            .map_err(|e| format!("shell: {e}"))?;
        Ok(Self {
            _handle: handle,
            channel,
            screen: ScreenModel::new(TermSize::new(cols, rows)),
            received: Vec::new(),
            closed: false,
        })
    }

    pub async fn send(&self, bytes: &[u8]) {
        self.channel
            .data(bytes)
            .await
            .expect("send to the SSH server");
    }

    pub async fn resize(&mut self, cols: u16, rows: u16) {
        self.screen.resize(TermSize::new(cols, rows));
        self.channel
            .window_change(cols.into(), rows.into(), 0, 0)
            .await
            .expect("window change");
    }

    pub fn contents(&self) -> String {
        self.screen.screen().contents()
    }

    /// The screen's first `rows` rows, `cols` wide, trailing blanks removed.
    pub fn rows(&self, cols: u16, rows: u16) -> Vec<String> {
        self.screen
            .screen()
            .rows(0, cols)
            .take(usize::from(rows))
            .map(|r| r.trim_end().to_owned())
            .collect()
    }

    /// Reads output for at most `limit`; false when the connection closed.
    async fn read_for(&mut self, limit: Duration) -> bool {
        match tokio::time::timeout(limit, self.channel.wait()).await {
            Err(_) => true,
            Ok(Some(ChannelMsg::Data { data })) => {
                self.received.extend_from_slice(&data);
                self.screen.process(&data);
                true
            }
            Ok(Some(ChannelMsg::Eof | ChannelMsg::Close)) | Ok(None) => {
                self.closed = true;
                false
            }
            Ok(Some(_)) => true,
        }
    }

    /// Reads until the screen satisfies `done`; panics with the screen after [`WAIT`].
    pub async fn wait_until(&mut self, what: &str, mut done: impl FnMut(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !done(self) {
            if tokio::time::Instant::now() > deadline || (self.closed && !done(self)) {
                panic!(
                    "gave up waiting for {what} (closed: {}); the screen is:\n{}",
                    self.closed,
                    self.contents()
                );
            }
            self.read_for(Duration::from_millis(100)).await;
        }
    }

    pub async fn wait_for(&mut self, text: &str) {
        self.wait_until(&format!("{text:?}"), |t| t.contents().contains(text))
            .await;
    }

    /// Waits for the server to close the connection.
    pub async fn wait_closed(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while !self.closed {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the connection stayed open; the screen is:\n{}",
                self.contents()
            );
            self.read_for(Duration::from_millis(100)).await;
        }
    }
}
