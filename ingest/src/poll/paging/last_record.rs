//! `last_record`: the next request starts after the last record read
//! (`start_after_transaction_id=…`), and so does the next run.

use schemas::path::FieldPath;
use serde_json::Value;

use super::{token_text, Answer, Next, PageVars, Paginator};

pub struct LastRecord {
    pub field: FieldPath,
    pub param: Option<String>,
}

impl Paginator for LastRecord {
    fn first(&self, resume: Option<&str>) -> PageVars {
        PageVars {
            token: resume.map(str::to_owned),
            ..PageVars::default()
        }
    }

    fn next(&self, answer: &Answer<'_>, current: &PageVars) -> Option<Next> {
        let token = self.resume_token(answer.records)?;
        (current.token.as_ref() != Some(&token)).then(|| {
            Next::Vars(PageVars {
                token: Some(token),
                ..PageVars::default()
            })
        })
    }

    fn params(&self, vars: &PageVars) -> Vec<(String, String)> {
        super::next_cursor::cursor_param(self.param.as_ref(), vars)
    }

    fn resume_token(&self, records: &[Value]) -> Option<String> {
        let last = records.last()?;
        self.field.lookup(last).and_then(|v| token_text(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::answer_with;
    use super::*;
    use serde_json::json;

    #[test]
    fn continues_after_the_last_record_and_stops_on_an_empty_page() {
        let style = LastRecord {
            field: FieldPath::parse("transaction_id").unwrap(),
            param: Some("start_after_transaction_id".into()),
        };
        let headers = Default::default();
        let first = style.first(Some("T100"));
        assert_eq!(
            style.params(&first),
            vec![("start_after_transaction_id".into(), "T100".into())]
        );
        let records = [
            json!({"transaction_id": "T101"}),
            json!({"transaction_id": "T102"}),
        ];
        let next = style.next(&answer_with(&Value::Null, &headers, &records), &first);
        assert_eq!(
            next,
            Some(Next::Vars(PageVars {
                token: Some("T102".into()),
                ..PageVars::default()
            }))
        );
        assert_eq!(
            style.next(&answer_with(&Value::Null, &headers, &[]), &first),
            None
        );
        assert_eq!(style.resume_token(&records).as_deref(), Some("T102"));
    }
}
