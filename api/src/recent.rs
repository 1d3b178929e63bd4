//! The last few raw payloads of every integration, for dry runs of a draft mapping
//! on real traffic. Each api instance tails `calls.raw` and keeps at most
//! `capacity` payloads and `max_bytes` of them per integration (oldest dropped
//! first; a payload larger than `max_bytes` is not kept), warmed at start-up from
//! the last `capacity` messages of every partition. An erasure order on the same
//! topic (`schemas::topics::ERASE_HEADER`) drops the payloads of the order's
//! account that hold a spelling of the number (other accounts' stay theirs).
//!
//! Nothing is shown before the warm-up has read every partition to where it stood
//! at start-up: the raw topic holds an erased caller's records until its
//! retention, and a buffer half warmed has read such a record and not yet the
//! order after it (the erasure test saw the number in a new api's first answer).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::Offset;
use runtime::kafka::{assigned_consumer, spawn_tail, ConsumerError, KafkaConfig};
use runtime::shutdown::Shutdown;
use schemas::erasure::ErasureOrder;
use schemas::{ClientId, RawEnvelope};
use serde_json::value::RawValue;

#[derive(Clone)]
pub struct RecentPayloads {
    by_client: Arc<Mutex<HashMap<ClientId, Recent>>>,
    capacity: usize,
    max_bytes: usize,
    /// Whether the warm-up has read every partition to its start-up end.
    warm: Arc<AtomicBool>,
}

/// One integration's payloads and their bytes.
#[derive(Default)]
struct Recent {
    payloads: VecDeque<Box<RawValue>>,
    bytes: usize,
}

impl RecentPayloads {
    /// `account_of` says which account an integration belongs to (for erasures).
    /// Waits up to `warm_within` for the warm-up; past it, shows nothing until the
    /// warm-up is done.
    pub async fn start(
        kafka: &KafkaConfig,
        capacity: usize,
        max_bytes: usize,
        account_of: impl Fn(&ClientId) -> Option<String> + Send + Sync + 'static,
        warm_within: Duration,
        shutdown: Shutdown,
    ) -> Result<Self, ConsumerError> {
        let recent = Self {
            by_client: Arc::default(),
            capacity,
            max_bytes,
            warm: Arc::new(AtomicBool::new(capacity == 0)),
        };
        if capacity == 0 {
            return Ok(recent);
        }
        let topic = kafka.topics().raw;
        let (consumer, mut remaining) = tail_last(kafka, &topic, capacity as i64).await?;
        let (warmed, mut warmed_rx) = tokio::sync::watch::channel(remaining.is_empty());
        recent.warm.store(remaining.is_empty(), Ordering::SeqCst);
        let writer = recent.clone();
        spawn_tail(consumer, shutdown, "recent-payloads", move |message| {
            writer.take(message, &account_of);
            if let Some(end) = remaining.get(&message.partition()) {
                if message.offset() + 1 >= *end {
                    remaining.remove(&message.partition());
                    if remaining.is_empty() {
                        writer.warm.store(true, Ordering::SeqCst);
                        let _ = warmed.send(true);
                    }
                }
            }
        });
        let ready = tokio::time::timeout(warm_within, warmed_rx.wait_for(|warm| *warm)).await;
        if !ready.is_ok_and(|r| r.is_ok()) {
            tracing::warn!(
                waited_s = warm_within.as_secs(),
                "recent payloads still warming: dry runs on recent traffic show nothing until they are"
            );
        }
        Ok(recent)
    }

    /// One message of the raw topic: an erasure order, or a record to keep.
    fn take(
        &self,
        message: &rdkafka::message::BorrowedMessage<'_>,
        account_of: &dyn Fn(&ClientId) -> Option<String>,
    ) {
        if is_erasure(message) {
            let order = message
                .payload()
                .and_then(|p| serde_json::from_slice::<ErasureOrder>(p).ok());
            if let Some(order) = order {
                self.erase(&order, account_of);
            }
            return;
        }
        let envelope = message
            .payload()
            .and_then(|p| serde_json::from_slice::<RawEnvelope>(p).ok());
        if let Some(envelope) = envelope {
            self.push(envelope.client_id, envelope.payload);
        }
    }

    fn push(&self, client: ClientId, payload: Box<RawValue>) {
        let mut map = match self.by_client.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        let size = payload.get().len();
        if size > self.max_bytes {
            return;
        }
        let recent = map.entry(client).or_default();
        while recent.payloads.len() >= self.capacity || recent.bytes + size > self.max_bytes {
            match recent.payloads.pop_front() {
                Some(old) => recent.bytes -= old.get().len(),
                None => break,
            }
        }
        recent.bytes += size;
        recent.payloads.push_back(payload);
    }

    /// Drops the payloads of `order`'s account holding a spelling of its number.
    fn erase(&self, order: &ErasureOrder, account_of: &dyn Fn(&ClientId) -> Option<String>) {
        let Some(spellings) = schemas::erasure::spellings(&order.number) else {
            return;
        };
        let mut map = match self.by_client.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        for (client, recent) in map.iter_mut() {
            if account_of(client).as_deref() != Some(order.account.as_str()) {
                continue;
            }
            recent
                .payloads
                .retain(|payload| !spellings.is_match(payload.get()));
            recent.bytes = recent.payloads.iter().map(|p| p.get().len()).sum();
        }
    }

    /// Oldest first; nothing while the warm-up runs.
    pub fn of(&self, client: &ClientId) -> Vec<Box<RawValue>> {
        if !self.warm.load(Ordering::SeqCst) {
            return Vec::new();
        }
        let map = match self.by_client.lock() {
            Ok(map) => map,
            Err(poisoned) => poisoned.into_inner(),
        };
        map.get(client)
            .map(|r| r.payloads.iter().cloned().collect())
            .unwrap_or_default()
    }
}

fn is_erasure(message: &rdkafka::message::BorrowedMessage<'_>) -> bool {
    use rdkafka::message::Headers;
    message.headers().is_some_and(|headers| {
        headers
            .iter()
            .any(|h| h.key == schemas::topics::ERASE_HEADER)
    })
}

/// A consumer of the last `last` messages of every partition, and where each
/// partition with messages to read ended at the start (its high mark).
async fn tail_last(
    kafka: &KafkaConfig,
    topic: &str,
    last: i64,
) -> Result<(StreamConsumer, HashMap<i32, i64>), ConsumerError> {
    let (consumer, marks) =
        assigned_consumer(kafka, "api-recent", topic, Duration::from_secs(10), |m| {
            Offset::Offset((m.high - last).max(m.low))
        })
        .await?;
    let ends = marks
        .iter()
        .filter(|m| m.high > (m.high - last).max(m.low))
        .map(|m| (m.partition, m.high))
        .collect();
    Ok((consumer, ends))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_per_client() {
        let recent = RecentPayloads {
            by_client: Arc::default(),
            capacity: 2,
            max_bytes: 1024,
            warm: Arc::new(AtomicBool::new(true)),
        };
        let a = ClientId::parse("a").unwrap();
        for n in 0..3 {
            recent.push(
                a.clone(),
                RawValue::from_string(format!("{{\"n\":{n}}}")).unwrap(),
            );
        }
        recent.push(
            ClientId::parse("b").unwrap(),
            RawValue::from_string("{}".into()).unwrap(),
        );
        let kept: Vec<String> = recent.of(&a).iter().map(|p| p.get().to_owned()).collect();
        assert_eq!(kept, ["{\"n\":1}", "{\"n\":2}"]);
        assert!(recent.of(&ClientId::parse("c").unwrap()).is_empty());
    }

    #[test]
    fn an_erasure_drops_its_accounts_payloads_holding_the_number() {
        let recent = RecentPayloads {
            by_client: Arc::default(),
            capacity: 50,
            max_bytes: 10_000,
            warm: Arc::new(AtomicBool::new(true)),
        };
        let (acme, other, mallory) = (
            ClientId::parse("acme-hook").unwrap(),
            ClientId::parse("acme-other").unwrap(),
            ClientId::parse("mallory-hook").unwrap(),
        );
        let payload =
            |text: &str| RawValue::from_string(format!("{{\"caller\":\"{text}\"}}")).unwrap();
        recent.push(acme.clone(), payload("(415) 555-2671"));
        recent.push(acme.clone(), payload("(415) 555-0000"));
        recent.push(other.clone(), payload("+1 415.555.2671"));
        recent.push(mallory.clone(), payload("4155552671"));
        let order = ErasureOrder {
            id: uuid::Uuid::nil(),
            account: "acme".into(),
            number: "+14155552671".into(),
            requested_by: "test".into(),
            requested_at: chrono::Utc::now(),
            clickhouse: true,
            suppress: false,
        };
        let account_of = |client: &ClientId| {
            Some(
                if client.as_str().starts_with("acme") {
                    "acme"
                } else {
                    "mallory"
                }
                .to_owned(),
            )
        };
        recent.erase(&order, &account_of);
        let texts = |c: &ClientId| {
            recent
                .of(c)
                .iter()
                .map(|p| p.get().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(&acme), [r#"{"caller":"(415) 555-0000"}"#]);
        assert!(texts(&other).is_empty(), "every integration of the account");
        assert_eq!(
            texts(&mallory).len(),
            1,
            "another account's payload is its own"
        );
        let held = recent.by_client.lock().unwrap()[&acme].bytes;
        assert_eq!(held, r#"{"caller":"(415) 555-0000"}"#.len());
    }

    #[test]
    fn bytes_are_bounded_per_integration() {
        let recent = RecentPayloads {
            by_client: Arc::default(),
            capacity: 50,
            max_bytes: 1000,
            warm: Arc::new(AtomicBool::new(true)),
        };
        let a = ClientId::parse("a").unwrap();
        let payload = |n: usize| RawValue::from_string(format!("\"{}\"", "x".repeat(n))).unwrap();
        for _ in 0..10 {
            recent.push(a.clone(), payload(298));
        }
        assert_eq!(recent.of(&a).len(), 3, "3 x 300 bytes fit in 1,000");
        recent.push(a.clone(), payload(5000));
        assert_eq!(
            recent.of(&a).len(),
            3,
            "one larger than the cap is not kept"
        );
        let held: usize = recent.of(&a).iter().map(|p| p.get().len()).sum();
        assert!(held <= 1000);
    }

    #[test]
    fn nothing_is_shown_while_warming() {
        let recent = RecentPayloads {
            by_client: Arc::default(),
            capacity: 50,
            max_bytes: 1000,
            warm: Arc::new(AtomicBool::new(false)),
        };
        let a = ClientId::parse("a").unwrap();
        recent.push(a.clone(), RawValue::from_string("{}".into()).unwrap());
        assert!(recent.of(&a).is_empty());
        recent.warm.store(true, Ordering::SeqCst);
        assert_eq!(recent.of(&a).len(), 1);
    }
}
