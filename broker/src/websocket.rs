//! MQTT over WebSocket (§6), once the HTTP upgrade is done: tungstenite reads the client's
//! frames (unmasking, fragments, pings, the closing handshake), and the broker writes its
//! own binary frames. A server's frames are not masked (RFC 6455 §5.1), so a frame is a
//! header of 2 to 10 bytes before the packets, written with them in one vectored write,
//! straight from their buffers: no copy of each message into a frame first.
//!
//! What tungstenite itself sends (pongs, the reply to a Close) it writes into [`Control`],
//! which the writer sends before its next frame, so the two never interleave within a
//! frame. That needs one thing of the connection: it never reads while a write of its own
//! is unfinished, which holds since both halves are driven by the connection's one task
//! and a write is always awaited to its end.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{BufMut, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf, ReadHalf, WriteHalf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::outbox::Outgoing;
use crate::transport::{self, Stream};

/// The opcode byte of a final binary frame (FIN and opcode 2).
const BINARY: u8 = 0x82;
/// Frames up to this size whose packets are all in one buffer are copied into one with
/// their header: a plain write of one buffer costs less than a vectored write of two.
const JOIN_MAX: usize = 2048;
/// A Close frame without a status code, as tungstenite sends when closing.
const CLOSE: [u8; 2] = [0x88, 0x00];

/// What tungstenite has written and the broker's writer has not yet sent: whole control
/// frames, in order.
#[derive(Default)]
struct Control {
    frames: BytesMut,
    /// A Close frame is among them or was sent: no frame may follow it.
    closed: bool,
}

type SharedControl = Arc<Mutex<Control>>;

fn lock(control: &SharedControl) -> MutexGuard<'_, Control> {
    control
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Switches an upgraded HTTP connection to WebSocket: `rest` is what the client sent after
/// its upgrade request. The halves of the connection.
pub(crate) async fn start(
    stream: Stream,
    rest: BytesMut,
    config: WebSocketConfig,
) -> (transport::Reader, transport::Writer) {
    let control = SharedControl::default();
    let (read, write) = match stream {
        Stream::Tcp(tcp) => {
            let (r, w) = tcp.into_split();
            (Read::Tcp(ReadAhead::new(r)), Write::Tcp(w))
        }
        tls => {
            let (r, w) = tokio::io::split(tls);
            (Read::Tls(r), Write::Tls(w))
        }
    };
    let io = Io {
        read,
        control: control.clone(),
    };
    let ws =
        WebSocketStream::from_partially_read(io, rest.to_vec(), Role::Server, Some(config)).await;
    (
        transport::Reader::Ws(Box::new(Reader { ws })),
        transport::Writer::Ws(Writer { write, control }),
    )
}

/// The receiving half: the client's frames, through tungstenite.
pub(crate) struct Reader {
    ws: WebSocketStream<Io>,
}

impl Reader {
    /// As [`transport::Reader::read`].
    pub(crate) async fn read(&mut self, buf: &mut BytesMut) -> io::Result<Option<usize>> {
        loop {
            match self.ws.next().await {
                Some(Ok(Message::Binary(data))) => {
                    if data.is_empty() {
                        continue;
                    }
                    buf.extend_from_slice(&data);
                    return Ok(Some(data.len()));
                }
                // MQTT over WebSocket is binary only [MQTT-6.0.0-1].
                Some(Ok(Message::Text(_))) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text WebSocket message: MQTT uses binary messages",
                    ));
                }
                Some(Ok(Message::Ping(_))) => {
                    // tungstenite has its pong ready: into `Control` now, for the writer.
                    self.ws.flush().await.map_err(io::Error::other)?;
                    return Ok(Some(0));
                }
                Some(Ok(Message::Close(_))) | None => {
                    // The reply to the client's Close, likewise (an error only says the
                    // connection is closed now).
                    let _ = self.ws.flush().await;
                    lock(&self.ws.get_ref().control).closed = true;
                    return Ok(None);
                }
                Some(Ok(_)) => {} // a pong, or a raw frame (never returned when reading)
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
    }
}

/// The sending half: the broker's frames, and tungstenite's control frames between them.
pub(crate) struct Writer {
    write: Write,
    control: SharedControl,
}

enum Write {
    Tcp(OwnedWriteHalf),
    Tls(WriteHalf<Stream>),
}

impl Write {
    fn io(&mut self) -> &mut (dyn AsyncWrite + Send + Unpin) {
        match self {
            Write::Tcp(w) => w,
            Write::Tls(w) => w,
        }
    }
}

impl Writer {
    /// Whether control frames wait to be sent.
    pub(crate) fn has_control(&self) -> bool {
        !lock(&self.control).frames.is_empty()
    }

    /// Sends the waiting control frames, then `outgoing` (if not empty) as one binary frame.
    pub(crate) async fn write(&mut self, outgoing: &Outgoing) -> io::Result<()> {
        let len = outgoing.len();
        let control = {
            let mut control = lock(&self.control);
            if control.closed && len > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the WebSocket is closing: no frame may follow a Close",
                ));
            }
            // Taken whole, capacity and all: control frames are rare.
            std::mem::take(&mut control.frames).freeze()
        };
        let mut header = [0; 10];
        let header = if len > 0 {
            frame_header(len, &mut header)
        } else {
            &[][..]
        };
        if outgoing.chunks.is_empty() && len <= JOIN_MAX {
            // Small: one buffer and one plain write (cheaper than a vectored one).
            let mut frame = BytesMut::with_capacity(control.len() + header.len() + len);
            for piece in [&control[..], header, &outgoing.last[..]] {
                frame.extend_from_slice(piece);
            }
            let w = self.write.io();
            w.write_all(&frame).await?;
            return w.flush().await;
        }
        let pieces = [&control[..], header].into_iter().chain(outgoing.pieces());
        let w = self.write.io();
        transport::write_pieces(w, pieces.map(IoSlice::new).collect()).await?;
        w.flush().await
    }

    /// Starts the closing handshake (unless the client did or it is done), sends what
    /// waits, and closes the sending side.
    pub(crate) async fn close(&mut self) {
        {
            let mut control = lock(&self.control);
            if !control.closed {
                control.frames.extend_from_slice(&CLOSE);
                control.closed = true;
            }
        }
        // The peer may already be gone; there is nothing to do about a failed close.
        let _ = self.write(&Outgoing::default()).await;
        let _ = self.write.io().shutdown().await;
    }
}

/// The header of a final binary frame of `len` bytes, unmasked (RFC 6455 §5.2).
fn frame_header(len: usize, header: &mut [u8; 10]) -> &[u8] {
    let mut out = &mut header[..];
    out.put_u8(BINARY);
    match len {
        0..=125 => out.put_u8(len as u8),
        126..=0xffff => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
    let written = 10 - out.len();
    header.get(..written).unwrap_or_default()
}

/// The stream tungstenite runs on: it reads the connection; what it writes is kept in
/// [`Control`] (accepted whole at once, so tungstenite never holds half a frame back).
struct Io {
    read: Read,
    control: SharedControl,
}

enum Read {
    Tcp(ReadAhead),
    Tls(ReadHalf<Stream>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match &mut self.get_mut().read {
            Read::Tcp(r) => r.poll_read(cx, buf),
            Read::Tls(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        lock(&self.control).frames.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A TCP stream read in chunks of up to [`READ_AHEAD`] into a buffer that exists only while
/// it holds data. tungstenite keeps a read buffer of its own for the connection's lifetime
/// and reads at most its size from the socket at once (see `http::ws_config`). With this
/// below it, tungstenite's buffer stays small and its small reads are copies from here,
/// not system calls.
struct ReadAhead {
    tcp: OwnedReadHalf,
    buf: BytesMut,
}

const READ_AHEAD: usize = 16 * 1024;

impl ReadAhead {
    fn new(tcp: OwnedReadHalf) -> Self {
        ReadAhead {
            tcp,
            buf: BytesMut::new(),
        }
    }

    fn poll_read(&mut self, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.buf.is_empty() {
            let read = std::task::ready!(transport::read_when_ready(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_use_the_shortest_length_form() {
        let mut header = [0; 10];
        assert_eq!(frame_header(0, &mut header), [0x82, 0]);
        assert_eq!(frame_header(125, &mut header), [0x82, 125]);
        assert_eq!(frame_header(126, &mut header), [0x82, 126, 0, 126]);
        assert_eq!(frame_header(0xffff, &mut header), [0x82, 126, 0xff, 0xff]);
        assert_eq!(
            frame_header(0x1_0000, &mut header),
            [0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }
}
