//! `offset`: `{offset}` = 0, limit, 2·limit … with `{limit}`, until a page has
//! fewer than `limit` records.

use super::{Answer, Next, PageVars, Paginator};

pub struct Offset {
    pub param: Option<String>,
    pub limit_param: Option<String>,
    pub limit: u64,
}

impl Paginator for Offset {
    fn first(&self, _resume: Option<&str>) -> PageVars {
        PageVars {
            offset: Some(0),
            limit: Some(self.limit),
            ..PageVars::default()
        }
    }

    fn next(&self, answer: &Answer<'_>, current: &PageVars) -> Option<Next> {
        let read = answer.records.len() as u64;
        if read < self.limit {
            return None;
        }
        let offset = current.offset.unwrap_or(0).checked_add(read)?;
        Some(Next::Vars(PageVars {
            offset: Some(offset),
            limit: Some(self.limit),
            ..PageVars::default()
        }))
    }

    fn params(&self, vars: &PageVars) -> Vec<(String, String)> {
        let mut params = Vec::new();
        if let (Some(param), Some(offset)) = (&self.param, vars.offset) {
            params.push((param.clone(), offset.to_string()));
        }
        if let (Some(param), Some(limit)) = (&self.limit_param, vars.limit) {
            params.push((param.clone(), limit.to_string()));
        }
        params
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::answer_with;
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn advances_by_what_was_read_until_a_short_page() {
        let style = Offset {
            param: Some("offset".into()),
            limit_param: Some("size".into()),
            limit: 2,
        };
        let headers = Default::default();
        let first = style.first(None);
        assert_eq!(
            style.params(&first),
            vec![("offset".into(), "0".into()), ("size".into(), "2".into())]
        );
        let full = [json!(1), json!(2)];
        let Some(Next::Vars(second)) =
            style.next(&answer_with(&Value::Null, &headers, &full), &first)
        else {
            panic!("no second page");
        };
        assert_eq!(second.offset, Some(2));
        assert_eq!(
            style.next(&answer_with(&Value::Null, &headers, &full[..1]), &second),
            None
        );
    }
}
