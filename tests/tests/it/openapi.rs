//! The OpenAPI document and the binaries' route tables say the same: every route a
//! server's table lists is in `docs/openapi.json` under that server, and every path
//! the document lists is routed by the servers it names. (The route tables are the
//! module documentation of `ingest/src/server.rs` and `api/src/server.rs`, next to
//! the code that routes.)

use std::collections::BTreeSet;

use integration_tests::repo_root;

/// `(method, path)` of a `//! | METHOD | /path | what |` table.
fn routes(file: &str) -> BTreeSet<(String, String)> {
    let text = std::fs::read_to_string(repo_root().join(file)).unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("//! |"))
        .filter_map(|row| {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let method = cells.first()?;
            let path = cells.get(1)?;
            (["GET", "POST", "PUT", "DELETE"].contains(method) && path.starts_with('/'))
                .then(|| (method.to_lowercase(), path.to_string()))
        })
        .collect()
}

fn documented(server: &str) -> BTreeSet<(String, String)> {
    let document: serde_json::Value = serde_json::from_str(schemas::openapi::OPENAPI_JSON).unwrap();
    let mut out = BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let served_by = operation["x-served-by"].as_array().unwrap();
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            if served_by.iter().any(|s| s == server) {
                out.insert((method.clone(), path.clone()));
            }
        }
    }
    out
}

#[test]
fn the_document_matches_every_servers_route_table() {
    for (server, file) in [
        ("ingest", "ingest/src/server.rs"),
        ("api", "api/src/server.rs"),
    ] {
        let routed = routes(file);
        assert!(routed.len() >= 5, "{file}: route table not found");
        let documented = documented(server);
        let missing: Vec<_> = routed.difference(&documented).collect();
        let stale: Vec<_> = documented.difference(&routed).collect();
        assert!(
            missing.is_empty(),
            "{server} routes missing from docs/openapi.json: {missing:?}"
        );
        assert!(
            stale.is_empty(),
            "docs/openapi.json lists {server} routes it does not serve: {stale:?}"
        );
    }
    let document: serde_json::Value = serde_json::from_str(schemas::openapi::OPENAPI_JSON).unwrap();
    assert_eq!(document["openapi"], "3.0.3");
}
