//! Google Sheets links → the URLs that serve the sheet as CSV. A shared link
//! (`/spreadsheets/d/{id}/edit#gid={gid}`, also with `?usp=sharing` or `?gid=`)
//! becomes `/spreadsheets/d/{id}/export?format=csv&gid={gid}`, with the
//! visualization API's `gviz/tq?tqx=out:csv` form as a fallback (it also serves
//! sheets whose owner disabled downloads for viewers). Any other URL is fetched as is.

/// The URLs to try, in order.
pub fn csv_urls(link: &str, sheets_base: &str) -> Vec<String> {
    let Some((id, gid)) = parse_sheet_link(link) else {
        return vec![link.to_owned()];
    };
    let base = sheets_base.trim_end_matches('/');
    vec![
        format!("{base}/spreadsheets/d/{id}/export?format=csv&gid={gid}"),
        format!("{base}/spreadsheets/d/{id}/gviz/tq?tqx=out:csv&gid={gid}"),
    ]
}

/// `(spreadsheet id, sheet gid)` of a Google Sheets link; gid 0 (the first sheet)
/// when the link names none.
fn parse_sheet_link(link: &str) -> Option<(String, String)> {
    let rest = link
        .strip_prefix("https://docs.google.com/spreadsheets/d/")
        .or_else(|| link.strip_prefix("http://docs.google.com/spreadsheets/d/"))?;
    let id: String = rest
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    if id.is_empty() {
        return None;
    }
    let gid = ["#gid=", "?gid=", "&gid="]
        .iter()
        .find_map(|marker| rest.split_once(marker).map(|(_, after)| after))
        .map(|after| {
            after
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .filter(|gid| !gid.is_empty())
        .unwrap_or_else(|| "0".to_owned());
    Some((id, gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "https://docs.google.com";

    #[test]
    fn an_edit_link_becomes_its_export_and_gviz_urls() {
        let urls = csv_urls(
            "https://docs.google.com/spreadsheets/d/1AbC-x_9/edit#gid=123456",
            BASE,
        );
        assert_eq!(
            urls,
            [
                "https://docs.google.com/spreadsheets/d/1AbC-x_9/export?format=csv&gid=123456",
                "https://docs.google.com/spreadsheets/d/1AbC-x_9/gviz/tq?tqx=out:csv&gid=123456",
            ]
        );
    }

    #[test]
    fn sharing_links_and_missing_gids() {
        let urls = csv_urls(
            "https://docs.google.com/spreadsheets/d/XYZ/edit?usp=sharing",
            BASE,
        );
        assert!(urls[0].ends_with("/d/XYZ/export?format=csv&gid=0"));
        let urls = csv_urls(
            "https://docs.google.com/spreadsheets/d/XYZ/edit?usp=sharing&gid=42",
            "http://127.0.0.1:9/",
        );
        assert_eq!(
            urls[0],
            "http://127.0.0.1:9/spreadsheets/d/XYZ/export?format=csv&gid=42"
        );
    }

    #[test]
    fn other_urls_are_fetched_as_they_are() {
        assert_eq!(
            csv_urls("https://example.com/calls.csv", BASE),
            ["https://example.com/calls.csv"]
        );
        assert_eq!(
            csv_urls("https://docs.google.com/spreadsheets/d//edit", BASE).len(),
            1
        );
    }
}
