//! A TCP stream the server can cut. russh runs each session on a task of its
//! own that reads until the client closes; a client that never closes (after
//! the login grace time, after its channel ended) would keep that task, its
//! socket and its places forever. Once `kill` is cancelled, every read and
//! write of a [`Closable`] fails, so the session task ends.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

pub struct Closable {
    inner: TcpStream,
    killed: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl Closable {
    pub fn new(inner: TcpStream, kill: &CancellationToken) -> Self {
        Self {
            inner,
            killed: Box::pin(kill.clone().cancelled_owned()),
        }
    }

    /// `Some(error)` once killed (and the waker registered otherwise).
    fn killed(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        match self.killed.as_mut().poll(cx) {
            Poll::Ready(()) => Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed by the server",
            )),
            Poll::Pending => None,
        }
    }
}

impl AsyncRead for Closable {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(e) = self.killed(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Closable {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.killed(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
