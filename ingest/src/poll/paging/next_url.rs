//! `next_url`: the answer's body names the next page's whole URL.

use schemas::path::FieldPath;

use super::{token_text, Answer, Next, PageVars, Paginator};

pub struct NextUrl {
    pub path: FieldPath,
}

impl Paginator for NextUrl {
    fn first(&self, _resume: Option<&str>) -> PageVars {
        PageVars::default()
    }

    fn next(&self, answer: &Answer<'_>, _current: &PageVars) -> Option<Next> {
        self.path
            .lookup(answer.document)
            .and_then(|v| token_text(&v))
            .map(Next::Url)
    }
}
