//! One polling run of one integration: from the stored cursor (minus the overlap)
//! to now, page by page, each page's records acknowledged by Kafka before the next
//! page is asked for. Returns the new cursor; the caller stores it, so the cursor
//! only ever covers acknowledged records.

use std::sync::Mutex;

use chrono::{DateTime, Utc};
use schemas::path::FieldPath;
use schemas::poll::template::Vars;
use schemas::poll::{PollConfig, Stop};
use schemas::Integration;
use serde_json::Value;

use super::auth::{authenticator, TokenCache};
use super::budget::Budgets;
use super::decoders::{charset, decoder, DecodeContext};
use super::paging::{paginator, Answer, Next};
use super::request::{self, PageRequest, ShownRequest};
use super::sink::RecordSink;
use crate::outbound::Outbound;
use schemas::redact::redact_url;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunReport {
    pub records: u64,
    pub pages: u64,
    pub requests: u64,
    /// The new cursor: the largest `cursor_field` seen, never before the old one.
    pub cursor: Option<DateTime<Utc>>,
    /// Where the next run resumes paging (`last_record`).
    pub token: Option<String>,
    /// Records of the file read so far (`new_rows_only`).
    pub rows: Option<u64>,
}

/// Where a run starts: the stored cursor and what was stored with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub since: DateTime<Utc>,
    pub token: Option<String>,
    pub rows: Option<u64>,
}

/// What a dry run shows: each request (secrets masked) and the start of each answer.
#[derive(Default)]
pub struct Trace {
    pub requests: Mutex<Vec<ShownRequest>>,
    pub answers: Mutex<Vec<String>>,
}

/// Longest excerpt of an answer a dry run shows.
const ANSWER_EXCERPT: usize = 4096;

pub struct RunContext<'a> {
    pub outbound: &'a Outbound,
    /// Largest response read (decoded bytes).
    pub max_page_bytes: u64,
    pub budgets: &'a Budgets,
    pub tokens: &'a TokenCache,
    pub trace: Option<&'a Trace>,
}

/// Polls `integration` from `start`, sending records to `sink`. `Err` says why the
/// run gave up; records sent before that are stored, and the cursor was not
/// advanced, so the next run reads them again (harmlessly).
pub async fn run<S: RecordSink>(
    ctx: &RunContext<'_>,
    sink: &S,
    integration: &Integration,
    poll: &PollConfig,
    start: Start,
    now: DateTime<Utc>,
) -> Result<RunReport, (String, RunReport)> {
    let mut report = RunReport {
        cursor: Some(start.since),
        token: start.token,
        rows: start.rows,
        ..RunReport::default()
    };
    let from = start.since - chrono::Duration::seconds(poll.overlap_s as i64);
    let uses_until = poll.uses("until");
    let window = chrono::Duration::seconds(poll.window_s.unwrap_or(0) as i64);
    let mut window_start = from;
    loop {
        let window_end = if uses_until {
            (window_start + window).min(now)
        } else {
            now
        };
        let read = match window_run(
            ctx,
            sink,
            integration,
            poll,
            window_start,
            window_end,
            &mut report,
        )
        .await
        {
            Ok(read) => read,
            Err(error) => return Err((error, report)),
        };
        // The cursor may move past a window only as far as nothing unread lies
        // behind it: a whole window, or pages in cursor order (the unread ones
        // can only be newer).
        // (`None` orders before any time, so `max` keeps whichever is known.)
        match read.end {
            WindowEnd::Complete => report.cursor = advance(report.cursor, read.newest, now),
            WindowEnd::MaxPages if read.in_cursor_order => {
                report.cursor = advance(report.cursor, read.newest, now);
                tracing::info!(client_id = %integration.client_id, max_pages = poll.max_pages,
                    "max_pages reached; the next run continues from the cursor");
                return Ok(report);
            }
            WindowEnd::MaxPages => {
                let error = format!(
                    "max_pages ({}) reached and the partner's records are not in {} order, so the cursor \
                     cannot move past unread pages: raise max_pages, or use {{until}} with a smaller window_s",
                    poll.max_pages, poll.cursor_field
                );
                return Err((error, report));
            }
            WindowEnd::FullPage if read.in_cursor_order => {
                report.cursor = advance(report.cursor, read.newest, now);
                tracing::info!(client_id = %integration.client_id, page_limit = ?poll.page_limit,
                    "a full response without paging; the next run continues from the cursor");
                return Ok(report);
            }
            WindowEnd::FullPage => {
                let error = format!(
                    "a response held page_limit ({}) records, so the partner may have left some out, and its \
                     records are not in {} order, so the cursor cannot move past them: configure paging, or \
                     use {{until}} with a smaller window_s",
                    poll.page_limit.unwrap_or_default(),
                    poll.cursor_field
                );
                return Err((error, report));
            }
        }
        if !uses_until || window_end >= now {
            return Ok(report);
        }
        window_start = window_end;
    }
}

/// The cursor after a window: the newest record's time, never backwards and never
/// past `now` (a partner's record stamped in the future would otherwise move the
/// cursor beyond records that have not happened yet, and every later run would
/// skip them). (`None` orders before any time, so `max` keeps whichever is known.)
fn advance(
    cursor: Option<DateTime<Utc>>,
    newest: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    cursor.max(newest.map(|n| n.min(now)))
}

/// How a window's reading ended.
enum WindowEnd {
    /// The partner had no more pages.
    Complete,
    /// `max_pages` pages were read; more may remain.
    MaxPages,
    /// Without paging, a response held `page_limit` records; more may remain.
    FullPage,
}

/// What one window's pages showed.
struct WindowRead {
    end: WindowEnd,
    /// The largest `cursor_field` among the window's records.
    newest: Option<DateTime<Utc>>,
    /// Whether the records came in `cursor_field` order (each no older than the last).
    in_cursor_order: bool,
}

async fn window_run<S: RecordSink>(
    ctx: &RunContext<'_>,
    sink: &S,
    integration: &Integration,
    poll: &PollConfig,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    report: &mut RunReport,
) -> Result<WindowRead, String> {
    let mut read = WindowRead {
        end: WindowEnd::Complete,
        newest: None,
        in_cursor_order: true,
    };
    let records_path = (!poll.records_path.is_empty())
        .then(|| FieldPath::parse(&poll.records_path))
        .transpose()
        .map_err(|e| format!("records_path: {e}"))?;
    let cursor_path =
        FieldPath::parse(&poll.cursor_field).map_err(|e| format!("cursor_field: {e}"))?;
    let pages_style = paginator(&poll.paging)?;
    let auth = authenticator(
        poll.auth.as_ref(),
        ctx.tokens,
        integration.client_id.as_str(),
    );
    let decode = decoder(poll.format);
    let zone: chrono_tz::Tz = integration.timezone.parse().unwrap_or(chrono_tz::UTC);
    let secret_names = poll.all_secret_names();
    let mut vars = pages_style.first(report.token.as_deref());
    let mut next_url: Option<String> = None;
    let mut pages = 0_u32;
    let mut window_records = 0_u64;
    loop {
        if pages >= poll.max_pages {
            read.end = WindowEnd::MaxPages;
            return Ok(read);
        }
        let template_vars = Vars {
            since: Some(since),
            until: Some(until),
            time_format: poll.since_format.clone(),
            page: vars.page,
            offset: vars.offset,
            limit: vars.limit,
            token: vars.token.clone(),
        };
        let page = match &next_url {
            None => PageRequest::build(
                poll,
                &poll.url,
                true,
                &template_vars,
                &pages_style.params(&vars),
            )?,
            Some(url) => {
                same_origin(&poll.url, url, &secret_names)?;
                PageRequest::build(poll, url, false, &template_vars, &[])?
            }
        };
        let fetched = request::send(
            ctx,
            poll,
            &integration.account,
            auth.as_ref(),
            &page,
            &mut report.requests,
        )
        .await?;
        pages += 1;
        report.pages += 1;
        if let Some(trace) = ctx.trace {
            if let Ok(mut answers) = trace.answers.lock() {
                let end = fetched.bytes.len().min(ANSWER_EXCERPT);
                answers.push(String::from_utf8_lossy(&fetched.bytes[..end]).into_owned());
            }
        }
        let content_type = fetched
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let decoded = decode
            .decode(
                &fetched.bytes,
                &DecodeContext {
                    records_path: records_path.as_ref(),
                    csv: &integration.csv,
                    charset: charset(content_type),
                },
            )
            .map_err(|e| format!("{}: {e}", redact_url(page.url.as_str(), &secret_names)))?;
        let mut records = decoded.records;
        if poll.new_rows_only {
            let seen = report.rows.unwrap_or(0);
            let total = records.len() as u64;
            if total >= seen {
                records.drain(..seen as usize);
            } else {
                tracing::warn!(client_id = %integration.client_id, seen, total,
                    "the file is shorter than when last read; reading it whole (ids make repeats harmless)");
            }
            report.rows = Some(total);
        }
        let count = records.len() as u64;
        sink.records(integration, &records).await?;
        sink.rejected(integration, &decoded.rejected).await?;
        report.records += count;
        window_records += count;
        for record in &records {
            if let Some(seen) = cursor_path
                .lookup(record)
                .and_then(|v| parse_time(&v, zone))
            {
                read.in_cursor_order &= read.newest.is_none_or(|newest| seen >= newest);
                read.newest = read.newest.max(Some(seen));
            }
        }
        if let Some(token) = pages_style.resume_token(&records) {
            report.token = Some(token);
        }
        if matches!(poll.paging, schemas::poll::Paging::None)
            && poll.page_limit.is_some_and(|limit| count >= limit)
        {
            read.end = WindowEnd::FullPage;
            return Ok(read);
        }
        let page_number = vars.page.unwrap_or(u64::from(pages));
        let short = poll.stop.page_size.is_some_and(|size| count < size);
        if short || stopped(&poll.stop, &decoded.document, window_records, page_number) {
            return Ok(read);
        }
        let answer = Answer {
            document: &decoded.document,
            headers: &fetched.headers,
            records: &records,
        };
        match pages_style.next(&answer, &vars) {
            None => return Ok(read),
            Some(Next::Vars(next)) => {
                vars = next;
                next_url = None;
            }
            Some(Next::Url(url)) => next_url = Some(url),
        }
    }
}

/// Whether `poll.stop` says the window has no more pages.
fn stopped(stop: &Stop, document: &Value, records: u64, page: u64) -> bool {
    let number = |path: &Option<String>| {
        let value = FieldPath::parse(path.as_deref()?)
            .ok()?
            .lookup(document)?
            .into_owned();
        value
            .as_u64()
            .or_else(|| value.as_str()?.trim().parse().ok())
    };
    let no_more = stop
        .has_more_path
        .as_deref()
        .and_then(|p| {
            FieldPath::parse(p)
                .ok()?
                .lookup(document)
                .map(|v| v.into_owned())
        })
        .is_some_and(|v| v == Value::Bool(false) || v == "false");
    no_more
        || number(&stop.total_path).is_some_and(|total| records >= total)
        || number(&stop.total_pages_path).is_some_and(|pages| page >= pages)
}

/// A next page's URL must stay on the integration's own origin (scheme, host and
/// port), so the poll's credentials never go to a host the partner's answer names.
fn same_origin(configured: &str, next: &str, secret_names: &[String]) -> Result<(), String> {
    let origin = |text: &str| url::Url::parse(text).ok().map(|u| u.origin());
    match (origin(configured), origin(next)) {
        (Some(a), Some(b)) if a == b && a.is_tuple() => Ok(()),
        _ => Err(format!(
            "the next page's URL {} is not on the integration's origin {}; refused (poll credentials stay with their host)",
            redact_url(next, secret_names),
            redact_url(configured, secret_names)
        )),
    }
}

/// The cursor field's time, read as the mapping reads timestamps (every form it
/// knows; zone-less in the integration's zone).
fn parse_time(value: &Value, zone: chrono_tz::Tz) -> Option<DateTime<Utc>> {
    engine::mapping::coerce::timestamp(value, zone, None)
        .ok()
        .flatten()
        .map(|stamped| stamped.instant)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn cursor_values_in_any_form_the_mapping_reads() {
        let at = Utc.with_ymd_and_hms(2026, 11, 20, 23, 46, 30).unwrap();
        let ny = chrono_tz::America::New_York;
        assert_eq!(
            parse_time(&Value::from("2026-11-20T23:46:30Z"), ny),
            Some(at)
        );
        assert_eq!(parse_time(&Value::from(at.timestamp()), ny), Some(at));
        assert_eq!(
            parse_time(&Value::from(at.timestamp_millis()), ny),
            Some(at)
        );
        // Forms the poller's own RFC 3339/epoch reader missed (the cursor stayed put):
        // a US export's local time, read in the integration's zone, and words.
        assert_eq!(
            parse_time(&Value::from("11/20/2026 06:46:30 PM"), ny),
            Some(at)
        );
        assert_eq!(
            parse_time(&Value::from("Fri Nov 20 18:46:30 EST 2026"), ny),
            Some(at)
        );
        assert_eq!(parse_time(&Value::from("yesterday"), ny), None);
    }

    /// Issue "Prove it under faults": a partner's future timestamp moved the cursor
    /// past now (the old rule was `cursor.max(newest)`).
    #[test]
    fn the_cursor_never_moves_past_now_nor_backwards() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        let cursor = Some(now - chrono::Duration::hours(1));
        let future = Some(now + chrono::Duration::days(365));
        assert_eq!(advance(cursor, future, now), Some(now));
        assert_eq!(
            advance(cursor, Some(now - chrono::Duration::hours(2)), now),
            cursor
        );
        assert_eq!(advance(cursor, None, now), cursor);
        assert_eq!(advance(None, future, now), Some(now));
    }

    #[test]
    fn next_pages_stay_on_the_integrations_origin() {
        let configured = "https://api.partner.example/v2/calls";
        assert!(same_origin(
            configured,
            "https://api.partner.example/v2/calls?page=2",
            &[]
        )
        .is_ok());
        for elsewhere in [
            "https://evil.example/v2/calls?page=2",
            "http://api.partner.example/v2/calls",
            "https://api.partner.example:8443/v2/calls",
            "http://127.0.0.1:8123/?query=SELECT+1",
            "not a url",
        ] {
            let error = same_origin(configured, elsewhere, &[]).unwrap_err();
            assert!(error.contains("origin"), "{elsewhere}: {error}");
        }
        let error =
            same_origin(configured, "https://evil.example/?api_key=s3cr3t", &[]).unwrap_err();
        assert!(!error.contains("s3cr3t"), "{error}");
    }
}
