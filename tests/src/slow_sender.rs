//! A client that sends a large body slowly and stops at the first failed write, as
//! HTTP clients (reqwest, curl) do: what a sender on a slow link meets when it is
//! refused from its request's head (the edges drain such bodies,
//! `runtime::http::drain`).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// POSTs `body` (JSON) to `path` on `port` in 50 KB pieces, 10 ms apart, then reads
/// the answer's first bytes. `Err` names the step that failed: a write cut under
/// the sender, or no answer.
pub async fn post_slowly(port: u16, path: &str, body: &[u8]) -> Result<String, String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| format!("head: {e}"))?;
    for (n, piece) in body.chunks(50_000).enumerate() {
        stream
            .write_all(piece)
            .await
            .map_err(|e| format!("cut at piece {n}: {e}"))?;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut answer))
        .await
        .map_err(|_| "no answer in 10 s".to_owned())?
        .map_err(|e| format!("answer: {e}"))?;
    Ok(String::from_utf8_lossy(&answer[..read]).into_owned())
}
