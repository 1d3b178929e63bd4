//! CallMatrix's own data into ClickHouse, and links made after the fact.
//!
//! The `callmatrix` consumer group reads the managed-numbers and CmCall topics,
//! writes `cm_numbers` and `cm_calls`, and then links partner records on those
//! numbers that were stored before their CmCall arrived: each gets a new version
//! (and a `call.updated` event). A periodic sweep re-links records still pending, so
//! a partner record and its CmCall processed at the same moment by two instances
//! are linked on the next sweep instead of never.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::message::{Message, OwnedMessage};
use runtime::call_lookup::StoredId;
use runtime::kafka::{group_consumer, ConsumerError, KafkaConfig};
use runtime::registry::IntegrationRegistry;
use runtime::shutdown::Shutdown;
use schemas::call::Change;
use schemas::callmatrix::{
    CmCall, CmCallRow, ManagedNumber, ManagedNumberRow, MatchMethod, CM_CALL_COLUMNS,
};
use schemas::{CallId, CallRecord, CallRow, ClientId};

use super::duplicates::{self, Candidate};
use super::settle_status;
use crate::pipeline::{commit, next_batch};
use crate::sink::{insert, BatchSink};

pub const GROUP: &str = "callmatrix";

/// Widest start tolerance a rule may set: CmCalls are read this far around the
/// partner records being linked.
const SEARCH_MARGIN_S: i64 = schemas::enrichment::MAX_TOLERANCE_S as i64;

pub struct Linker {
    pub sink: Arc<BatchSink>,
    pub registry: IntegrationRegistry,
    pub max_records: usize,
    pub max_wait: Duration,
    pub sweep_every: Duration,
}

impl Linker {
    pub async fn run(self, kafka: &KafkaConfig, shutdown: Shutdown) -> Result<(), ConsumerError> {
        let topics = kafka.topics();
        let consumer = group_consumer(kafka, GROUP, &[&topics.cm_numbers, &topics.cm_calls])?;
        let mut stop = shutdown.clone();
        let mut sweep = tokio::time::interval(self.sweep_every);
        loop {
            tokio::select! {
                _ = stop.wait() => break,
                _ = sweep.tick() => {
                    if self.relink(&Stored::Pending, &shutdown).await.is_err() {
                        break;
                    }
                }
                batch = next_batch(&consumer, self.max_records, self.max_wait) => {
                    if self.record(&batch, &topics.cm_calls, &shutdown).await.is_err() {
                        tracing::warn!("stopping with an unwritten CallMatrix batch; it will be reprocessed");
                        break;
                    }
                    commit(&consumer, &batch);
                }
            }
        }
        Ok(())
    }

    /// Writes the batch's numbers and CmCalls, then links what they complete.
    async fn record(
        &self,
        batch: &[OwnedMessage],
        calls_topic: &str,
        shutdown: &Shutdown,
    ) -> Result<(), crate::sink::Interrupted> {
        let now = Utc::now();
        let mut numbers = Vec::new();
        let mut calls = Vec::new();
        for message in batch {
            let payload = message.payload();
            if message.topic() == calls_topic {
                match payload.map(serde_json::from_slice::<CmCall>) {
                    Some(Ok(call)) => calls.push(CmCallRow::new(&call, now)),
                    other => invalid(message, other.and_then(|r| r.err())),
                }
            } else {
                let key = message.key().and_then(|k| std::str::from_utf8(k).ok());
                match (key, payload.map(serde_json::from_slice::<ManagedNumber>)) {
                    (Some(_), Some(Ok(number))) => numbers.push(ManagedNumberRow {
                        number: number.number.to_string(),
                        account: number.account,
                        campaign: number.campaign,
                        active: u8::from(number.active),
                        updated_at: schemas::call::to_whole_seconds(now),
                    }),
                    // A tombstone retires the number.
                    (Some(key), None) => numbers.push(ManagedNumberRow {
                        number: key.to_owned(),
                        account: String::new(),
                        campaign: String::new(),
                        active: 0,
                        updated_at: schemas::call::to_whole_seconds(now),
                    }),
                    (_, other) => invalid(message, other.and_then(|r| r.err())),
                }
            }
        }
        let clickhouse = &self.sink.clickhouse;
        if !numbers.is_empty() {
            self.sink
                .retry("insert cm_numbers", shutdown, || {
                    insert(clickhouse, "cm_numbers", &numbers)
                })
                .await?;
        }
        if calls.is_empty() {
            return Ok(());
        }
        self.sink
            .retry("insert cm_calls", shutdown, || {
                insert(clickhouse, "cm_calls", &calls)
            })
            .await?;
        metrics::counter!("clickhouse_rows_written_total", "table" => "cm_calls")
            .increment(calls.len() as u64);
        let (first, last) = time_span(calls.iter().map(|c| c.started_at.timestamp()));
        let around = Stored::Around {
            called: calls.iter().map(|c| c.called.as_str().to_owned()).collect(),
            from: first - SEARCH_MARGIN_S,
            to: last + SEARCH_MARGIN_S,
        };
        self.relink(&around, shutdown).await
    }

    /// Re-links the stored duplicates `which` names against the CmCalls around them,
    /// and writes those whose link changed as new versions.
    ///
    /// Two reads, neither a `FINAL` over `calls` (sorted by client and id, so any
    /// filter on time or number would merge the whole table: 9 s over 10M calls):
    /// the candidates' ids from a table whose order fits the question, then those
    /// calls by id, keeping each one's newest version and checking `which` on it.
    async fn relink(
        &self,
        which: &Stored,
        shutdown: &Shutdown,
    ) -> Result<(), crate::sink::Interrupted> {
        let ids: Vec<(ClientId, CallId)> = self
            .sink
            .fetch::<StoredId>(
                "find duplicates to relink",
                &which.candidates_sql(),
                shutdown,
            )
            .await?
            .iter()
            .filter_map(StoredId::parse)
            .collect();
        let mut rows = Vec::new();
        for sql in runtime::call_lookup::by_id_queries(&ids) {
            rows.extend(
                self.sink
                    .fetch::<CallRow>("read duplicates to relink", &sql, shutdown)
                    .await?,
            );
        }
        let partners: Vec<CallRecord> = runtime::call_lookup::newest_versions(rows)
            .into_values()
            .filter(|call| which.holds(call))
            .collect();
        if partners.is_empty() {
            return Ok(());
        }
        let called: BTreeSet<&str> = partners
            .iter()
            .filter_map(|c| c.called.as_ref().map(|n| n.as_str()))
            .collect();
        let (first, last) = time_span(partners.iter().map(|c| c.started_at.timestamp()));
        let sql = format!(
            "SELECT {CM_CALL_COLUMNS} FROM cm_calls FINAL WHERE called IN ({}) \
             AND started_at >= toDateTime({}) AND started_at <= toDateTime({})",
            runtime::clickhouse::string_list(called),
            first - SEARCH_MARGIN_S,
            last + SEARCH_MARGIN_S
        );
        let candidates: Vec<Candidate> = self
            .sink
            .fetch::<CmCallRow>("read CmCalls", &sql, shutdown)
            .await?
            .into_iter()
            .map(Candidate::from)
            .collect();
        let processed_at = schemas::call::to_whole_seconds(Utc::now());
        let updates: Vec<CallRecord> = partners
            .into_iter()
            .filter_map(|mut call| {
                let rule = self
                    .registry
                    .get(&call.client_id)
                    .map(|i| i.enrichment.duplicates.clone())
                    .unwrap_or_default();
                let found = duplicates::link(&call, &candidates, &rule);
                let unchanged = call.match_method == Some(found.method)
                    && call.cm_call_id == found.cm_call_id
                    && call.match_start_delta_s == found.start_delta_s;
                if unchanged {
                    return None;
                }
                duplicates::apply(&mut call, found);
                settle_status(&mut call);
                call.version += 1;
                call.processed_at = processed_at;
                call.event = Change::Updated;
                Some(call)
            })
            .collect();
        if !updates.is_empty() {
            tracing::info!(
                linked = updates.len(),
                "partner records linked to CallMatrix calls"
            );
            metrics::counter!("processor_cm_links_total", "when" => "after")
                .increment(updates.len() as u64);
            self.sink.write(&updates, &[], shutdown).await?;
        }
        Ok(())
    }
}

/// Which stored duplicates a relink looks at.
enum Stored {
    /// Those on `called` numbers starting in [from, to] (Unix seconds), except the
    /// ones linked by an echoed id (certain already): what a batch of CmCalls may
    /// complete.
    Around {
        called: BTreeSet<String>,
        from: i64,
        to: i64,
    },
    /// Those still pending, processed in the last day: the periodic sweep.
    Pending,
}

impl Stored {
    /// The ids that may hold: a superset, checked again by [`Stored::holds`] on each
    /// call's newest version.
    fn candidates_sql(&self) -> String {
        match self {
            // `calls_by_time` is sorted by (account, start): a time range reads its
            // own granules. A call is a duplicate exactly when its status says so.
            Stored::Around { from, to, .. } => format!(
                "SELECT client_id, toString(id) AS call_id FROM calls_by_time FINAL \
                 WHERE deleted = 0 AND status = 'duplicate' \
                 AND started_at >= toDateTime({from}) AND started_at <= toDateTime({to})"
            ),
            // A plain scan of three columns; any version that was pending.
            Stored::Pending => "SELECT DISTINCT client_id, toString(id) AS call_id FROM calls \
                 WHERE is_duplicate = 1 AND match_method = 'pending' AND processed_at >= now() - 86400"
                .to_owned(),
        }
    }

    fn holds(&self, call: &CallRecord) -> bool {
        if !call.is_duplicate {
            return false;
        }
        match self {
            Stored::Around { called, from, to } => {
                call.match_method != Some(MatchMethod::EchoedId)
                    && call
                        .called
                        .as_ref()
                        .is_some_and(|n| called.contains(n.as_str()))
                    && (*from..=*to).contains(&call.started_at.timestamp())
            }
            Stored::Pending => {
                call.match_method == Some(MatchMethod::Pending)
                    && call.processed_at.timestamp() >= Utc::now().timestamp() - 86_400
            }
        }
    }
}

fn time_span(seconds: impl Iterator<Item = i64>) -> (i64, i64) {
    seconds.fold((i64::MAX, i64::MIN), |(lo, hi), s| (lo.min(s), hi.max(s)))
}

fn invalid(message: &OwnedMessage, error: Option<serde_json::Error>) {
    let error = error
        .map(|e| e.to_string())
        .unwrap_or_else(|| "no key or no payload".into());
    tracing::error!(topic = message.topic(), partition = message.partition(), offset = message.offset(), %error, "invalid CallMatrix message; skipped");
    metrics::counter!("processor_cm_invalid_total").increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::country::Id;

    #[test]
    fn the_sql_sent_is_the_sql_checked_on_current_clickhouse() {
        let client = ClientId::parse("arroyo").unwrap();
        let ids = [
            (client.clone(), CallId::from_external(&client, "a")),
            (client.clone(), CallId::from_external(&client, "b")),
        ];
        let around = Stored::Around {
            called: ["+18885550100".to_owned()].into(),
            from: 1_795_212_000,
            to: 1_795_215_600,
        };
        let mut statements = runtime::call_lookup::by_id_queries(&ids);
        statements.push(around.candidates_sql());
        statements.push(Stored::Pending.candidates_sql());
        runtime::clickhouse::check_sql_snapshot("processor_reads", &statements).unwrap();
    }

    #[test]
    fn a_lookup_keeps_each_calls_newest_version() {
        let at = Utc::now();
        let mut old = crate::enrich::test_call("a", at);
        old.version = 10;
        let mut new = old.clone();
        new.version = 11;
        new.campaign = Some("corrected".into());
        let other = crate::enrich::test_call("b", at);
        let rows = [&new, &old, &new, &other, &old]
            .into_iter()
            .map(CallRow::from)
            .collect();
        let newest = runtime::call_lookup::newest_versions(rows);
        assert_eq!(newest.len(), 2);
        assert_eq!(newest[&old.id].version, 11);
        assert_eq!(newest[&old.id].campaign.as_deref(), Some("corrected"));
    }

    #[test]
    fn a_relink_checks_each_calls_newest_version() {
        let at = Utc::now();
        let number = schemas::E164::parse("+18885550100", Id::US).unwrap();
        let mut call = crate::enrich::test_call("a", at);
        call.called = Some(number);
        call.is_duplicate = true;
        call.match_method = Some(MatchMethod::Pending);
        let around = Stored::Around {
            called: ["+18885550100".to_owned()].into(),
            from: at.timestamp() - 60,
            to: at.timestamp() + 60,
        };
        assert!(around.holds(&call) && Stored::Pending.holds(&call));
        // Linked by an echoed id: certain, never relinked.
        let echoed = CallRecord {
            match_method: Some(MatchMethod::EchoedId),
            ..call.clone()
        };
        assert!(!around.holds(&echoed) && !Stored::Pending.holds(&echoed));
        // Another number, another time, or no longer a duplicate.
        let elsewhere = CallRecord {
            called: Some(schemas::E164::parse("+18885550199", Id::US).unwrap()),
            ..call.clone()
        };
        let later = CallRecord {
            started_at: at + chrono::Duration::seconds(61),
            ..call.clone()
        };
        let plain = CallRecord {
            is_duplicate: false,
            ..call.clone()
        };
        for other in [&elsewhere, &later, &plain] {
            assert!(!around.holds(other), "{other:?}");
        }
        // Pending for more than a day: the sweep has given up on it.
        let old = CallRecord {
            processed_at: at - chrono::Duration::days(2),
            ..call
        };
        assert!(!Stored::Pending.holds(&old));
    }
}
