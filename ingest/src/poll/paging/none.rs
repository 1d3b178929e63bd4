//! `none`: one request per window.

use super::{Answer, Next, PageVars, Paginator};

pub struct NoPaging;

impl Paginator for NoPaging {
    fn first(&self, _resume: Option<&str>) -> PageVars {
        PageVars::default()
    }

    fn next(&self, _answer: &Answer<'_>, _current: &PageVars) -> Option<Next> {
        None
    }
}
