//! The load generator's MQTT connections: just enough client on midge-codec to publish and
//! subscribe at full speed, reading and writing in batches.

use std::io;
use std::net::SocketAddr;

use bytes::BytesMut;
use midge_codec::{ByteStr, Connect, Decoder, Packet, ProtocolVersion};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// A connected client, split into halves for one task to drive both.
pub(crate) struct Conn {
    pub(crate) reader: OwnedReadHalf,
    pub(crate) writer: OwnedWriteHalf,
    pub(crate) decoder: Decoder,
    pub(crate) inbox: BytesMut,
    pub(crate) out: BytesMut,
    pub(crate) version: ProtocolVersion,
}

fn fail(what: String) -> io::Error {
    io::Error::other(what)
}

impl Conn {
    /// Connects and waits for a successful CONNACK.
    pub(crate) async fn open(
        addr: SocketAddr,
        version: ProtocolVersion,
        client_id: &str,
    ) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (reader, writer) = stream.into_split();
        let mut conn = Conn {
            reader,
            writer,
            decoder: Decoder::new(version),
            inbox: BytesMut::with_capacity(64 * 1024),
            out: BytesMut::with_capacity(64 * 1024),
            version,
        };
        let id = ByteStr::try_from(client_id).map_err(|e| fail(e.to_string()))?;
        let mut connect = Connect::new(version, id);
        connect.keep_alive = 0;
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

    /// Sends the outgoing batch.
    pub(crate) async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.writer.write_all(&self.out).await?;
            self.out.clear();
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

    /// Reads more bytes; an error when the broker closed the connection.
    pub(crate) async fn fill(&mut self) -> io::Result<()> {
        if self.reader.read_buf(&mut self.inbox).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the broker closed the connection",
            ));
        }
        Ok(())
    }
}
