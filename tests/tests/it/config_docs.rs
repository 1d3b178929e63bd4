//! The configuration reference stays true: every key each binary's config struct
//! has appears in its shipped file under `deploy/config/` and in
//! `docs/configuration.md`, and the shipped files load and validate.

use integration_tests::repo_root;
use serde::Serialize;

/// `section.key` for every leaf (maps such as `kafka.properties` count as one key).
fn keys(value: &serde_json::Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) if !prefix.ends_with("properties") => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                keys(child, &path, out);
            }
        }
        _ => out.push(prefix.to_owned()),
    }
}

fn check<T: Serialize + serde::de::DeserializeOwned + runtime::config::Validate>(binary: &str) {
    let path = repo_root().join(format!("deploy/config/{binary}.toml"));
    let config: T = runtime::config::load(Some(&path), "CONFIG_DOCS_TEST_UNUSED")
        .expect("shipped config loads");
    let mut all = Vec::new();
    keys(&serde_json::to_value(&config).unwrap(), "", &mut all);
    let shipped = std::fs::read_to_string(&path).unwrap();
    let docs = std::fs::read_to_string(repo_root().join("docs/configuration.md")).unwrap();
    for key in all {
        let (section, leaf) = key.split_once('.').unwrap();
        let in_file = shipped.lines().any(|line| {
            let line = line.trim_start_matches(['#', ' ']);
            line.starts_with(&format!("{leaf} =")) || line.starts_with(&format!("{leaf}="))
        });
        assert!(
            in_file,
            "{binary}: key {key} is missing from {}",
            path.display()
        );
        let shared = matches!(section, "kafka" | "clickhouse");
        let documented = docs.contains(&format!("`{key}`"))
            || (shared && docs.contains(&format!("| `{leaf}` |")));
        assert!(
            documented,
            "{binary}: key {key} is missing from docs/configuration.md"
        );
    }
}

#[test]
fn every_config_key_is_shipped_and_documented() {
    check::<ingest::IngestConfig>("ingest");
    check::<processor::ProcessorConfig>("processor");
    check::<api::ApiConfig>("api");
}
