//! The byte streams MQTT travels over: a TCP stream or the binary messages of a WebSocket
//! (§6: several MQTT packets may share a message and one packet may span several).

use std::io;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

type Ws = WebSocketStream<TcpStream>;

/// The receiving half of a connection.
pub(crate) enum Reader {
    Tcp(OwnedReadHalf),
    Ws(SplitStream<Ws>),
}

/// The sending half of a connection.
pub(crate) enum Writer {
    Tcp(OwnedWriteHalf),
    Ws(SplitSink<Ws, Message>),
}

/// Splits a TCP stream into its halves.
pub(crate) fn tcp(stream: TcpStream) -> (Reader, Writer) {
    let (r, w) = stream.into_split();
    (Reader::Tcp(r), Writer::Tcp(w))
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
            Reader::Tcp(r) => {
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
            Writer::Ws(w) => w.close().await.map_err(io::Error::other),
        };
    }
}
