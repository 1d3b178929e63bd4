//! The processor's batch step, without its IO. The shell (the processor) feeds it:
//!
//! 1. each raw record ([`RawRecord`]) with the compiled mapping of its integration
//!    (or why there is none): [`Batch::push`]. Unreadable records and records
//!    without a mapping become dead letters here.
//! 2. the stored calls the batch's records name ([`Batch::call_ids`], read by the
//!    shell): [`Batch::assemble`] merges late fields over them and decides which
//!    records belong to another caller's partition (forwards).
//! 3. repeat and CallMatrix decisions ([`crate::enrich::Enricher`]) over the
//!    histories and candidates the shell reads for [`Batch::calls`].
//! 4. the stored calls whose repeat decision changed: [`Batch::redecide`].
//!
//! [`Batch::finish`] then says what to write ([`Processed`]). The shell writes it,
//! and commits.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use schemas::call::{MovedCallRow, RawPosition};
use schemas::dead_letter::Stage;
use schemas::{CallId, CallRecord, ClientId, DeadLetter, RawEnvelope, Source};

use crate::enrich::{self, Redecided};
use crate::mapping::{assemble, map_fields, CompiledMapping, MappedFields, Rejection};

/// A record as the raw topic held it.
#[derive(Debug, Clone)]
pub struct RawRecord<'a> {
    /// The Kafka key it was published under.
    pub key: Option<&'a [u8]>,
    pub payload: &'a [u8],
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// How many times the record was parked already (see [`Parked`]).
    pub parked: u32,
}

/// What a batch comes to: everything the shell must make durable before it commits.
#[derive(Debug, Default)]
pub struct Processed {
    pub calls: Vec<CallRecord>,
    pub dead_letters: Vec<DeadLetter>,
    /// Records that arrived under another key than their caller's, or in another
    /// partition than the one their caller's key maps to: re-published to the raw
    /// topic under the caller key, processed by the caller's partition owner.
    pub forwards: Vec<Forward>,
    /// Old positions in `calls_by_time` of calls a new version moved.
    pub moved: Vec<MovedCallRow>,
    /// Later parts of calls not stored yet, to be tried again after a delay.
    pub parked: Vec<Parked>,
    /// Records a mapping's filter dropped on purpose.
    pub filtered: Vec<Filtered>,
}

/// A record a filter dropped, by its reason (no payload is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filtered {
    pub account: String,
    pub client_id: ClientId,
    pub reason: String,
    pub raw_id: uuid::Uuid,
    pub received_at: DateTime<Utc>,
}

/// A call a record of the batch names (see [`Batch::named_calls`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedCall {
    pub client_id: ClientId,
    pub id: CallId,
    /// The raw partition the record came in.
    pub partition: i32,
    pub has_caller: bool,
    pub started_at: Option<DateTime<Utc>>,
}

/// A record re-published to its caller's partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Forward {
    pub key: String,
    pub payload: Vec<u8>,
    /// The partition the key maps to, when the batch knows the raw topic's
    /// partition count ([`Batch::with_raw_partitions`]): sent there explicitly, so a
    /// producer whose view of the count is older cannot send it back.
    pub partition: Option<i32>,
}

/// A record that named a call not stored yet (a late payout that overtook its
/// call: another ingest instance, a retry, a CSV row before the webhook). It is
/// tried again later, up to a bound, before it becomes a dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parked {
    /// The Kafka key it arrived under (its caller's key, or ingest's).
    pub key: Option<Vec<u8>>,
    /// The envelope, as the raw topic held it.
    pub payload: Vec<u8>,
    /// The times it has been parked, this one included.
    pub parked: u32,
}

struct Mapped {
    key: Option<Vec<u8>>,
    envelope: RawEnvelope,
    position: RawPosition,
    mapping: Arc<CompiledMapping>,
    fields: Result<MappedFields, Rejection>,
    parked: u32,
}

/// One batch in progress.
pub struct Batch {
    processed_at: DateTime<Utc>,
    /// How many times a record waiting for its call is parked before it becomes a
    /// dead letter; 0 dead-letters it at once.
    max_parks: u32,
    /// The raw topic's partition count, when known: a record outside the partition
    /// its caller's key maps to is forwarded, not decided (see `with_raw_partitions`).
    raw_partitions: Option<i32>,
    /// The broker's message limit: every message made from the batch fits it.
    max_message_bytes: usize,
    mapped: Vec<Mapped>,
    /// Stored calls the linker asked to match again.
    relinks: Vec<(ClientId, CallId)>,
    /// The stored versions of the relinked calls this batch re-decides: a relink
    /// that changes nothing writes nothing.
    relinked: HashMap<CallId, CallRecord>,
    out: Processed,
}

/// The envelope in a raw record, or the dead letter that says it is not one.
pub fn envelope(record: &RawRecord<'_>) -> Result<RawEnvelope, Box<DeadLetter>> {
    serde_json::from_slice(record.payload).map_err(|e| Box::new(unreadable(record, &e.to_string())))
}

impl Batch {
    pub fn new(processed_at: DateTime<Utc>) -> Self {
        Self {
            processed_at,
            max_parks: 0,
            raw_partitions: None,
            max_message_bytes: schemas::limits::DEFAULT_MAX_MESSAGE_BYTES,
            mapped: Vec::new(),
            relinks: Vec::new(),
            relinked: HashMap::new(),
            out: Processed::default(),
        }
    }

    /// Parks records waiting for their call up to `max_parks` times.
    pub fn with_parking(mut self, max_parks: u32) -> Self {
        self.max_parks = max_parks;
        self
    }

    /// The raw topic has `partitions` partitions now. A record in another partition
    /// than the one its caller's key maps to (`schemas::topics::partition_for`, the
    /// producers' partitioner) is forwarded there instead of decided here: after
    /// the topic gained partitions, a caller's older records still wait in the
    /// partition the old count sent them to, while its new ones go to the new one;
    /// forwarding keeps every decision about a caller with one partition's owner.
    pub fn with_raw_partitions(mut self, partitions: i32) -> Self {
        self.raw_partitions = Some(partitions).filter(|n| *n > 0);
        self
    }

    /// Every message the batch makes (dead letters, events, forwards, parked
    /// records) fits `max_bytes`: a message that does not is refused for good by
    /// the producer, and its batch could never be committed.
    pub fn with_message_limit(mut self, max_bytes: usize) -> Self {
        self.max_message_bytes = max_bytes;
        self
    }

    /// Whether a record re-published as `payload` under `key` (with the park
    /// headers) would be over the message limit: only a record that entered by
    /// another way than the edge, which refuses such records, can be.
    fn too_large_to_republish(&self, key: usize, payload: usize) -> Option<String> {
        let room = self
            .max_message_bytes
            .saturating_sub(schemas::limits::MESSAGE_OVERHEAD_BYTES);
        (key + payload > room).then(|| {
            format!(
                "the record's envelope is {payload} bytes; at most {room} can be sent on (the broker's message limit)"
            )
        })
    }

    /// A record whose envelope could not be read.
    pub fn unreadable(&mut self, letter: DeadLetter) {
        self.out.dead_letters.push(letter);
    }

    /// A record with its integration's mapping, or why it has none.
    pub fn push(
        &mut self,
        record: &RawRecord<'_>,
        envelope: RawEnvelope,
        mapping: Result<Arc<CompiledMapping>, String>,
    ) {
        let position = RawPosition {
            raw_id: envelope.raw_id,
            topic: record.topic.to_owned(),
            partition: record.partition,
            offset: record.offset,
        };
        match mapping {
            Ok(mapping) => {
                let fields = map_fields(&mapping, &envelope);
                self.mapped.push(Mapped {
                    key: record.key.map(<[u8]>::to_vec),
                    envelope,
                    position,
                    mapping,
                    fields,
                    parked: record.parked,
                });
            }
            Err(reason) => {
                let letter = dead_letter(&envelope, &position, reason, vec![]);
                self.out.dead_letters.push(letter);
            }
        }
    }

    /// A stored call to match against CallMatrix's calls again (the linker's
    /// request, see `schemas::callmatrix::RelinkRequest`).
    pub fn relink(&mut self, client: ClientId, id: CallId) {
        self.relinks.push((client, id));
    }

    /// The calls the mapped records name and the relinked calls: the shell reads
    /// their stored versions for [`Batch::assemble`].
    pub fn call_ids(&self) -> Vec<(ClientId, CallId)> {
        self.mapped
            .iter()
            .filter_map(|m| {
                let id = m.fields.as_ref().ok()?.call_id?;
                Some((m.envelope.client_id.clone(), id))
            })
            .chain(self.relinks.iter().cloned())
            .collect()
    }

    /// The calls the mapped records name, with what the shell needs to tell where
    /// their stored version may be: a record without a caller arrives under its
    /// call's id, in whatever partition that maps to; one without a start, or with
    /// a start older than the state keeps, may name a call only ClickHouse holds.
    pub fn named_calls(&self) -> Vec<NamedCall> {
        self.mapped
            .iter()
            .filter_map(|m| {
                let fields = m.fields.as_ref().ok()?;
                Some(NamedCall {
                    client_id: m.envelope.client_id.clone(),
                    id: fields.call_id?,
                    partition: m.position.partition,
                    has_caller: fields.has_caller(),
                    started_at: fields.started_at(),
                })
            })
            .collect()
    }

    /// Builds each record's call over the call as it stands (`stored`, or made by an
    /// earlier record of this batch), so a late field updates its call. A record
    /// whose caller key is not the key it arrived under is forwarded instead.
    pub fn assemble(&mut self, mut known: HashMap<CallId, CallRecord>) {
        for mapped in std::mem::take(&mut self.mapped) {
            let Mapped {
                key,
                envelope,
                position,
                mapping,
                fields,
                parked,
            } = mapped;
            let assembled = fields.and_then(|fields| {
                let base = fields.call_id.and_then(|id| known.get(&id));
                assemble(
                    &mapping,
                    &envelope,
                    fields,
                    base,
                    position.clone(),
                    self.processed_at,
                )
            });
            match assembled {
                Ok(call) => {
                    let caller_key = enrich::key_of(&call);
                    let home = self
                        .raw_partitions
                        .map(|n| schemas::topics::partition_for(caller_key.as_bytes(), n));
                    let elsewhere = home.is_some_and(|home| home != position.partition);
                    if key.as_deref() != Some(caller_key.as_bytes()) || elsewhere {
                        let payload = envelope.to_json();
                        if let Some(reason) =
                            self.too_large_to_republish(caller_key.len(), payload.len())
                        {
                            self.out.dead_letters.push(dead_letter(
                                &envelope,
                                &position,
                                reason,
                                vec![],
                            ));
                            continue;
                        }
                        self.out.forwards.push(Forward {
                            key: caller_key,
                            payload,
                            partition: home,
                        });
                        continue;
                    }
                    if let Some(old) = known.get(&call.id) {
                        self.out.moved.extend(MovedCallRow::tombstone(old, &call));
                    }
                    known.insert(call.id, call.clone());
                    self.out.calls.push(call);
                }
                Err(rejection) if rejection.filtered.is_some() => {
                    self.out.filtered.push(Filtered {
                        account: mapping.integration.account.clone(),
                        client_id: envelope.client_id.clone(),
                        reason: rejection.filtered.unwrap_or_default(),
                        raw_id: envelope.raw_id,
                        received_at: envelope.received_at,
                    });
                }
                Err(mut rejection)
                    if rejection.unknown_call.is_some() && parked < self.max_parks =>
                {
                    let payload = envelope.to_json();
                    if let Some(too_large) =
                        self.too_large_to_republish(key.as_ref().map_or(0, Vec::len), payload.len())
                    {
                        rejection.reason =
                            format!("{} (not parked: {too_large})", rejection.reason);
                        let errors = rejection.errors.iter().map(ToString::to_string).collect();
                        self.out.dead_letters.push(dead_letter(
                            &envelope,
                            &position,
                            rejection.reason,
                            errors,
                        ));
                        continue;
                    }
                    tracing::debug!(client_id = %envelope.client_id, raw_id = %envelope.raw_id, parked, "record waits for its call");
                    self.out.parked.push(Parked {
                        key,
                        payload,
                        parked: parked + 1,
                    });
                }
                Err(mut rejection) => {
                    if rejection.unknown_call.is_some() && parked > 0 {
                        rejection.reason = format!(
                            "{} (tried again {parked} times while waiting for it)",
                            rejection.reason
                        );
                    }
                    tracing::debug!(client_id = %envelope.client_id, raw_id = %envelope.raw_id, reason = %rejection.reason, "record dead-lettered");
                    let errors = rejection.errors.iter().map(ToString::to_string).collect();
                    self.out.dead_letters.push(dead_letter(
                        &envelope,
                        &position,
                        rejection.reason,
                        errors,
                    ));
                }
            }
        }
        self.add_relinked(&known);
    }

    /// Adds the next version of each relinked call not already in the batch, for the
    /// enrichment to decide again (a call a record of this batch updates is
    /// decided again anyway). Called after [`Batch::assemble`].
    fn add_relinked(&mut self, known: &HashMap<CallId, CallRecord>) {
        for (_, id) in std::mem::take(&mut self.relinks) {
            let in_batch = self.out.calls.iter().any(|c| c.id == id);
            let Some(stored) = known.get(&id).filter(|_| !in_batch) else {
                continue;
            };
            if self.relinked.contains_key(&id) {
                continue;
            }
            let mut next = stored.clone();
            next.version = stored.version.saturating_add(1);
            next.processed_at = schemas::call::to_whole_seconds(self.processed_at);
            next.event = schemas::call::Change::Updated;
            self.relinked.insert(id, stored.clone());
            self.out.calls.push(next);
        }
    }

    /// The batch's calls, for the enrichment decisions.
    pub fn calls_mut(&mut self) -> &mut [CallRecord] {
        &mut self.out.calls
    }

    /// Adds the next version of each stored call whose repeat decision changed
    /// (`changed`, from `Enricher::decide_repeats`), over its stored version
    /// (`stored`, read by the shell); a call no longer stored is left alone.
    pub fn redecide(&mut self, changed: Vec<Redecided>, stored: &HashMap<CallId, CallRecord>) {
        for change in changed {
            if let Some(call) = stored.get(&change.id) {
                self.out.calls.push(enrich::redecided(
                    call.clone(),
                    change.repeat,
                    self.processed_at,
                ));
            }
        }
    }

    pub fn finish(mut self) -> Processed {
        // A relink that changed nothing is not a new version.
        let relinked = std::mem::take(&mut self.relinked);
        self.out.calls.retain(|call| {
            relinked
                .get(&call.id)
                .is_none_or(|stored| !same_but_version(stored, call))
        });
        let max = self.max_message_bytes;
        self.out.dead_letters = std::mem::take(&mut self.out.dead_letters)
            .into_iter()
            .map(|letter| letter.fit_within(max))
            .collect();
        for call in &mut self.out.calls {
            fit_call(call, max);
        }
        self.out
    }
}

/// A call's event must fit the message limit. Mapped text is bounded (1 KB a field,
/// 64 tags), so only a call from an older mapping or a foreign producer can be over
/// it: its tags and warnings go, with a warning that says so.
fn fit_call(call: &mut CallRecord, max: usize) {
    let room = max.saturating_sub(schemas::limits::MESSAGE_OVERHEAD_BYTES);
    let size = serde_json::to_vec(&*call).map_or(0, |v| v.len());
    if size > room {
        call.tags.clear();
        call.warnings = vec![format!(
            "tags and warnings dropped: the call's event was {size} bytes, over the {room}-byte message limit"
        )];
    }
}

/// Whether `next` says the same as `stored`, but for its version stamp.
fn same_but_version(stored: &CallRecord, next: &CallRecord) -> bool {
    let restamped = CallRecord {
        version: stored.version,
        processed_at: stored.processed_at,
        event: stored.event,
        ..next.clone()
    };
    &restamped == stored
}

/// The dead letter of a record the mapping refused.
pub fn dead_letter(
    envelope: &RawEnvelope,
    position: &RawPosition,
    reason: String,
    errors: Vec<String>,
) -> DeadLetter {
    DeadLetter {
        raw_id: envelope.raw_id,
        client_id: envelope.client_id.clone(),
        source: envelope.source,
        stage: Stage::Mapping,
        reason,
        errors,
        received_at: schemas::call::to_whole_seconds(envelope.received_at),
        failed_at: schemas::call::to_whole_seconds(Utc::now()),
        raw_partition: Some(position.partition),
        raw_offset: Some(position.offset),
        payload: envelope.payload.get().to_owned(),
        truncated: None,
    }
}

/// A raw-topic message that is not an envelope: only a foreign producer writes
/// those. Kept with a name-based id so a replay does not add a second row.
fn unreadable(record: &RawRecord<'_>, error: &str) -> DeadLetter {
    let payload = String::from_utf8_lossy(record.payload).into_owned();
    let key = format!("{}/{}/{}", record.topic, record.partition, record.offset);
    let unknown = ClientId::parse("unknown")
        .unwrap_or_else(|_| unreachable!("\"unknown\" is a valid client id"));
    let now = schemas::call::to_whole_seconds(Utc::now());
    DeadLetter {
        raw_id: schemas::ids::raw_record_id(&unknown, &key),
        client_id: unknown,
        source: Source::Webhook,
        stage: Stage::Mapping,
        reason: format!("raw message is not an envelope: {error}"),
        errors: vec![],
        received_at: now,
        failed_at: now,
        raw_partition: Some(record.partition),
        raw_offset: Some(record.offset),
        payload,
        truncated: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_that_is_no_envelope_is_a_dead_letter_with_a_stable_id() {
        let record = RawRecord {
            key: None,
            payload: b"not json",
            topic: "calls.raw",
            partition: 2,
            offset: 7,
            parked: 0,
        };
        let first = envelope(&record).unwrap_err();
        let again = envelope(&record).unwrap_err();
        assert_eq!(first.raw_id, again.raw_id, "a replay replaces its row");
        assert!(first.reason.contains("not an envelope"), "{}", first.reason);
        assert_eq!((first.raw_partition, first.raw_offset), (Some(2), Some(7)));
    }

    fn arroyo() -> Arc<CompiledMapping> {
        let all: Vec<schemas::Integration> =
            serde_json::from_str(include_str!("../../deploy/integrations/samples.json")).unwrap();
        let arroyo = all
            .iter()
            .find(|i| i.client_id.as_str() == "arroyo")
            .unwrap();
        Arc::new(CompiledMapping::compile(arroyo).unwrap())
    }

    /// A late payout of a call never stored, parked `parked` times already, through
    /// a batch that parks up to 3 times.
    fn late_payout(parked: u32) -> Processed {
        let envelope = RawEnvelope {
            raw_id: uuid::Uuid::from_u128(9),
            client_id: ClientId::parse("arroyo").unwrap(),
            source: Source::Webhook,
            received_at: Utc::now(),
            idempotency_key: String::new(),
            integration_version: 1,
            payload: serde_json::value::RawValue::from_string(
                r#"{"call": {"id": "ar_later", "payout": "$5.00"}}"#.to_owned(),
            )
            .unwrap(),
        };
        let json = envelope.to_json();
        let record = RawRecord {
            key: Some(b"acme/+14155552671"),
            payload: &json,
            topic: "calls.raw",
            partition: 0,
            offset: 1,
            parked,
        };
        let mut batch = Batch::new(Utc::now()).with_parking(3);
        batch.push(&record, envelope, Ok(arroyo()));
        batch.assemble(HashMap::new());
        batch.finish()
    }

    #[test]
    fn a_late_field_before_its_call_is_parked_then_dead_lettered_with_why() {
        let first = late_payout(0);
        assert!(first.dead_letters.is_empty(), "{:?}", first.dead_letters);
        assert_eq!(first.parked.len(), 1);
        assert_eq!(first.parked[0].parked, 1);
        assert_eq!(
            first.parked[0].key.as_deref(),
            Some(&b"acme/+14155552671"[..])
        );
        let back: RawEnvelope = serde_json::from_slice(&first.parked[0].payload).unwrap();
        assert_eq!(
            back.raw_id,
            uuid::Uuid::from_u128(9),
            "the same record, intact"
        );

        assert_eq!(late_payout(2).parked[0].parked, 3);
        let last = late_payout(3);
        assert!(last.parked.is_empty());
        assert_eq!(last.dead_letters.len(), 1);
        let reason = &last.dead_letters[0].reason;
        assert!(
            reason.contains("no earlier record of call") && reason.contains("3 times"),
            "{reason}"
        );
    }
}
