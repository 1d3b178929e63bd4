//! A tiny HTTP/1.1 server for tests that play a partner (a Sheets export, a polled
//! API): answers by path and query with canned responses, and records requests.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A canned answer.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Canned {
    pub fn ok(content_type: &str, body: impl Into<String>) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type".into(), content_type.into())],
            body: body.into().into_bytes(),
        }
    }

    /// `body` gzip-compressed, with `Content-Encoding: gzip`.
    pub fn gzip(content_type: &str, body: impl Into<String>) -> Self {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder
            .write_all(body.into().as_bytes())
            .expect("gzip in memory");
        Self {
            status: 200,
            headers: vec![
                ("content-type".into(), content_type.into()),
                ("content-encoding".into(), "gzip".into()),
            ],
            body: encoder.finish().expect("gzip in memory"),
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: vec![],
            body: Vec::new(),
        }
    }
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct FakeRequest {
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl FakeRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

type Handler = Arc<dyn Fn(&FakeRequest) -> Canned + Send + Sync>;

pub struct FakeHttp {
    pub base_url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeHttp {
    /// Serves `answer(path_and_query)` until the test ends.
    pub async fn start(answer: impl Fn(&str) -> Canned + Send + Sync + 'static) -> Self {
        Self::start_with(move |request: &FakeRequest| answer(&request.target)).await
    }

    /// Serves `answer(request)` (method, headers and body too) until the test ends.
    pub async fn start_with(
        answer: impl Fn(&FakeRequest) -> Canned + Send + Sync + 'static,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(answer);
        let seen = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (handler, seen) = (handler.clone(), seen.clone());
                tokio::spawn(async move {
                    let mut buffer = vec![0_u8; 16 * 1024];
                    let mut read = 0;
                    loop {
                        let Ok(n) = socket.read(&mut buffer[read..]).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        read += n;
                        if buffer[..read].windows(4).any(|w| w == b"\r\n\r\n")
                            || read == buffer.len()
                        {
                            break;
                        }
                    }
                    let head_end = buffer[..read]
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(read, |at| at + 4);
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                    let mut lines = head.lines();
                    let mut first = lines.next().unwrap_or("").split_whitespace();
                    let method = first.next().unwrap_or("GET").to_owned();
                    let target = first.next().unwrap_or("/").to_owned();
                    let headers: Vec<(String, String)> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let length = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .and_then(|(_, v)| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    let mut body = buffer[head_end..read].to_vec();
                    while body.len() < length {
                        let mut chunk = vec![0_u8; length - body.len()];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => body.extend_from_slice(&chunk[..n]),
                        }
                    }
                    seen.lock().unwrap().push(head);
                    let canned = handler(&FakeRequest {
                        method,
                        target,
                        headers,
                        body,
                    });
                    let mut response = format!(
                        "HTTP/1.1 {} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                        canned.status,
                        canned.body.len()
                    );
                    for (name, value) in &canned.headers {
                        response.push_str(&format!("{name}: {value}\r\n"));
                    }
                    response.push_str("\r\n");
                    let mut bytes = response.into_bytes();
                    bytes.extend_from_slice(&canned.body);
                    let _ = socket.write_all(&bytes).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { base_url, requests }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

/// Query parameters of a request target.
pub fn query(target: &str) -> HashMap<String, String> {
    target
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}
