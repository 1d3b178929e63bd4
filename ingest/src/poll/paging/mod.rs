//! Paging styles, one file each, listed in [`paginator`]. A style says what the
//! window's first request carries and, from an answer, what the next one carries
//! or that the window is done. Stop conditions that hold for every style
//! (`poll.stop`) are checked by the run, not here.

mod header_cursor;
mod last_record;
mod link_header;
mod next_cursor;
mod next_url;
mod none;
mod offset;
mod page_number;

use reqwest::header::HeaderMap;
use schemas::path::FieldPath;
use schemas::poll::Paging;
use serde_json::Value;

/// What one request's paging variables are (`{page}`, `{offset}`, `{limit}`,
/// `{token}`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageVars {
    pub page: Option<u64>,
    pub offset: Option<u64>,
    pub limit: Option<u64>,
    pub token: Option<String>,
}

/// One answer, decoded.
pub struct Answer<'a> {
    /// The whole answer (JSON), or `Null` for ndjson and csv answers.
    pub document: &'a Value,
    pub headers: &'a HeaderMap,
    pub records: &'a [Value],
}

/// The next request of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Vars(PageVars),
    /// A whole URL the answer named (followed only on the integration's origin).
    Url(String),
}

pub trait Paginator: Send + Sync {
    /// The window's first request. `resume` is the token stored by the last run
    /// (styles that resume across runs use it).
    fn first(&self, resume: Option<&str>) -> PageVars;

    /// After `answer` to a request made with `current`: the next request, or
    /// `None` when the window has no more pages.
    fn next(&self, answer: &Answer<'_>, current: &PageVars) -> Option<Next>;

    /// Query parameters the style adds (its `param`s).
    fn params(&self, vars: &PageVars) -> Vec<(String, String)> {
        let _ = vars;
        Vec::new()
    }

    /// What to store with the cursor so the next run starts after this one.
    fn resume_token(&self, records: &[Value]) -> Option<String> {
        let _ = records;
        None
    }
}

/// The paginator for `paging` (paths were validated when the integration was saved).
pub fn paginator(paging: &Paging) -> Result<Box<dyn Paginator>, String> {
    let path =
        |name: &str, text: &str| FieldPath::parse(text).map_err(|e| format!("paging.{name}: {e}"));
    Ok(match paging {
        Paging::None => Box::new(none::NoPaging),
        Paging::NextCursor { cursor_path, param } => Box::new(next_cursor::NextCursor {
            path: path("cursor_path", cursor_path)?,
            param: param.clone(),
        }),
        Paging::HeaderCursor { header, param } => Box::new(header_cursor::HeaderCursor {
            header: header.clone(),
            param: param.clone(),
        }),
        Paging::NextUrl { url_path } => Box::new(next_url::NextUrl {
            path: path("url_path", url_path)?,
        }),
        Paging::LinkHeader {} => Box::new(link_header::LinkHeader),
        Paging::LastRecord { field, param } => Box::new(last_record::LastRecord {
            field: path("field", field)?,
            param: param.clone(),
        }),
        Paging::PageNumber { param, start } => Box::new(page_number::PageNumber {
            param: param.clone(),
            start: *start,
        }),
        Paging::Offset {
            param,
            limit_param,
            limit,
        } => Box::new(offset::Offset {
            param: param.clone(),
            limit_param: limit_param.clone(),
            limit: *limit,
        }),
    })
}

/// A token as text: a non-empty string, or a number.
pub(crate) fn token_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn answer_with<'a>(
        document: &'a Value,
        headers: &'a HeaderMap,
        records: &'a [Value],
    ) -> Answer<'a> {
        Answer {
            document,
            headers,
            records,
        }
    }
}
