//! Every metric `api` emits, by name, with its labels: one place to see them
//! (after PostHog's `metrics_const.rs`). docs/ lists each one; a test checks it.

/// histogram; labels: `table`.
pub const API_AGGREGATE_SECONDS: &str = "api_aggregate_seconds";
/// counter; labels: `action`.
pub const API_AUDIT_ENTRIES_TOTAL: &str = "api_audit_entries_total";
/// counter; labels: none.
pub const API_AUDIT_FAILURES_TOTAL: &str = "api_audit_failures_total";
/// counter; labels: none.
pub const API_EXPORT_ROWS_TOTAL: &str = "api_export_rows_total";
/// counter; labels: none.
pub const API_PREVIEWS_TOTAL: &str = "api_previews_total";
/// counter; labels: `outcome` (`done`, `failed`).
pub const API_REPLAYS_TOTAL: &str = "api_replays_total";
/// counter; labels: `status`.
pub const API_REQUESTS_TOTAL: &str = "api_requests_total";
/// counter; labels: `table`.
pub const API_ROWS_WITHHELD_TOTAL: &str = "api_rows_withheld_total";
/// gauge; labels: none.
pub const API_SSE_CATCH_UP_WAITING: &str = "api_sse_catch_up_waiting";
/// gauge; labels: none.
pub const API_SSE_CLIENTS: &str = "api_sse_clients";
/// gauge; labels: none. Events the slowest live SSE client of this instance has not taken yet; at the feed's buffer it is dropped (`api_sse_dropped_clients_total`).
pub const API_SSE_SLOWEST_CLIENT_EVENTS: &str = "api_sse_slowest_client_events";
/// counter; labels: none.
pub const API_SSE_DROPPED_CLIENTS_TOTAL: &str = "api_sse_dropped_clients_total";
/// counter; labels: none.
pub const API_SSE_EVENTS_TOTAL: &str = "api_sse_events_total";
/// counter; labels: none.
pub const API_SSE_RESUMES_TOTAL: &str = "api_sse_resumes_total";
/// counter; labels: none. Call versions a stream had sent already (announced twice by the processor after a rebalance), not sent again.
pub const API_SSE_REPEATS_SKIPPED_TOTAL: &str = "api_sse_repeats_skipped_total";
