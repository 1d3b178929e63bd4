//! The last few raw payloads of every integration, for dry runs of a draft mapping
//! on real traffic. Each api instance tails `calls.raw` and keeps at most
//! `capacity` payloads and `max_bytes` of them per integration (oldest dropped
//! first; a payload larger than `max_bytes` is not kept), warmed at start-up from
//! the last `capacity` messages of every partition.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::StreamConsumer;
use rdkafka::message::Message;
use rdkafka::Offset;
use runtime::kafka::{assigned_consumer, spawn_tail, ConsumerError, KafkaConfig};
use runtime::shutdown::Shutdown;
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
    pub async fn start(
        kafka: &KafkaConfig,
        capacity: usize,
        max_bytes: usize,
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
