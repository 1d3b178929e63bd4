//! Every metric `ingest` emits, by name, with its labels: one place to see them
//! (after PostHog's `metrics_const.rs`). docs/ lists each one; a test checks it.

/// counter; labels: none.
pub const INGEST_IDEMPOTENCY_CONFLICTS_TOTAL: &str = "ingest_idempotency_conflicts_total";
/// counter; labels: `outcome` (`ok`, `network_error`, `refused`, `unauthorized`, `rate_limited`, `server_error`, `client_error`). Every request a poll sends.
pub const INGEST_POLL_REQUESTS_TOTAL: &str = "ingest_poll_requests_total";
/// histogram; labels: none.
pub const INGEST_POLL_RUN_SECONDS: &str = "ingest_poll_run_seconds";
/// counter; labels: `outcome` (`issued`, `refused`). Tokens fetched for polls (OAuth2, session logins).
pub const INGEST_POLL_TOKENS_TOTAL: &str = "ingest_poll_tokens_total";
/// counter; labels: `outcome`.
pub const INGEST_POLL_RUNS_TOTAL: &str = "ingest_poll_runs_total";
/// gauge; labels: `client_id`. How far past its scheduled time a polled integration's next run is and has not started (0 on time; 0 on instances not holding its lease).
pub const INGEST_POLL_LATE_SECONDS: &str = "ingest_poll_late_seconds";
/// counter; labels: none.
pub const INGEST_RATE_LIMITED_TOTAL: &str = "ingest_rate_limited_total";
/// counter; labels: `outcome`.
pub const INGEST_RECORDS_TOTAL: &str = "ingest_records_total";
/// counter; labels: none.
pub const INGEST_REDELIVERIES_TOTAL: &str = "ingest_redeliveries_total";
/// counter; labels: `reason`.
pub const INGEST_UNAUTHORIZED_TOTAL: &str = "ingest_unauthorized_total";
/// counter; labels: `status`.
pub const INGEST_WEBHOOK_REQUESTS_TOTAL: &str = "ingest_webhook_requests_total";
/// histogram; labels: none.
pub const INGEST_WEBHOOK_SECONDS: &str = "ingest_webhook_seconds";

/// counter; labels: none. Compressed bodies refused: they decoded past the body limit.
pub const INGEST_DECOMPRESSION_REFUSED_TOTAL: &str = "ingest_decompression_refused_total";
/// counter; labels: `written` (`yes`, `no`: over the per-minute allowance). Refused webhook deliveries of existing integrations.
pub const INGEST_REFUSALS_TOTAL: &str = "ingest_refusals_total";
