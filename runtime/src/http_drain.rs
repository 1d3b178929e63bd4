//! Reading and dropping what a sender still writes after it was refused.
//!
//! An answer given before the body is read (a rate limit, failed credentials, a
//! declared length over the limit) used to close the connection with the body still
//! arriving: the kernel then resets it, and a sender still writing meets "broken
//! pipe" or "connection reset" instead of the answer that names its problem (the
//! noisy-neighbour run's oversized records, docs/reliability.md). As a web server's
//! lingering close does, the body is read and thrown away in the background, up to a
//! bound in bytes and time, so the sender finishes writing and reads the answer;
//! past the bound the connection is closed as before, so that no one is read whole
//! to be told no.

use std::time::Duration;

use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use http_body_util::BodyExt;
use hyper::body::Incoming;

/// At most this much of a refused body is read and dropped (a record over the
/// broker's limit is about 1 MB; a 413 for a body a little over the limit is the
/// common case).
pub const DRAIN_MAX_BYTES: u64 = 2 * 1024 * 1024;

/// A refused body still arriving after this long is cut off.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Whether a body declared as `headers` say is worth reading to drop: when its
/// length is declared, only up to [`DRAIN_MAX_BYTES`]; an undeclared (chunked) body is
/// read until the bound.
fn worth_draining(headers: &HeaderMap) -> bool {
    match headers.get(CONTENT_LENGTH) {
        None => true,
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|length| length <= DRAIN_MAX_BYTES),
    }
}

/// Reads a refused `body` (whose request's head is `headers`) to its end in the
/// background and drops it, up to the bounds; a body declared longer than
/// [`DRAIN_MAX_BYTES`] is dropped at once (its connection cut), as is any body
/// outside a tokio runtime (never in a server).
pub fn drain(body: Incoming, headers: &HeaderMap) {
    if worth_draining(headers) {
        drain_unchecked(body);
    }
}

fn drain_unchecked(body: Incoming) {
    use hyper::body::Body as _;
    if body.is_end_stream() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    runtime.spawn(async move {
        let mut body = body;
        let mut read = 0_u64;
        let reading = async {
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    read += data.len() as u64;
                    if read > DRAIN_MAX_BYTES {
                        break;
                    }
                }
            }
        };
        let _ = tokio::time::timeout(DRAIN_TIME, reading).await;
    });
}

/// A request body a handler may refuse before reading: taken to be read, or, when
/// dropped unread, drained (as [`drain`] would).
pub struct Unread {
    body: Option<Incoming>,
    drain: bool,
}

impl Unread {
    pub fn new(body: Incoming, headers: &HeaderMap) -> Self {
        Self {
            body: Some(body),
            drain: worth_draining(headers),
        }
    }

    /// The body, to be read (no longer drained when dropped).
    pub fn into_body(mut self) -> Incoming {
        // `body` is `Some` from `new` until this, which consumes `self`, or `drop`.
        self.body
            .take()
            .expect("an Unread holds its body until taken")
    }
}

impl Drop for Unread {
    fn drop(&mut self) {
        if let Some(body) = self.body.take() {
            if self.drain {
                drain_unchecked(body);
            }
        }
    }
}
