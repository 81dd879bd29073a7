//! The HTTP listener: MQTT over WebSocket at `/mqtt` (subprotocols `mqtt` and `mqttv3.1`),
//! Prometheus metrics at `/metrics`, and the static files of the demo page everywhere else.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::broker::Shared;
use crate::transport::{Reader, Stream, Writer};
use crate::websocket;

/// The most a request head may take.
const MAX_HEAD: usize = 16 * 1024;

/// The subprotocols MQTT over WebSocket uses (§6.0), in our order of preference.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// What the HTTP side made of a connection.
pub(crate) enum Outcome {
    /// A WebSocket for MQTT: its two halves.
    WebSocket(Box<(Reader, Writer)>),
    /// Answered (a file, metrics or an error) and done.
    Done,
}

struct Request {
    path: String,
    websocket_key: Option<String>,
    upgrade: bool,
    protocols: Vec<String>,
    origin: Option<String>,
}

/// Reads one request and answers it, or upgrades it to a WebSocket.
pub(crate) async fn handle(shared: &Arc<Shared>, mut stream: Stream) -> std::io::Result<Outcome> {
    let mut buf = BytesMut::with_capacity(1024);
    let deadline = shared.config.connect_timeout();
    let request = match tokio::time::timeout(deadline, read_head(&mut stream, &mut buf)).await {
        Ok(Ok(Some(request))) => request,
        Ok(Ok(None)) => {
            respond(
                &mut stream,
                "400 Bad Request",
                "text/plain",
                b"bad request\n",
            )
            .await?;
            return Ok(Outcome::Done);
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(Outcome::Done),
    };
    if request.path == "/mqtt" {
        if !origin_allowed(&shared.config.allowed_origins, request.origin.as_deref()) {
            tracing::info!(origin = ?request.origin, "WebSocket from an origin not allowed");
            respond(
                &mut stream,
                "403 Forbidden",
                "text/plain",
                b"origin not allowed\n",
            )
            .await?;
            return Ok(Outcome::Done);
        }
        return upgrade(stream, request, buf).await;
    }
    if request.path == "/metrics" {
        let body = shared.metrics_text();
        respond(
            &mut stream,
            "200 OK",
            "text/plain; version=0.0.4",
            body.as_bytes(),
        )
        .await?;
        return Ok(Outcome::Done);
    }
    serve_file(&mut stream, &shared.config.web, &request.path).await?;
    Ok(Outcome::Done)
}

/// Whether a browser page from `origin` may open MQTT over WebSocket: any may when the list
/// is empty; requests without an Origin header do not come from a browser page (browsers
/// always send one on a WebSocket handshake) and are judged by authentication alone.
fn origin_allowed(allowed: &[String], origin: Option<&str>) -> bool {
    match origin {
        None => true,
        Some(origin) => {
            allowed.is_empty()
                || allowed
                    .iter()
                    .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin))
        }
    }
}

async fn read_head(stream: &mut Stream, buf: &mut BytesMut) -> std::io::Result<Option<Request>> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => {
                let header = |name: &str| {
                    req.headers
                        .iter()
                        .filter(|h| h.name.eq_ignore_ascii_case(name))
                        .filter_map(|h| std::str::from_utf8(h.value).ok())
                        .collect::<Vec<_>>()
                        .join(",")
                };
                let upgrade = header("upgrade").to_ascii_lowercase().contains("websocket")
                    && header("connection")
                        .to_ascii_lowercase()
                        .contains("upgrade");
                let key = header("sec-websocket-key");
                let origin = header("origin");
                let request = Request {
                    path: req
                        .path
                        .unwrap_or("/")
                        .split('?')
                        .next()
                        .unwrap_or("/")
                        .to_owned(),
                    websocket_key: (!key.is_empty()).then_some(key),
                    upgrade: upgrade && req.method == Some("GET"),
                    protocols: header("sec-websocket-protocol")
                        .split(',')
                        .map(|p| p.trim().to_owned())
                        .collect(),
                    origin: (!origin.is_empty()).then_some(origin),
                };
                let _ = buf.split_to(len);
                return Ok(Some(request));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => return Ok(None),
        }
        if stream.read_buf(buf).await? == 0 {
            return Ok(None);
        }
    }
}

async fn upgrade(mut stream: Stream, request: Request, rest: BytesMut) -> std::io::Result<Outcome> {
    let (true, Some(key)) = (request.upgrade, request.websocket_key) else {
        // A plain GET on /mqtt is not MQTT: say what is expected (RFC 6455 §4.2.2).
        let body =
            b"MQTT over WebSocket: connect with a WebSocket client and subprotocol \"mqtt\"\n";
        respond_with(
            &mut stream,
            "426 Upgrade Required",
            "text/plain",
            body,
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
        )
        .await?;
        return Ok(Outcome::Done);
    };
    let protocol = SUBPROTOCOLS
        .iter()
        .find(|p| request.protocols.iter().any(|q| q == *p));
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n",
        derive_accept_key(key.as_bytes())
    );
    if let Some(protocol) = protocol {
        head.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    let halves = websocket::start(stream, rest, ws_config()).await;
    Ok(Outcome::WebSocket(Box::new(halves)))
}

/// tungstenite's default read buffer is 128 KiB per connection, zero-filled before every
/// read: most of an idle WebSocket client's memory, and half the broker's CPU at 10k msg/s
/// over WebSocket (docs/benchmarks.md). It is kept for the connection's lifetime; the
/// socket is read in larger chunks below it (`websocket::ReadAhead`), so it only
/// needs to be big enough for a frame header and a small packet.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(512)
}

async fn serve_file(stream: &mut Stream, root: &Path, path: &str) -> std::io::Result<()> {
    let Some(file) = resolve(root, path) else {
        return respond(stream, "404 Not Found", "text/plain", b"not found\n").await;
    };
    match tokio::fs::read(&file).await {
        Ok(body) => respond(stream, "200 OK", content_type(&file), &body).await,
        Err(_) => respond(stream, "404 Not Found", "text/plain", b"not found\n").await,
    }
}

/// The file `path` names under `root`; never outside it.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let relative = Path::new(path.trim_start_matches('/'));
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_)))
    {
        return None;
    }
    let mut file = root.join(relative);
    if file.is_dir() || path.ends_with('/') {
        file = file.join("index.html");
    }
    file.is_file().then_some(file)
}

fn content_type(file: &Path) -> &'static str {
    match file
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn respond(
    stream: &mut Stream,
    status: &str,
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    respond_with(stream, status, content_type, body, "").await
}

async fn respond_with(
    stream: &mut Stream,
    status: &str,
    content_type: &str,
    body: &[u8],
    extra: &str,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn origins() {
        let allowed = vec![
            "https://example.com/".to_owned(),
            "http://localhost:8080".to_owned(),
        ];
        assert!(origin_allowed(&allowed, Some("https://example.com")));
        assert!(origin_allowed(&allowed, Some("http://localhost:8080")));
        assert!(!origin_allowed(&allowed, Some("https://evil.example")));
        assert!(!origin_allowed(&allowed, Some("null")));
        assert!(origin_allowed(&allowed, None));
        assert!(origin_allowed(&[], Some("https://evil.example")));
    }
}
