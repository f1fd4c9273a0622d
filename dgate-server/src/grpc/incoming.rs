//! The gRPC listener's connections, each holding its address's slot in the
//! per-address connection limit until it closes (tonic's `Connected`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_stream::wrappers::TcpListenerStream;
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::warn;

use crate::limits::{AddressLimiter, AddressSlot};

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
