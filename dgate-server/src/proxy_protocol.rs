//! HAProxy's PROXY protocol (v1 text, v2 binary) on every listener: a
//! connection from one of `server.trusted_proxies` that starts with a PROXY
//! header speaks for the client the header names, so per-address limits,
//! logs and refusals apply to that client, not to the proxy. A trusted
//! proxy may also send no header (its own address is then the client's);
//! anyone else's header is never read, so it is just bytes the protocol
//! behind the listener rejects. Parsing is the `ppp` crate's.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use ppp::{HeaderResult, PartialResult};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::debug;

use crate::limits::{Trusted, accept};

const V1_SIGNATURE: &[u8] = b"PROXY ";
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest header read: v1 is at most 107 bytes; v2 with the TLVs
/// proxies commonly add stays well under this.
const MAX_HEADER: usize = 1024;
/// How long a proxy's connection may stay silent before it is taken to have
/// no header (an SSH client may wait for the server's version line first).
const FIRST_BYTE: Duration = Duration::from_secs(2);
/// How long a header that has begun may take to arrive whole.
const WHOLE_HEADER: Duration = Duration::from_secs(5);

/// A listener whose connections come with their client's address: the
/// peer's, or the one a trusted proxy's PROXY header names. Headers are read
/// off the accept loop, so a slow proxy connection never holds up others.
pub struct Acceptor {
    listener: TcpListener,
    what: &'static str,
    proxies: Trusted,
    ready_tx: mpsc::Sender<(TcpStream, SocketAddr)>,
    ready_rx: mpsc::Receiver<(TcpStream, SocketAddr)>,
}

impl Acceptor {
    /// `what` names the listener in logs ("SSH").
    pub fn new(listener: TcpListener, what: &'static str, proxies: Trusted) -> Self {
        let (ready_tx, ready_rx) = mpsc::channel(64);
        Self {
            listener,
            what,
            proxies,
            ready_tx,
            ready_rx,
        }
    }

    /// The next connection and its client. Cancel-safe: a connection
    /// accepted or read is kept for the next call.
    pub async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            tokio::select! {
                (stream, peer) = accept(&self.listener, self.what) => {
                    if !self.proxies.contains(peer.ip()) {
                        return (stream, peer);
                    }
                    let ready = self.ready_tx.clone();
                    let what = self.what;
                    tokio::spawn(async move {
                        let mut stream = stream;
                        match client_of(&mut stream, peer).await {
                            Ok(client) => {
                                let _ = ready.send((stream, client)).await;
                            }
                            Err(e) => debug!(%peer, listener = what, error = %e,
                                             "bad PROXY header from a trusted proxy; closed"),
                        }
                    });
                }
                Some(ready) = self.ready_rx.recv() => return ready,
            }
        }
    }
}

/// The client a trusted proxy's connection speaks for, its PROXY header (if
/// it starts with one) consumed.
async fn client_of(stream: &mut TcpStream, peer: SocketAddr) -> io::Result<SocketAddr> {
    let mut buf = vec![0u8; MAX_HEADER];
    let Ok(first) = tokio::time::timeout(FIRST_BYTE, stream.peek(&mut buf)).await else {
        return Ok(peer);
    };
    if first? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    tokio::time::timeout(WHOLE_HEADER, async {
        loop {
            let n = stream.peek(&mut buf).await?;
            match parse(&buf[..n])? {
                Parsed::NotProxy => return Ok(peer),
                Parsed::Incomplete if n == buf.len() => {
                    return Err(invalid("longer than 1024 bytes"));
                }
                Parsed::Incomplete => tokio::time::sleep(Duration::from_millis(5)).await,
                Parsed::Header { length, client } => {
                    let mut header = vec![0u8; length];
                    stream.read_exact(&mut header).await?;
                    return Ok(client.unwrap_or(peer));
                }
            }
        }
    })
    .await
    .map_err(|_| invalid("not whole in time"))?
}

#[derive(Debug, PartialEq)]
enum Parsed {
    /// The bytes are not a PROXY header's beginning.
    NotProxy,
    Incomplete,
    /// `length` bytes of header; `client` is `None` for `UNKNOWN`/`LOCAL`
    /// (the proxy's own connection, such as a health check).
    Header {
        length: usize,
        client: Option<SocketAddr>,
    },
}

fn parse(bytes: &[u8]) -> io::Result<Parsed> {
    let begins = |signature: &[u8]| {
        let n = bytes.len().min(signature.len());
        bytes[..n] == signature[..n]
    };
    if !begins(V1_SIGNATURE) && !begins(V2_SIGNATURE) {
        return Ok(Parsed::NotProxy);
    }
    let header = HeaderResult::parse(bytes);
    if header.is_incomplete() {
        return Ok(Parsed::Incomplete);
    }
    match header {
        HeaderResult::V1(Ok(header)) => {
            let client = match header.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            };
            Ok(Parsed::Header {
                length: header.header.len(),
                client,
            })
        }
        HeaderResult::V2(Ok(header)) => {
            let client = match (header.command, header.addresses) {
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                _ => None,
            };
            Ok(Parsed::Header {
                length: header.len(),
                client,
            })
        }
        HeaderResult::V1(Err(e)) => Err(invalid(&e.to_string())),
        HeaderResult::V2(Err(e)) => Err(invalid(&e.to_string())),
    }
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("PROXY header: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_and_v2_headers_name_the_client_and_their_length() {
        let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 2222\r\nSSH-2.0-x\r\n";
        assert_eq!(
            parse(v1).expect("valid"),
            Parsed::Header {
                length: 44,
                client: Some("203.0.113.7:5555".parse().expect("address")),
            }
        );
        let mut v2 = V2_SIGNATURE.to_vec();
        v2.extend([
            0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0, 80,
        ]);
        v2.extend(b"PRI * HTTP/2.0");
        assert_eq!(
            parse(&v2).expect("valid"),
            Parsed::Header {
                length: 28,
                client: Some("198.51.100.9:8080".parse().expect("address")),
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n").expect("valid"),
            Parsed::Header {
                length: 15,
                client: None
            }
        );
    }

    #[test]
    fn other_protocols_partial_headers_and_garbage_are_told_apart() {
        assert_eq!(
            parse(b"SSH-2.0-OpenSSH\r\n").expect("ssh"),
            Parsed::NotProxy
        );
        assert_eq!(parse(b"\x16\x03\x01").expect("tls"), Parsed::NotProxy);
        assert_eq!(parse(b"GET / HTTP/1.1").expect("http"), Parsed::NotProxy);
        assert_eq!(
            parse(b"PROXY TCP4 1.2").expect("partial"),
            Parsed::Incomplete
        );
        assert_eq!(parse(b"\r\n\r\n\0").expect("partial"), Parsed::Incomplete);
        assert!(parse(b"PROXY TCP4 banana 1.2.3.4 1 2\r\n").is_err());
    }
}
