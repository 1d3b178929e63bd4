//! Shared vocabulary of the pipeline. Every binary and test speaks these types;
//! nothing here does I/O except the migration list, which is embedded SQL text.

pub mod call;
pub mod callmatrix;
pub mod cluster;
pub mod csv_dialect;
pub mod dead_letter;
pub mod digits;
pub mod enrichment;
pub mod envelope;
pub mod ids;
pub mod integration;
pub mod keys;
pub mod limits;
pub mod migrations;
pub mod money;
pub mod openapi;
pub mod path;
pub mod path_slots;
pub mod phone;
pub mod poll;
pub mod presets;
pub mod redact;
pub mod refusal;
pub mod rollup;
pub mod rule;
pub mod rule_reader;
pub mod topics;
pub mod webhook_auth;

pub use call::{CallRecord, CallRow, Source};
pub use dead_letter::{DeadLetter, DeadLetterRow};
pub use envelope::RawEnvelope;
pub use ids::{CallId, ClientId, ClientIdError};
pub use integration::{CanonicalField, FieldRule, Integration, IntegrationError, Mapping};
pub use money::{Money, MoneyError};
pub use path::{FieldPath, PathError};
pub use phone::{PhoneError, E164};
