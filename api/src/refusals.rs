//! Refused webhook deliveries of every integration (`schemas::refusal`), for their
//! owners: each api instance tails `ingest.refusals` (warmed with its last
//! [`WARM`] messages) and keeps the newest [`PER_INTEGRATION`] per integration.
//! `GET /api/integrations/{clientId}/refusals` lists them; the integrations list
//! counts the last hour's in its health, so a partner signing with an old secret
//! shows on the page, not only in a Prometheus counter.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use rdkafka::message::Message;
use rdkafka::Offset;
use runtime::kafka::{assigned_consumer, spawn_tail, ConsumerError, KafkaConfig};
use runtime::shutdown::Shutdown;
use schemas::refusal::Refusal;
use schemas::ClientId;

/// Refusals kept per integration.
pub const PER_INTEGRATION: usize = 50;
/// Messages read at start-up.
const WARM: i64 = 5000;

#[derive(Clone, Default)]
pub struct RecentRefusals {
    by_client: Arc<Mutex<HashMap<ClientId, VecDeque<Refusal>>>>,
}

impl RecentRefusals {
    pub async fn start(kafka: &KafkaConfig, shutdown: Shutdown) -> Result<Self, ConsumerError> {
        let recent = Self::default();
        let topic = kafka.topics().refusals;
        let (consumer, _) = assigned_consumer(
            kafka,
            "api-refusals",
            &topic,
            Duration::from_secs(10),
            |m| Offset::Offset((m.high - WARM).max(m.low)),
        )
        .await?;
        let writer = recent.clone();
        spawn_tail(consumer, shutdown, "refusals", move |message| {
            if let Some(refusal) = message
                .payload()
                .and_then(|p| serde_json::from_slice::<Refusal>(p).ok())
            {
                writer.push(refusal);
            }
        });
        Ok(recent)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientId, VecDeque<Refusal>>> {
        self.by_client
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn push(&self, refusal: Refusal) {
        let mut map = self.lock();
        let kept = map.entry(refusal.client_id.clone()).or_default();
        if kept.len() >= PER_INTEGRATION {
            kept.pop_front();
        }
        kept.push_back(refusal);
    }

    /// Newest first.
    pub fn of(&self, client: &ClientId) -> Vec<Refusal> {
        self.lock()
            .get(client)
            .map(|kept| kept.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    /// Refused deliveries of `client` in the last hour (those kept, and those
    /// ingest counted without writing), and the newest one's time and code.
    pub fn last_hour(&self, client: &ClientId) -> serde_json::Value {
        let since = Utc::now() - chrono::Duration::hours(1);
        let map = self.lock();
        let Some(kept) = map.get(client) else {
            return serde_json::json!({"count": 0});
        };
        let count: u64 = kept
            .iter()
            .filter(|r| r.at >= since)
            .map(|r| 1 + r.not_recorded_before)
            .sum();
        let last = kept.back().filter(|r| r.at >= since);
        serde_json::json!({
            "count": count,
            "last_at": last.map(|r| r.at),
            "last_code": last.map(|r| r.code.as_str()),
            "last_reason": last.map(|r| r.reason.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refusal(client: &str, minutes_ago: i64, skipped: u64) -> Refusal {
        Refusal {
            client_id: ClientId::parse(client).unwrap(),
            account: "acme".into(),
            at: Utc::now() - chrono::Duration::minutes(minutes_ago),
            status: 401,
            code: "not_accepted".into(),
            reason: format!("bad {minutes_ago}"),
            method: "POST".into(),
            headers: vec![],
            body_sample: None,
            not_recorded_before: skipped,
        }
    }

    #[test]
    fn newest_first_bounded_and_counted_with_what_was_not_written() {
        let recent = RecentRefusals::default();
        for n in 0..60 {
            recent.push(refusal("a", 120 - n, 0));
        }
        recent.push(refusal("a", 5, 40));
        recent.push(refusal("b", 1, 0));
        let a = ClientId::parse("a").unwrap();
        let kept = recent.of(&a);
        assert_eq!(kept.len(), PER_INTEGRATION);
        assert_eq!(kept[0].reason, "bad 5");
        let hour = recent.last_hour(&a);
        // 120 - n < 60 for n in 61..: none; the 5-minute one with 40 not written.
        assert_eq!(hour["count"], 41, "{hour}");
        assert_eq!(hour["last_code"], "not_accepted");
        assert_eq!(recent.last_hour(&ClientId::parse("c").unwrap())["count"], 0);
    }
}
