//! Crash points: places where a process may be made to die as `kill -9` would
//! (`abort`, no unwinding, no flush), to prove that a crash between two durable
//! steps loses and doubles nothing. Named in `CM_CRASH_POINTS` as
//! `name=N[,name=N…]`: the process aborts the N-th time it reaches `name`. Unset
//! (always, outside fault tests) a crash point is one relaxed atomic load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;

/// The environment variable that arms crash points.
pub const ENV: &str = "CM_CRASH_POINTS";

struct Armed {
    at: HashMap<String, u64>,
    reached: std::sync::Mutex<HashMap<String, u64>>,
}

static ARMED: OnceLock<Option<Armed>> = OnceLock::new();
static ANY: AtomicBool = AtomicBool::new(true);

/// Parses `name=N[,name=N…]`; an entry that is not one is an error naming it.
pub fn parse(spec: &str) -> Result<HashMap<String, u64>, String> {
    spec.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let (name, count) = entry
                .split_once('=')
                .ok_or_else(|| format!("{ENV}: `{entry}` is not name=N"))?;
            let count: u64 = count
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("{ENV}: `{entry}`: N must be a whole number above 0"))?;
            Ok((name.trim().to_owned(), count))
        })
        .collect()
}

fn armed() -> Option<&'static Armed> {
    ARMED
        .get_or_init(|| {
            let spec = std::env::var(ENV).ok()?;
            match parse(&spec) {
                Ok(at) if !at.is_empty() => {
                    tracing::warn!(points = %spec, "crash points armed: this process will abort on purpose");
                    Some(Armed {
                        at,
                        reached: std::sync::Mutex::new(HashMap::new()),
                    })
                }
                Ok(_) => None,
                Err(problem) => {
                    tracing::error!(%problem, "crash points not armed");
                    None
                }
            }
        })
        .as_ref()
}

/// Marks that the process reached `name`; aborts it if this is the armed reach.
pub fn reached(name: &str) {
    if !ANY.load(Ordering::Relaxed) {
        return;
    }
    let Some(armed) = armed() else {
        ANY.store(false, Ordering::Relaxed);
        return;
    };
    let Some(at) = armed.at.get(name) else {
        return;
    };
    let mut reached = armed
        .reached
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let count = reached.entry(name.to_owned()).or_default();
    *count += 1;
    if *count == *at {
        eprintln!("crash point {name} reached the {at}th time: aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_names_points_and_counts() {
        let at = parse("processor.after_calls=2, api.x=1,").unwrap();
        assert_eq!(at.get("processor.after_calls"), Some(&2));
        assert_eq!(at.get("api.x"), Some(&1));
        assert!(parse("x").unwrap_err().contains("`x`"));
        assert!(parse("x=0").unwrap_err().contains("above 0"));
        assert!(parse("x=two").is_err());
    }
}
