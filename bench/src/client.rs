//! The load generator's MQTT connections: just enough client on midge-codec to publish and
//! subscribe at full speed, over TCP or WebSocket, reading and writing in batches.

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt, TryStreamExt, stream};
use midge_codec::{ByteStr, Connect, Decoder, Packet, ProtocolVersion};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// How MQTT packets travel to the broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Transport {
    /// MQTT straight over TCP.
    Tcp,
    /// MQTT in binary WebSocket frames (subprotocol `mqtt`).
    Ws,
}

/// Where the broker listens.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    pub(crate) transport: Transport,
    /// The WebSocket URL path, e.g. `/mqtt`.
    pub(crate) path: String,
}

/// How much memory each connection's buffers start with: a lot for the load, little for
/// thousands of idle connections.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Buffers {
    Load,
    Idle,
}

impl Buffers {
    fn bytes(self) -> usize {
        match self {
            Buffers::Load => 64 * 1024,
            Buffers::Idle => 1024,
        }
    }
}

enum Stream {
    Tcp(TcpStream),
    Ws(Box<WebSocketStream<TcpStream>>),
}

/// A connected client, driven by one task: it queues packets, sends them in one write per
/// [`Conn::flush`], and decodes whatever one read brought.
pub(crate) struct Conn {
    stream: Stream,
    decoder: Decoder,
    inbox: BytesMut,
    pub(crate) out: BytesMut,
    pub(crate) version: ProtocolVersion,
}

fn fail(what: String) -> io::Error {
    io::Error::other(what)
}

fn closed() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the broker closed the connection",
    )
}

impl Conn {
    /// Connects (and for WebSocket, upgrades) and waits for a successful CONNACK.
    pub(crate) async fn open(
        endpoint: &Endpoint,
        version: ProtocolVersion,
        client_id: &str,
        buffers: Buffers,
        persistent: bool,
    ) -> io::Result<Conn> {
        let tcp = TcpStream::connect(endpoint.addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match endpoint.transport {
            Transport::Tcp => Stream::Tcp(tcp),
            Transport::Ws => Stream::Ws(Box::new(upgrade(tcp, endpoint, buffers).await?)),
        };
        let mut conn = Conn {
            stream,
            decoder: Decoder::new(version),
            inbox: BytesMut::with_capacity(buffers.bytes()),
            out: BytesMut::with_capacity(buffers.bytes()),
            version,
        };
        let id = ByteStr::try_from(client_id).map_err(|e| fail(e.to_string()))?;
        let mut connect = Connect::new(version, id);
        connect.keep_alive = 0;
        if persistent {
            // A session that outlives the connection: a durable broker keeps its QoS 1 and 2
            // messages on disk (for 5.0, as long as the bench might run, and a little more).
            connect.clean_start = false;
            if version.is_v5() {
                connect.properties.session_expiry_interval = Some(600);
            }
        }
        conn.queue(&Packet::from(connect))?;
        conn.flush().await?;
        match conn.next().await? {
            Packet::ConnAck(ack) if !ack.reason_code.is_error() => Ok(conn),
            other => Err(fail(format!("connection refused: {other:?}"))),
        }
    }

    /// Appends a packet to the outgoing batch.
    pub(crate) fn queue(&mut self, packet: &Packet) -> io::Result<()> {
        packet
            .encode(self.version, &mut self.out)
            .map_err(|e| fail(e.to_string()))
    }

    /// Sends the outgoing batch: one write, or one WebSocket frame.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        match &mut self.stream {
            Stream::Tcp(tcp) => {
                tcp.write_all(&self.out).await?;
                self.out.clear();
            }
            Stream::Ws(ws) => {
                let frame = self.out.split().freeze();
                ws.send(Message::Binary(frame))
                    .await
                    .map_err(io::Error::other)?;
            }
        }
        Ok(())
    }

    /// The next packet, waiting for bytes if needed.
    pub(crate) async fn next(&mut self) -> io::Result<Packet> {
        loop {
            if let Some(packet) = self.decoded()? {
                return Ok(packet);
            }
            self.fill().await?;
        }
    }

    /// A packet already received, if any.
    pub(crate) fn decoded(&mut self) -> io::Result<Option<Packet>> {
        self.decoder
            .decode(&mut self.inbox)
            .map_err(|e| fail(e.to_string()))
    }

    /// Reads more bytes (one read, or one WebSocket message); an error when the broker
    /// closed the connection. Cancel-safe: nothing read is lost if it is dropped.
    pub(crate) async fn fill(&mut self) -> io::Result<()> {
        match &mut self.stream {
            Stream::Tcp(tcp) => {
                if tcp.read_buf(&mut self.inbox).await? == 0 {
                    return Err(closed());
                }
                Ok(())
            }
            Stream::Ws(ws) => loop {
                match ws.next().await {
                    Some(Ok(Message::Binary(bytes))) => {
                        self.inbox.extend_from_slice(&bytes);
                        return Ok(());
                    }
                    Some(Ok(Message::Close(_))) | None => return Err(closed()),
                    // Pings are answered by tungstenite with the next write.
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            },
        }
    }
}

/// How many connections are opened at a time: brokers that take long over a handshake
/// (Mosquitto's WebSocket listener) would otherwise dominate a row's setup.
pub(crate) const CONCURRENCY: usize = 32;

/// Opens a connection for each client id, several at a time, in the ids' order; with
/// `persistent`, each asks for a session that outlives it.
pub(crate) async fn open_many(
    endpoint: &Endpoint,
    version: ProtocolVersion,
    client_ids: impl Iterator<Item = String>,
    buffers: Buffers,
    persistent: bool,
) -> io::Result<Vec<Conn>> {
    stream::iter(client_ids)
        .map(|id| async move { Conn::open(endpoint, version, &id, buffers, persistent).await })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}

/// The WebSocket handshake at `ws://addr/path`, asking for subprotocol `mqtt`.
async fn upgrade(
    tcp: TcpStream,
    endpoint: &Endpoint,
    buffers: Buffers,
) -> io::Result<WebSocketStream<TcpStream>> {
    let url = format!("ws://{}{}", endpoint.addr, endpoint.path);
    let mut request = url.into_client_request().map_err(io::Error::other)?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    // Every flush is sent at once (flush writes the whole buffer whatever its target size).
    let config = WebSocketConfig::default()
        .read_buffer_size(buffers.bytes())
        .write_buffer_size(0);
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, tcp, Some(config))
        .await
        .map_err(io::Error::other)?;
    Ok(ws)
}
