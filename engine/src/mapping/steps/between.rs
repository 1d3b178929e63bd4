//! `between`: the seconds from `start` to `end`, each read as a timestamp (in the
//! integration's zone when it has none), for a duration a partner sends only as two
//! instants. An end before the start is the field's error.

use std::borrow::Cow;

use serde_json::Value;

use super::{Step, StepContext};
use crate::mapping::coerce;

#[derive(Debug)]
pub struct Between;

impl Step for Between {
    fn apply<'v>(
        &self,
        value: Cow<'v, Value>,
        ctx: &StepContext,
    ) -> Result<Option<Cow<'v, Value>>, String> {
        let Value::Array(pair) = &*value else {
            return Err("between: no instants".into());
        };
        let [start, end] = pair.as_slice() else {
            return Err("between: needs a start and an end".into());
        };
        let read = |v: &Value, name: &str| {
            coerce::timestamp(v, ctx.zone, None)
                .map_err(|e| format!("between: the {name}: {}", e.0))
        };
        let (Some(start), Some(end)) = (read(start, "start")?, read(end, "end")?) else {
            return Ok(None);
        };
        let seconds = (end.instant - start.instant).num_seconds();
        if seconds < 0 {
            return Err(format!(
                "between: the end {} is before the start {}",
                end.instant, start.instant
            ));
        }
        Ok(Some(Cow::Owned(Value::from(seconds))))
    }
}
