//! `link_header`: RFC 8288 web linking, as GitHub's and Retreaver's APIs page:
//! `Link: <https://api.example/calls?page=2>; rel="next", <…>; rel="last"`.

use super::{Answer, Next, PageVars, Paginator};

pub struct LinkHeader;

impl Paginator for LinkHeader {
    fn first(&self, _resume: Option<&str>) -> PageVars {
        PageVars::default()
    }

    fn next(&self, answer: &Answer<'_>, _current: &PageVars) -> Option<Next> {
        answer
            .headers
            .get_all(reqwest::header::LINK)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(next_link)
            .map(Next::Url)
    }
}

/// The target of the `rel="next"` link in one `Link` header value.
fn next_link(header: &str) -> Option<String> {
    // Link values are `<uri>; param; param`, comma separated; a URI may itself hold
    // commas, so split on the `<` that starts each value.
    let mut rest = header;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let close = after.find('>')?;
        let target = &after[..close];
        let params_end = after[close..].find('<').map_or(after.len(), |i| close + i);
        let params = &after[close + 1..params_end];
        let is_next = params.split(';').any(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && value
                    .trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        if is_next && !target.is_empty() {
            return Some(target.to_owned());
        }
        rest = &after[params_end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_rel_next_among_others() {
        assert_eq!(
            next_link(
                r#"<https://a.example/c?page=1>; rel="prev", <https://a.example/c?page=3&x=1,2>; rel="next", <https://a.example/c?page=9>; rel="last""#
            ),
            Some("https://a.example/c?page=3&x=1,2".into())
        );
        assert_eq!(
            next_link("<https://a.example/c?p=2>; rel=next"),
            Some("https://a.example/c?p=2".into())
        );
        assert_eq!(
            next_link(r#"<https://a.example/c?p=2>; title="next"; rel="alternate next""#),
            Some("https://a.example/c?p=2".into())
        );
        assert_eq!(next_link(r#"<https://a.example/c?p=9>; rel="last""#), None);
        assert_eq!(next_link("garbage"), None);
        assert_eq!(
            next_link(
                r#"<http://127.0.0.1:1/calls?page=1>; rel="first", <http://127.0.0.1:1/calls?page=2>; rel="next", <http://127.0.0.1:1/calls?page=3>; rel="last""#
            ),
            Some("http://127.0.0.1:1/calls?page=2".into())
        );
    }

    proptest! {
        #[test]
        fn never_panics(header in ".{0,80}") {
            let _ = next_link(&header);
        }
    }
}
