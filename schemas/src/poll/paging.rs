//! How a poll walks a partner's pages, and when it stops. Each style hands the next
//! request its value as a template variable (`{token}`, `{page}`, `{offset}`,
//! `{limit}`; see [`super::template`]) and, when `param` is set, as that query
//! parameter too; a style that names a whole URL (`next_url`, `link_header`) is
//! followed only on the integration's own origin.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Paging {
    /// One request per window.
    #[default]
    None,
    /// The answer's body names the next cursor (`{token}`); none, or the same
    /// again, ends the window.
    NextCursor {
        cursor_path: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        param: Option<String>,
    },
    /// The answer's header names the next cursor (`{token}`).
    HeaderCursor {
        header: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        param: Option<String>,
    },
    /// The answer's body names the next page's full URL.
    NextUrl { url_path: String },
    /// The answer's `Link` header (RFC 8288) names the next page: `rel="next"`.
    LinkHeader {},
    /// The last record's `field` is the next request's `{token}`
    /// (`start_after_id`); an empty page ends the window. The last value read is
    /// stored with the cursor, so the next run starts after it.
    LastRecord {
        field: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        param: Option<String>,
    },
    /// `{page}` = start, start+1, … until a page has no records.
    PageNumber {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        param: Option<String>,
        #[serde(default = "one")]
        start: u64,
    },
    /// `{offset}` = 0, limit, 2·limit … until a page has fewer than `limit` records.
    Offset {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        param: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit_param: Option<String>,
        limit: u64,
    },
}

fn one() -> u64 {
    1
}

/// When a window has no more pages, besides what its paging style says. Any one
/// condition that holds ends it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stop {
    /// A boolean in the answer (`has_more`, `meta.more`): `false` ends the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more_path: Option<String>,
    /// The number of records the window holds (`report.totalCount`): reached ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_path: Option<String>,
    /// The number of pages (`total_pages`): the page number reached ends it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_pages_path: Option<String>,
    /// The page size asked for: a page with fewer records ends the window (Invoca:
    /// "when fewer transactions than the limit are returned").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u64>,
}

impl Stop {
    pub fn is_empty(&self) -> bool {
        self == &Self::default()
    }

    pub fn paths(&self) -> impl Iterator<Item = (&'static str, &String)> {
        [
            ("has_more_path", &self.has_more_path),
            ("total_path", &self.total_path),
            ("total_pages_path", &self.total_pages_path),
        ]
        .into_iter()
        .filter_map(|(name, path)| path.as_ref().map(|p| (name, p)))
    }
}

impl Paging {
    /// The template variable this style feeds, and its `param`.
    pub fn feeds(&self) -> Option<(&'static str, Option<&String>)> {
        match self {
            Self::NextCursor { param, .. }
            | Self::HeaderCursor { param, .. }
            | Self::LastRecord { param, .. } => Some(("token", param.as_ref())),
            Self::PageNumber { param, .. } => Some(("page", param.as_ref())),
            Self::Offset { param, .. } => Some(("offset", param.as_ref())),
            Self::None | Self::NextUrl { .. } | Self::LinkHeader {} => None,
        }
    }

    /// Paths this style reads from records or answers, by field name.
    pub fn paths(&self) -> Vec<(&'static str, &String)> {
        match self {
            Self::NextCursor { cursor_path, .. } => vec![("cursor_path", cursor_path)],
            Self::NextUrl { url_path } => vec![("url_path", url_path)],
            Self::LastRecord { field, .. } => vec![("field", field)],
            _ => vec![],
        }
    }
}
