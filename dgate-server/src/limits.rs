//! Connections per address: every gRPC and SSH connection from one IP counts
//! against `server.max_connections_per_address`, so that one host cannot
//! take all of a public server's sockets.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::{Stream, StreamExt, wrappers::TcpListenerStream};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::warn;

#[derive(Debug, Clone)]
pub struct AddressLimiter {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One open connection's slot; dropping it frees the slot.
#[derive(Debug)]
pub struct AddressSlot {
    limiter: AddressLimiter,
    ip: IpAddr,
}

impl AddressLimiter {
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A slot for a connection from `ip`, or `None` when it has `max` open.
    pub fn admit(&self, ip: IpAddr) -> Option<AddressSlot> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            limiter: self.clone(),
            ip,
        })
    }

    pub fn max(&self) -> usize {
        self.max
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// A TCP connection holding its address's slot until it closes.
#[derive(Debug)]
pub struct LimitedStream {
    inner: TcpStream,
    _slot: AddressSlot,
}

/// The listener's connections, those over their address's limit closed at once.
pub fn incoming(
    listener: TcpListener,
    limiter: AddressLimiter,
) -> impl Stream<Item = io::Result<LimitedStream>> {
    TcpListenerStream::new(listener).filter_map(move |accepted| match accepted {
        Ok(stream) => {
            // Frames are small and must go out at once: no Nagle delay.
            let _ = stream.set_nodelay(true);
            let ip = stream.peer_addr().ok()?.ip();
            match limiter.admit(ip) {
                Some(slot) => Some(Ok(LimitedStream {
                    inner: stream,
                    _slot: slot,
                })),
                None => {
                    warn!(%ip, max = limiter.max(), "gRPC connection refused: too many from this address");
                    None
                }
            }
        }
        Err(e) => Some(Err(e)),
    })
}

impl Connected for LimitedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.inner.connect_info()
    }
}

impl AsyncRead for LimitedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for LimitedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_limit_and_its_slots_back() {
        let limiter = AddressLimiter::new(2);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        let a = limiter.admit(ip).expect("first");
        let _b = limiter.admit(ip).expect("second");
        assert!(limiter.admit(ip).is_none(), "third refused");
        assert!(
            limiter.admit(other).is_some(),
            "other addresses are not affected"
        );
        drop(a);
        assert!(
            limiter.admit(ip).is_some(),
            "a closed connection frees its slot"
        );
    }
}
