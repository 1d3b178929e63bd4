//! `next_cursor`: the answer's body names the next page's cursor
//! (`{"next_cursor": "eyJwIjoyfQ"}`).

use schemas::path::FieldPath;

use super::{token_text, Answer, Next, PageVars, Paginator};

pub struct NextCursor {
    pub path: FieldPath,
    pub param: Option<String>,
}

impl Paginator for NextCursor {
    fn first(&self, _resume: Option<&str>) -> PageVars {
        PageVars::default()
    }

    fn next(&self, answer: &Answer<'_>, current: &PageVars) -> Option<Next> {
        let token = self
            .path
            .lookup(answer.document)
            .and_then(|v| token_text(&v))?;
        // A partner that names the same cursor again would be read forever.
        (current.token.as_ref() != Some(&token)).then(|| {
            Next::Vars(PageVars {
                token: Some(token),
                ..PageVars::default()
            })
        })
    }

    fn params(&self, vars: &PageVars) -> Vec<(String, String)> {
        cursor_param(self.param.as_ref(), vars)
    }
}

/// `param=token` when both are there.
pub(super) fn cursor_param(param: Option<&String>, vars: &PageVars) -> Vec<(String, String)> {
    match (param, &vars.token) {
        (Some(param), Some(token)) => vec![(param.clone(), token.clone())],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::answer_with;
    use super::*;
    use serde_json::json;

    #[test]
    fn follows_the_cursor_until_it_is_gone_or_repeats() {
        let style = NextCursor {
            path: FieldPath::parse("meta.next").unwrap(),
            param: Some("cursor".into()),
        };
        let headers = Default::default();
        let first = style.first(None);
        let doc = json!({"meta": {"next": "c2"}});
        let Some(Next::Vars(second)) = style.next(&answer_with(&doc, &headers, &[]), &first) else {
            panic!("no next page");
        };
        assert_eq!(style.params(&second), vec![("cursor".into(), "c2".into())]);
        assert_eq!(style.next(&answer_with(&doc, &headers, &[]), &second), None);
        for end in [
            json!({"meta": {"next": null}}),
            json!({"meta": {"next": ""}}),
            json!({}),
        ] {
            assert_eq!(style.next(&answer_with(&end, &headers, &[]), &first), None);
        }
    }
}
