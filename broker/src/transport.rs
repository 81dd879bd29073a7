//! The byte streams MQTT travels over: a TCP stream, plain or in TLS, or the binary
//! messages of a WebSocket over either (§6: several MQTT packets may share a message and one
//! packet may span several).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// An accepted connection: plain TCP, or TLS over TCP once the TLS handshake is done; under
/// a WebSocket, plain TCP is read through a [`ReadAhead`].
pub(crate) enum Stream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    ReadAhead(ReadAhead),
}

impl Stream {
    /// The stream a WebSocket runs over: see [`ReadAhead`].
    pub(crate) fn for_websocket(self) -> Stream {
        match self {
            Stream::Tcp(tcp) => Stream::ReadAhead(ReadAhead {
                tcp,
                buf: BytesMut::new(),
            }),
            other => other,
        }
    }
}

/// A TCP stream read in chunks of up to [`READ_AHEAD`] into a buffer that exists only while
/// it holds data. tungstenite keeps a read buffer of its own for the connection's lifetime
/// and reads at most its size from the socket at once: 4 KiB of an idle WebSocket client's
/// 8. With this below it, tungstenite's buffer stays small and its small reads are copies
/// from here, not system calls.
pub(crate) struct ReadAhead {
    tcp: TcpStream,
    buf: BytesMut,
}

const READ_AHEAD: usize = 16 * 1024;

/// What an MQTT-over-TCP connection reads at once: 4 KiB, or 32 KiB while the last read
/// filled all it asked for (a burst: one read then carries many messages, and its wake-up
/// and the subscribers' writes are shared by them). Not 32 KiB always: every message's
/// payload keeps the buffer it was read into alive, and a message read on its own would
/// then hold 32 KiB in each queue it waits in.
const READ_CHUNK: usize = 4 * 1024;
const BURST_CHUNK: usize = 32 * 1024;

impl ReadAhead {
    fn poll_read(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            let read = std::task::ready!(read_when_ready(
                &mut self.tcp,
                &mut self.buf,
                READ_AHEAD,
                cx
            ))?;
            if read == 0 {
                return Poll::Ready(Ok(()));
            }
        }
        let n = out.remaining().min(self.buf.len());
        out.put_slice(&self.buf.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// Reads up to `chunk` bytes more of what `tcp` has into `buf`, taking memory for them only
/// once there is something to read (so an idle connection holds no buffer). Through tokio's
/// own `poll_read`, which takes a short read to mean the socket is drained: no read that
/// finds nothing follows every read.
fn read_when_ready<T>(
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
            Stream::ReadAhead(s) => s.poll_read(cx, buf),
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
            Stream::ReadAhead(s) => Pin::new(&mut s.tcp).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::ReadAhead(s) => Pin::new(&mut s.tcp).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::ReadAhead(s) => Pin::new(&mut s.tcp).poll_shutdown(cx),
        }
    }
}

type Ws = WebSocketStream<Stream>;

/// The receiving half of a connection.
pub(crate) enum Reader {
    /// With whether the last read filled what it asked for (see [`BURST_CHUNK`]).
    Tcp(OwnedReadHalf, bool),
    Tls(ReadHalf<Stream>),
    Ws(SplitStream<Ws>),
}

/// The sending half of a connection.
pub(crate) enum Writer {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<Stream>),
    Ws(SplitSink<Ws, Message>),
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

/// Splits a WebSocket into its halves.
pub(crate) fn ws(stream: Ws) -> (Reader, Writer) {
    let (w, r) = stream.split();
    (Reader::Ws(r), Writer::Ws(w))
}

impl Reader {
    /// Appends what arrives to `buf`; `Ok(0)` when the peer closed. Cancel-safe.
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            // Waits for data before taking memory for it, and reads without blocking: an idle
            // client holds no read buffer (the connection lets an empty one go).
            Reader::Tcp(r, burst) => {
                let chunk = if *burst { BURST_CHUNK } else { READ_CHUNK };
                let n = std::future::poll_fn(|cx| read_when_ready(r, buf, chunk, cx)).await?;
                *burst = n >= chunk;
                Ok(n)
            }
            Reader::Tls(r) => {
                buf.reserve(4096);
                r.read_buf(buf).await
            }
            Reader::Ws(r) => loop {
                match r.next().await {
                    Some(Ok(Message::Binary(data))) => {
                        if data.is_empty() {
                            continue;
                        }
                        buf.extend_from_slice(&data);
                        return Ok(data.len());
                    }
                    // MQTT over WebSocket is binary only [MQTT-6.0.0-1].
                    Some(Ok(Message::Text(_))) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "text WebSocket message: MQTT uses binary messages",
                        ));
                    }
                    Some(Ok(Message::Close(_))) | None => return Ok(0),
                    Some(Ok(_)) => {} // ping, pong: answered by the WebSocket layer
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            },
        }
    }
}

impl Writer {
    /// Sends `bytes` (one or more whole packets) and flushes.
    pub(crate) async fn write(&mut self, bytes: Bytes) -> io::Result<()> {
        match self {
            Writer::Tcp(w) => w.write_all(&bytes).await,
            Writer::Tls(w) => {
                w.write_all(&bytes).await?;
                w.flush().await
            }
            Writer::Ws(w) => w
                .send(Message::Binary(bytes))
                .await
                .map_err(io::Error::other),
        }
    }

    /// Closes the sending side.
    pub(crate) async fn close(&mut self) {
        // The peer may already be gone; there is nothing to do about a failed close.
        let _ = match self {
            Writer::Tcp(w) => w.shutdown().await,
            Writer::Tls(w) => w.shutdown().await,
            Writer::Ws(w) => w.close().await.map_err(io::Error::other),
        };
    }
}
