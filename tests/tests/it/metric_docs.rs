//! Every metric a crate emits is named in its `metric_names.rs` (no name written
//! anywhere else in the code) and documented in docs/.

use integration_tests::repo_root;

/// The names (string values) in a crate's `metric_names.rs`.
fn names(crate_dir: &str) -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join(crate_dir).join("src/metric_names.rs"))
        .unwrap_or_else(|e| panic!("{crate_dir}/src/metric_names.rs: {e}"));
    text.lines()
        .filter_map(|line| line.strip_prefix("pub const "))
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_owned)
        .collect()
}

fn rust_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_metric_is_named_in_one_place_and_documented() {
    let docs: String = std::fs::read_dir(repo_root().join("docs"))
        .unwrap()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    // The engine emits none: it is pure (its decisions are counted by the processor).
    let crates = ["runtime", "ingest", "processor", "api"];
    let mut all = Vec::new();
    for krate in crates {
        let found = names(krate);
        assert!(!found.is_empty(), "{krate} names no metric");
        for name in &found {
            assert!(
                docs.contains(name),
                "metric {name} ({krate}) is not in docs/"
            );
        }
        all.extend(found);
        let mut files = Vec::new();
        rust_files(&repo_root().join(krate).join("src"), &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            for kind in ["counter", "histogram", "gauge"] {
                assert!(
                    !text.contains(&format!("metrics::{kind}!(\"")),
                    "{}: a metric named in place; name it in metric_names.rs",
                    file.display()
                );
            }
        }
    }
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "a metric name is declared twice");
}
