//! The OpenAPI document of the whole HTTP surface (`docs/openapi.json`), embedded so
//! both ingest and the api serve it at `/api/openapi.json`.

pub const OPENAPI_JSON: &str = include_str!("../../docs/openapi.json");
