//! A minimal SSE reader for tests: frames split on blank lines, fields parsed per
//! the EventSource rules that matter here (id, event, data; comments skipped).

use futures::StreamExt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: String,
    pub data: String,
}

pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl SseReader {
    pub async fn connect(url: &str) -> Self {
        Self::connect_with(url, &[]).await
    }

    /// Connects with extra request headers (`Last-Event-ID`).
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Self {
        Self::try_connect_with(url, headers)
            .await
            .unwrap_or_else(|problem| panic!("SSE connect: {problem}"))
    }

    /// As [`SseReader::connect_with`], saying why instead of panicking (a client
    /// that reconnects while the api is down).
    pub async fn try_connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Self, String> {
        let mut request = reqwest::Client::new().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if response.status() != 200 {
            return Err(format!("status {}", response.status()));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if content_type != "text/event-stream" {
            return Err(format!("content type {content_type:?}"));
        }
        Ok(Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        })
    }

    /// The next event that is not a comment-only frame; `None` when the stream ends.
    pub async fn next_event(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse_frame(&frame) {
                    return Some(event);
                }
                continue;
            }
            match self.stream.next().await {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }
}

fn parse_frame(frame: &str) -> Option<SseEvent> {
    let mut event = SseEvent {
        id: None,
        event: "message".into(),
        data: String::new(),
    };
    let mut has_data = false;
    for line in frame.lines() {
        let (field, value) = line
            .split_once(':')
            .map(|(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)))
            .unwrap_or((line, ""));
        match field {
            "id" => event.id = Some(value.to_owned()),
            "event" => event.event = value.to_owned(),
            "data" => {
                if has_data {
                    event.data.push('\n');
                }
                event.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    has_data.then_some(event)
}
