//! `header_cursor`: an answer header names the next page's cursor
//! (`X-Next-Cursor: c2`).

use super::{Answer, Next, PageVars, Paginator};

pub struct HeaderCursor {
    pub header: String,
    pub param: Option<String>,
}

impl Paginator for HeaderCursor {
    fn first(&self, _resume: Option<&str>) -> PageVars {
        PageVars::default()
    }

    fn next(&self, answer: &Answer<'_>, current: &PageVars) -> Option<Next> {
        let token = answer
            .headers
            .get(self.header.as_str())?
            .to_str()
            .ok()?
            .trim()
            .to_owned();
        (!token.is_empty() && current.token.as_ref() != Some(&token)).then(|| {
            Next::Vars(PageVars {
                token: Some(token),
                ..PageVars::default()
            })
        })
    }

    fn params(&self, vars: &PageVars) -> Vec<(String, String)> {
        super::next_cursor::cursor_param(self.param.as_ref(), vars)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::answer_with;
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};
    use serde_json::Value;

    #[test]
    fn reads_the_cursor_from_the_header() {
        let style = HeaderCursor {
            header: "X-Next-Cursor".into(),
            param: None,
        };
        let mut headers = HeaderMap::new();
        headers.insert("x-next-cursor", HeaderValue::from_static("abc"));
        let next = style.next(
            &answer_with(&Value::Null, &headers, &[]),
            &PageVars::default(),
        );
        assert_eq!(
            next,
            Some(Next::Vars(PageVars {
                token: Some("abc".into()),
                ..PageVars::default()
            }))
        );
        assert_eq!(
            style.next(
                &answer_with(&Value::Null, &HeaderMap::new(), &[]),
                &PageVars::default()
            ),
            None
        );
    }
}
