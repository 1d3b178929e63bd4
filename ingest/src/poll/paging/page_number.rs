//! `page_number`: `{page}` = start, start+1, … until a page has no records.

use super::{Answer, Next, PageVars, Paginator};

pub struct PageNumber {
    pub param: Option<String>,
    pub start: u64,
}

impl Paginator for PageNumber {
    fn first(&self, _resume: Option<&str>) -> PageVars {
        PageVars {
            page: Some(self.start),
            ..PageVars::default()
        }
    }

    fn next(&self, answer: &Answer<'_>, current: &PageVars) -> Option<Next> {
        if answer.records.is_empty() {
            return None;
        }
        let page = current.page.unwrap_or(self.start).checked_add(1)?;
        Some(Next::Vars(PageVars {
            page: Some(page),
            ..PageVars::default()
        }))
    }

    fn params(&self, vars: &PageVars) -> Vec<(String, String)> {
        match (&self.param, vars.page) {
            (Some(param), Some(page)) => vec![(param.clone(), page.to_string())],
            _ => Vec::new(),
        }
    }
}
