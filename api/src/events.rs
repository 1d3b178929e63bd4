//! `GET /api/events`: Server-Sent Events of canonical calls as the processor
//! publishes them. One tailing consumer per api instance fans out to every client
//! through a bounded broadcast channel; a client that falls behind by more than the
//! buffer gets a `dropped` event and is disconnected (its memory is bounded, and
//! it knows to reload). Parameters: `client_id`, `account`.
//!
//! Each event's `id` is `partition-offset` in the enriched topic: stable and
//! unique, the basis for `Last-Event-ID` resume.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::Offset;
use runtime::http::{Body, Problem};
use runtime::kafka::{assigned_consumer, spawn_tail, ConsumerError, KafkaConfig};
use runtime::shutdown::Shutdown;
use serde::Deserialize;
use tokio::sync::broadcast;

use crate::query::parse;

/// One call announcement, pre-rendered once for every client.
#[derive(Debug)]
pub struct CallEvent {
    client_id: String,
    account: String,
    frame: Bytes,
}

#[derive(Clone)]
pub struct EventHub {
    sender: broadcast::Sender<Arc<CallEvent>>,
    heartbeat: Duration,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    client_id: Option<String>,
    account: Option<String>,
}

impl EventHub {
    /// Starts tailing the enriched topic from its current end: events published
    /// after this returns reach subscribers.
    pub async fn start(
        kafka: &KafkaConfig,
        buffer: usize,
        heartbeat: Duration,
        shutdown: Shutdown,
    ) -> Result<Self, ConsumerError> {
        let topic = kafka.topics().enriched;
        let consumer = tail_from_end(kafka, &topic).await?;
        let (sender, _) = broadcast::channel(buffer);
        let hub = Self {
            sender: sender.clone(),
            heartbeat,
        };
        spawn_tail(consumer, shutdown, "sse", move |message| {
            if let Some(event) = render(message.partition(), message.offset(), message.payload()) {
                // No subscribers is fine: nobody is watching.
                let _ = sender.send(Arc::new(event));
                metrics::counter!("api_sse_events_total").increment(1);
            }
        });
        Ok(hub)
    }

    pub fn subscribe(&self, query: Option<&str>) -> Result<Response<Body>, Problem> {
        let filter: EventsQuery = parse(query)?;
        metrics::gauge!("api_sse_clients").increment(1.0);
        let mut ticks = tokio::time::interval(self.heartbeat);
        ticks.reset();
        let client = SseClient {
            receiver: self.sender.subscribe(),
            ticks,
            filter,
            opened: false,
            ended: false,
            _gauge: ClientGauge,
        };
        let frames = futures::stream::unfold(client, |mut client| async move {
            let frame = client.next_frame().await?;
            Some((Ok::<_, Infallible>(Frame::data(frame)), client))
        });
        let mut response = Response::new(StreamBody::new(frames).boxed());
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(response)
    }
}

/// One connected SSE client: its place in the broadcast, its filter, its heartbeat.
struct SseClient {
    receiver: broadcast::Receiver<Arc<CallEvent>>,
    ticks: tokio::time::Interval,
    filter: EventsQuery,
    opened: bool,
    ended: bool,
    _gauge: ClientGauge,
}

impl SseClient {
    /// The next bytes to send, or `None` to end the response.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        if !self.opened {
            self.opened = true;
            return Some(Bytes::from_static(b"retry: 3000\n: connected\n\n"));
        }
        loop {
            tokio::select! {
                _ = self.ticks.tick() => return Some(Bytes::from_static(b": heartbeat\n\n")),
                received = self.receiver.recv() => match received {
                    Ok(event) if self.wants(&event) => return Some(event.frame.clone()),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        self.ended = true;
                        metrics::counter!("api_sse_dropped_clients_total").increment(1);
                        return Some(Bytes::from(format!(
                            "event: dropped\ndata: {{\"reason\":\"client too slow\",\"missed\":{missed}}}\n\n"
                        )));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            }
        }
    }

    fn wants(&self, event: &CallEvent) -> bool {
        self.filter
            .client_id
            .as_ref()
            .is_none_or(|c| *c == event.client_id)
            && self
                .filter
                .account
                .as_ref()
                .is_none_or(|a| *a == event.account)
    }
}

/// Decrements the client gauge when a stream is dropped.
struct ClientGauge;

impl Drop for ClientGauge {
    fn drop(&mut self) {
        metrics::gauge!("api_sse_clients").decrement(1.0);
    }
}

fn render(partition: i32, offset: i64, payload: Option<&[u8]>) -> Option<CallEvent> {
    #[derive(Deserialize)]
    struct Scope {
        client_id: String,
        account: String,
        /// `call.created` or `call.updated`, set by the processor.
        #[serde(default = "created")]
        event: String,
    }
    fn created() -> String {
        "call.created".to_owned()
    }
    let payload = payload?;
    let scope: Scope = match serde_json::from_slice(payload) {
        Ok(scope) => scope,
        Err(error) => {
            tracing::warn!(%error, partition, offset, "enriched message is not a call; skipped");
            return None;
        }
    };
    let data = std::str::from_utf8(payload).ok()?;
    // SSE data lines cannot contain raw newlines; compact JSON has none, but be sure.
    let data = data.replace('\n', " ");
    Some(CallEvent {
        client_id: scope.client_id,
        account: scope.account,
        frame: Bytes::from(format!(
            "id: {partition}-{offset}\nevent: {}\ndata: {data}\n\n",
            match scope.event.as_str() {
                "call.updated" => "call.updated",
                "import.progress" => "import.progress",
                _ => "call.created",
            }
        )),
    })
}

async fn tail_from_end(kafka: &KafkaConfig, topic: &str) -> Result<StreamConsumer, ConsumerError> {
    let (consumer, _) =
        assigned_consumer(kafka, "api-events", topic, Duration::from_secs(10), |m| {
            Offset::Offset(m.high)
        })
        .await?;
    Ok(consumer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_sse_frame_with_a_stable_id() {
        let event = render(
            2,
            41,
            Some(br#"{"client_id":"arroyo","account":"acme","x":1}"#),
        )
        .unwrap();
        let frame = std::str::from_utf8(&event.frame).unwrap();
        assert_eq!(frame, "id: 2-41\nevent: call.created\ndata: {\"client_id\":\"arroyo\",\"account\":\"acme\",\"x\":1}\n\n");
        let update = render(
            2,
            42,
            Some(br#"{"client_id":"arroyo","account":"acme","event":"call.updated"}"#),
        )
        .unwrap();
        assert!(std::str::from_utf8(&update.frame)
            .unwrap()
            .starts_with("id: 2-42\nevent: call.updated\n"));
        assert!(render(0, 0, Some(b"not json")).is_none());
        assert!(render(0, 0, None).is_none());
    }
}
