//! What a rule does to its value after finding it, one file per step, in the
//! order they apply: combining several values (`compute`, `between`), then
//! `extract`, then `replace`. Listed in [`steps`]. A step's error names the step;
//! the mapping reports it as the field's error.

mod between;
mod compute;
mod extract;
mod replace;

use std::borrow::Cow;
use std::sync::Arc;

use chrono_tz::Tz;
use schemas::integration::FieldRule;
use serde_json::Value;

/// What a step may need besides the value.
pub struct StepContext {
    pub zone: Tz,
}

pub trait Step: Send + Sync + std::fmt::Debug {
    /// The value after this step; `Ok(None)` makes the field absent.
    fn apply<'v>(
        &self,
        value: Cow<'v, Value>,
        ctx: &StepContext,
    ) -> Result<Option<Cow<'v, Value>>, String>;
}

/// The steps `rule` asks for, in order.
pub fn steps(rule: &FieldRule) -> Result<Vec<Arc<dyn Step>>, String> {
    let mut steps: Vec<Arc<dyn Step>> = Vec::new();
    if let Some(compute) = &rule.compute {
        steps.push(Arc::new(compute::Compute { op: compute.op }));
    }
    if rule.between.is_some() {
        steps.push(Arc::new(between::Between));
    }
    if let Some(pattern) = &rule.extract {
        steps.push(Arc::new(extract::Extract::new(pattern)?));
    }
    if let Some(replace) = &rule.replace {
        steps.push(Arc::new(replace::Replace::new(
            &replace.pattern,
            &replace.with,
        )?));
    }
    Ok(steps)
}
