//! The byte streams MQTT travels over: a TCP stream, plain or in TLS, or the binary
//! messages of a WebSocket over either (§6: several MQTT packets may share a message and one
//! packet may span several).

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::server::TlsStream;

use crate::outbox::Outgoing;
use crate::websocket;

/// An accepted connection: plain TCP, or TLS over TCP once the TLS handshake is done.
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// What an MQTT-over-TCP connection reads at once: 4 KiB, or 32 KiB while the last read
/// filled all it asked for (a burst: one read then carries many messages, and its wake-up
/// and the subscribers' writes are shared by them). Not 32 KiB always: every message's
/// payload keeps the buffer it was read into alive, and a message read on its own would
/// then hold 32 KiB in each queue it waits in.
const READ_CHUNK: usize = 4 * 1024;
const BURST_CHUNK: usize = 32 * 1024;

/// Reads up to `chunk` bytes more of what `tcp` has into `buf`, taking memory for them only
/// once there is something to read (so an idle connection holds no buffer). Through tokio's
/// own `poll_read`, which takes a short read to mean the socket is drained: no read that
/// finds nothing follows every read.
pub(crate) fn read_when_ready<T>(
    tcp: &mut T,
    buf: &mut BytesMut,
    chunk: usize,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>>
where
    T: AsyncRead + AsRef<TcpStream> + Unpin,
{
    let read = match tcp.as_ref().poll_read_ready(cx)? {
        Poll::Pending => Poll::Pending,
        Poll::Ready(()) => {
            buf.reserve(chunk);
            std::pin::pin!(tcp.read_buf(buf)).poll(cx)
        }
    };
    if read.is_pending() && buf.is_empty() {
        // Nothing to read and nothing kept (readiness can also be stale: tokio keeps it
        // until a read would block): the connection waits without a buffer.
        *buf = BytesMut::new();
    }
    read
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The receiving half of a connection.
pub(crate) enum Reader {
    /// With whether the last read filled what it asked for (see [`BURST_CHUNK`]).
    Tcp(OwnedReadHalf, bool),
    Tls(ReadHalf<Stream>),
    /// Boxed: tungstenite's state would make every connection's task larger.
    Ws(Box<websocket::Reader>),
}

/// The sending half of a connection.
pub(crate) enum Writer {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<Stream>),
    Ws(websocket::Writer),
    /// None while the connection is parked (`crate::park`): its socket waits elsewhere.
    Detached,
}

/// Splits a stream into its halves (a plain TCP one without a lock between them).
pub(crate) fn stream(stream: Stream) -> (Reader, Writer) {
    match stream {
        Stream::Tcp(tcp) => {
            let (r, w) = tcp.into_split();
            (Reader::Tcp(r, false), Writer::Tcp(w))
        }
        other => {
            let (r, w) = tokio::io::split(other);
            (Reader::Tls(r), Writer::Tls(w))
        }
    }
}

impl Reader {
    /// Appends what arrives to `buf`: `Some(n)` for `n` bytes appended, 0 when only a
    /// WebSocket control frame came, whose answer is waiting for the writer
    /// ([`Writer::has_control`]); `None` when the peer closed. Cancel-safe.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<Option<usize>> {
        let n = match self {
            // Waits for data before taking memory for it, and reads without blocking: an idle
            // client holds no read buffer (the connection lets an empty one go).
            Reader::Tcp(r, burst) => {
                let chunk = if *burst { BURST_CHUNK } else { READ_CHUNK };
                let n = std::future::poll_fn(|cx| read_when_ready(r, buf, chunk, cx)).await?;
                *burst = n >= chunk;
                n
            }
            Reader::Tls(r) => {
                buf.reserve(4096);
                r.read_buf(buf).await?
            }
            Reader::Ws(r) => return r.read(buf).await,
        };
        Ok((n > 0).then_some(n))
    }
}

impl Writer {
    /// Sends `outgoing` (one or more whole packets) and flushes: one vectored write of
    /// its pieces where the transport takes one.
    pub(crate) async fn write(&mut self, outgoing: &Outgoing) -> io::Result<()> {
        match self {
            Writer::Tcp(w) if outgoing.chunks.is_empty() => w.write_all(&outgoing.last).await,
            Writer::Tcp(w) => write_pieces(w, outgoing.io_slices()).await,
            Writer::Tls(w) => {
                write_pieces(w, outgoing.io_slices()).await?;
                w.flush().await
            }
            Writer::Ws(w) => w.write(outgoing).await,
            Writer::Detached => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Whether something waits to be sent though the connection has nothing to send: a
    /// WebSocket control frame (a pong, the reply to a Close).
    pub(crate) fn has_control(&self) -> bool {
        matches!(self, Writer::Ws(w) if w.has_control())
    }

    /// Closes the sending side.
    pub(crate) async fn close(&mut self) {
        // The peer may already be gone; there is nothing to do about a failed close.
        let _ = match self {
            Writer::Tcp(w) => w.shutdown().await,
            Writer::Tls(w) => w.shutdown().await,
            Writer::Ws(w) => {
                w.close().await;
                Ok(())
            }
            Writer::Detached => Ok(()),
        };
    }
}

/// How many pieces one vectored write takes at most (Linux takes up to 1,024).
const MAX_PIECES: usize = 64;

/// Writes `pieces` in order, as few system calls as the stream allows: one `writev` each
/// for up to [`MAX_PIECES`] of them where it takes vectored writes (TCP), one write per
/// piece where it does not (TLS).
pub(crate) async fn write_pieces<W>(w: &mut W, mut pieces: Vec<IoSlice<'_>>) -> io::Result<()>
where
    W: AsyncWrite + Unpin + ?Sized,
{
    pieces.retain(|p| !p.is_empty());
    if let [one] = pieces[..] {
        return w.write_all(&one).await;
    }
    let mut rest = &mut pieces[..];
    while !rest.is_empty() {
        let batch = rest.get(..MAX_PIECES).unwrap_or(rest);
        let written = w.write_vectored(batch).await?;
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, written);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer that takes at most `step` bytes a call, in pieces or not.
    struct Trickle {
        written: Vec<u8>,
        step: usize,
        calls: usize,
    }

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }

        fn poll_write_vectored(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            self.calls += 1;
            let mut room = self.step;
            for buf in bufs {
                let n = buf.len().min(room);
                self.written.extend_from_slice(&buf[..n]);
                room -= n;
            }
            Poll::Ready(Ok(self.step - room))
        }

        fn is_write_vectored(&self) -> bool {
            true
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn pieces_are_written_whole_and_in_order_whatever_each_call_takes() {
        let pieces: Vec<Vec<u8>> = (0..200u8).map(|i| vec![i; usize::from(i % 7)]).collect();
        let expected = pieces.concat();
        for step in [1, 3, 5, 64, 10_000] {
            let mut w = Trickle {
                written: Vec::new(),
                step,
                calls: 0,
            };
            write_pieces(&mut w, pieces.iter().map(|p| IoSlice::new(p)).collect())
                .await
                .unwrap();
            assert_eq!(w.written, expected, "step {step}");
            if step == 10_000 {
                // 171 pieces that are not empty: three vectored writes.
                assert_eq!(w.calls, 3);
            }
        }
    }
}
