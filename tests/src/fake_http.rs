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

type Handler = Arc<dyn Fn(&str) -> Canned + Send + Sync>;

pub struct FakeHttp {
    pub base_url: String,
    pub requests: Arc<Mutex<Vec<String>>>,
}

impl FakeHttp {
    /// Serves `answer(path_and_query)` until the test ends.
    pub async fn start(answer: impl Fn(&str) -> Canned + Send + Sync + 'static) -> Self {
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
                    let head = String::from_utf8_lossy(&buffer[..read]).to_string();
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    seen.lock().unwrap().push(head);
                    let canned = handler(&target);
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
