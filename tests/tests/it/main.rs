//! Every cross-binary integration test, compiled as one test binary (one link step
//! instead of one per file), a module per area. They run against the real broker
//! and ClickHouse that `deploy/test.sh` starts; see `integration_tests` for the harness.

mod access;
mod account_walls;
mod aggregates;
mod analyst_views;
mod audit_trail;
mod bad_input;
mod batching;
mod broker_outage;
mod call_story;
mod calls_search;
mod config_docs;
mod crash_points;
mod custom_attributes;
mod dashboard_browser;
mod enrichment;
mod grafana_dashboard;
mod hostile_requests;
mod hostile_tenant;
mod imports;
mod integrations_api;
mod keyed_state;
mod late_fields;
mod mapping_drift;
mod mapping_filters;
mod metric_docs;
mod noisy_neighbour;
mod openapi;
mod poison_records;
mod poll_connectors;
mod poll_presets;
mod polling;
mod polling_windows;
mod preview;
mod processor_crash;
mod repartition;
mod replay;
mod schema;
mod secrets_in_logs;
mod sse_library;
mod sse_resume;
mod viewer_tokens;
mod webhook_auth;
mod webhook_forms;
mod webhook_to_api;
