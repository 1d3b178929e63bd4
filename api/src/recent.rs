//! The last few raw payloads of every integration, for dry runs of a draft mapping
//! on real traffic. Each api instance tails `calls.raw` and keeps at most
//! `capacity` payloads and `max_bytes` of them per integration (oldest dropped
//! first; a payload larger than `max_bytes` is not kept), warmed at start-up from
//! the last `capacity` messages of every partition. An erasure order on the same
//! topic (`schemas::topics::ERASE_HEADER`) drops the payloads of the order's
//! account that hold a spelling of the number (other accounts' stay theirs).

use std::collections::{HashMap, VecDeque};
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
}

/// One integration's payloads and their bytes.
#[derive(Default)]
struct Recent {
    payloads: VecDeque<Box<RawValue>>,
    bytes: usize,
}

impl RecentPayloads {
    /// `account_of` says which account an integration belongs to (for erasures).
    pub async fn start(
        kafka: &KafkaConfig,
        capacity: usize,
        max_bytes: usize,
        account_of: impl Fn(&ClientId) -> Option<String> + Send + Sync + 'static,
        shutdown: Shutdown,
    ) -> Result<Self, ConsumerError> {
        let recent = Self {
            by_client: Arc::default(),
            capacity,
            max_bytes,
        };
        if capacity == 0 {
            return Ok(recent);
        }
        let topic = kafka.topics().raw;
        let consumer = tail_last(kafka, &topic, capacity as i64).await?;
        let writer = recent.clone();
        spawn_tail(consumer, shutdown, "recent-payloads", move |message| {
            if is_erasure(message) {
                let order = message
                    .payload()
                    .and_then(|p| serde_json::from_slice::<ErasureOrder>(p).ok());
                if let Some(order) = order {
                    writer.erase(&order, &account_of);
                }
                return;
            }
            let envelope = message
                .payload()
                .and_then(|p| serde_json::from_slice::<RawEnvelope>(p).ok());
            if let Some(envelope) = envelope {
                writer.push(envelope.client_id, envelope.payload);
            }
        });
        Ok(recent)
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

    /// Oldest first.
    pub fn of(&self, client: &ClientId) -> Vec<Box<RawValue>> {
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

async fn tail_last(
    kafka: &KafkaConfig,
    topic: &str,
    last: i64,
) -> Result<StreamConsumer, ConsumerError> {
    let (consumer, _) =
        assigned_consumer(kafka, "api-recent", topic, Duration::from_secs(10), |m| {
            Offset::Offset((m.high - last).max(m.low))
        })
        .await?;
    Ok(consumer)
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
}
