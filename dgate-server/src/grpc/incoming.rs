//! The gRPC listener's connections, each holding its address's slot in the
//! per-address connection limit until it closes (tonic's `Connected`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tokio::net::TcpStream;
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::warn;

use crate::limits::{AddressLimiter, AddressSlot, LogOnce};
use crate::metrics::{Metrics, Refusal};
use crate::proxy_protocol::Acceptor;

/// A TCP connection holding its address's slot until it closes.
#[derive(Debug)]
pub struct LimitedStream {
    inner: TcpStream,
    _slot: AddressSlot,
}

/// The listener's connections, those over their address's limit (the
/// client's, behind a trusted proxy) closed at once. Accept errors (out of file descriptors) are waited out, never
/// passed on.
pub fn incoming(
    mut listener: Acceptor,
    limiter: AddressLimiter,
    metrics: Arc<Metrics>,
) -> impl Stream<Item = io::Result<LimitedStream>> {
    let refusals_logged = LogOnce::default();
    async_stream::stream! {
        loop {
            let (stream, peer) = listener.accept().await;
            // Frames are small and must go out at once: no Nagle delay.
            let _ = stream.set_nodelay(true);
            match limiter.admit(peer.ip()) {
                Some(slot) => yield Ok(LimitedStream { inner: stream, _slot: slot }),
                None => {
                    metrics.refused(Refusal::ConnectionsPerAddress);
                    if refusals_logged.should_log(peer.ip()) {
                        warn!(%peer, max = limiter.max(), "gRPC connection refused: too many from this address");
                    }
                }
            }
        }
    }
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
