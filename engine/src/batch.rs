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
}

/// What a batch comes to: everything the shell must make durable before it commits.
#[derive(Debug, Default)]
pub struct Processed {
    pub calls: Vec<CallRecord>,
    pub dead_letters: Vec<DeadLetter>,
    /// Records that arrived under another key than their caller's: re-published to
    /// the raw topic under the caller key, processed by the caller's partition owner.
    pub forwards: Vec<(String, Vec<u8>)>,
    /// Old positions in `calls_by_time` of calls a new version moved.
    pub moved: Vec<MovedCallRow>,
}

struct Mapped {
    key: Option<Vec<u8>>,
    envelope: RawEnvelope,
    position: RawPosition,
    mapping: Arc<CompiledMapping>,
    fields: Result<MappedFields, Rejection>,
}

/// One batch in progress.
pub struct Batch {
    processed_at: DateTime<Utc>,
    mapped: Vec<Mapped>,
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
            mapped: Vec::new(),
            out: Processed::default(),
        }
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
                });
            }
            Err(reason) => {
                let letter = dead_letter(&envelope, &position, reason, vec![]);
                self.out.dead_letters.push(letter);
            }
        }
    }

    /// The calls the mapped records name by the partner's id: the shell reads their
    /// stored versions for [`Batch::assemble`].
    pub fn call_ids(&self) -> Vec<(ClientId, CallId)> {
        self.mapped
            .iter()
            .filter_map(|m| {
                let id = m.fields.as_ref().ok()?.call_id?;
                Some((m.envelope.client_id.clone(), id))
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
                    if key.as_deref() != Some(caller_key.as_bytes()) {
                        self.out.forwards.push((caller_key, envelope.to_json()));
                        continue;
                    }
                    if let Some(old) = known.get(&call.id) {
                        self.out.moved.extend(MovedCallRow::tombstone(old, &call));
                    }
                    known.insert(call.id, call.clone());
                    self.out.calls.push(call);
                }
                Err(rejection) => {
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

    pub fn finish(self) -> Processed {
        self.out
    }
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
        };
        let first = envelope(&record).unwrap_err();
        let again = envelope(&record).unwrap_err();
        assert_eq!(first.raw_id, again.raw_id, "a replay replaces its row");
        assert!(first.reason.contains("not an envelope"), "{}", first.reason);
        assert_eq!((first.raw_partition, first.raw_offset), (Some(2), Some(7)));
    }
}
