//! The one way ingest makes a request on an account's behalf.
//!
//! Each hop is resolved first, and every address it resolves to is checked (with
//! its port) before anything is sent: refused when it is not public (see
//! `address.rs`) and not on the operator's allow-list. The connection is then
//! pinned to the checked addresses, so a name that resolves differently a moment
//! later (DNS rebinding) cannot move it. Redirects are followed here, hop by hop,
//! each checked the same way; a hop to another origin drops the credentials.
//! Bodies are read with a byte cap. Errors quote URLs redacted.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, LOCATION};
use reqwest::{Method, StatusCode};
use schemas::redact::{is_secret_name, redact_url};
use url::{Host, Url};

use super::address::{classify, Refused};
use super::allow::AllowList;

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{url}: {problem}")]
    BadUrl { url: String, problem: String },
    #[error("{url}: {host} is {address}, which is {why}: requests made for an account may not reach our own network (an operator can allow an address with outbound.allow)")]
    Refused {
        url: String,
        host: String,
        address: SocketAddr,
        why: Refused,
    },
    #[error("{url}: cannot resolve {host}: {message}")]
    Resolve {
        url: String,
        host: String,
        message: String,
    },
    #[error("{url}: more than {limit} redirects")]
    TooManyRedirects { url: String, limit: u32 },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error("{url}: the response is larger than {limit} bytes (outbound limit)")]
    TooLarge { url: String, limit: u64 },
}

impl OutboundError {
    /// Whether trying again later may succeed (network trouble), as opposed to a
    /// request that is refused whatever happens.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Http { .. } | Self::Resolve { .. })
    }
}

/// A request to make: the URL already carries its query.
pub struct OutboundRequest<'a> {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub timeout: Duration,
    /// Header and query names whose values are secret besides the usual ones.
    pub secret_names: &'a [String],
    /// Sent as is (the caller sets `Content-Type`); dropped when a redirect turns
    /// the request into a GET.
    pub body: Option<bytes::Bytes>,
}

#[derive(Debug, Clone)]
pub struct Outbound {
    allow: AllowList,
    max_redirects: u32,
}

impl Outbound {
    pub fn new(allow: AllowList, max_redirects: u32) -> Self {
        Self {
            allow,
            max_redirects,
        }
    }

    /// Sends `request`, following redirects; every hop checked before it is sent.
    pub async fn send(
        &self,
        request: OutboundRequest<'_>,
    ) -> Result<reqwest::Response, OutboundError> {
        let OutboundRequest {
            mut method,
            mut url,
            mut headers,
            timeout,
            secret_names,
            mut body,
        } = request;
        let shown = |url: &Url| redact_url(url.as_str(), secret_names);
        for _ in 0..=self.max_redirects {
            let addresses = self.check(&url, secret_names).await?;
            let mut client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .connect_timeout(Duration::from_secs(10))
                .timeout(timeout);
            if let Some(Host::Domain(domain)) = url.host() {
                client = client.resolve_to_addrs(domain, &addresses);
            }
            let client = client.build().map_err(|e| OutboundError::Http {
                url: shown(&url),
                message: chain(&e),
            })?;
            let mut builder = client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let Some(body) = &body {
                builder = builder.body(body.clone());
            }
            let response = builder.send().await.map_err(|e| OutboundError::Http {
                url: shown(&url),
                message: chain(&e),
            })?;
            let Some(next) = redirect_target(&url, &response) else {
                return Ok(response);
            };
            let next = next.map_err(|problem| OutboundError::BadUrl {
                url: shown(&url),
                problem,
            })?;
            if next.origin() != url.origin() {
                // Credentials were given for the first host, not for wherever it sends us.
                let names: Vec<_> = headers.keys().cloned().collect();
                for name in names {
                    if is_secret_name(name.as_str(), secret_names) {
                        headers.remove(&name);
                    }
                }
            }
            if response.status() == StatusCode::SEE_OTHER
                || (method == Method::POST
                    && matches!(
                        response.status(),
                        StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND
                    ))
            {
                method = Method::GET;
                body = None;
            }
            url = next;
        }
        Err(OutboundError::TooManyRedirects {
            url: shown(&url),
            limit: self.max_redirects,
        })
    }

    /// The addresses `url` may be reached at: every one it resolves to, each public
    /// or allow-listed (with its port), or the first that is not.
    pub async fn check(
        &self,
        url: &Url,
        secret_names: &[String],
    ) -> Result<Vec<SocketAddr>, OutboundError> {
        let shown = || redact_url(url.as_str(), secret_names);
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::BadUrl {
                url: shown(),
                problem: format!("scheme {:?} is not http or https", url.scheme()),
            });
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let host = url.host().ok_or_else(|| OutboundError::BadUrl {
            url: shown(),
            problem: "no host".into(),
        })?;
        let addresses: Vec<SocketAddr> = match host {
            Host::Ipv4(ip) => vec![SocketAddr::new(ip.into(), port)],
            Host::Ipv6(ip) => vec![SocketAddr::new(ip.into(), port)],
            Host::Domain(domain) => {
                let resolve_error = |message: String| OutboundError::Resolve {
                    url: shown(),
                    host: domain.to_owned(),
                    message,
                };
                let found = tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio::net::lookup_host((domain, port)),
                )
                .await
                .map_err(|_| resolve_error("timed out".into()))?
                .map_err(|e| resolve_error(e.to_string()))?;
                let found: Vec<SocketAddr> = found.collect();
                if found.is_empty() {
                    return Err(resolve_error("no addresses".into()));
                }
                found
            }
        };
        for address in &addresses {
            if let Some(why) = classify(address.ip()) {
                if !self.allow.covers(*address) {
                    return Err(OutboundError::Refused {
                        url: shown(),
                        host: host.to_string(),
                        address: *address,
                        why,
                    });
                }
            }
        }
        Ok(addresses)
    }
}

/// Where a redirect answer points, resolved against the URL that answered it.
fn redirect_target(url: &Url, response: &reqwest::Response) -> Option<Result<Url, String>> {
    if !response.status().is_redirection() {
        return None;
    }
    let location = response.headers().get(LOCATION)?;
    Some(
        location
            .to_str()
            .map_err(|_| "the redirect's Location is not text".to_owned())
            .and_then(|l| {
                url.join(l)
                    .map_err(|e| format!("the redirect's Location is not a URL: {e}"))
            }),
    )
}

/// An HTTP client error and its causes, without the URL (which callers show
/// redacted): reqwest's own text would print the URL with its query.
fn chain(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else if error.is_connect() {
        "could not connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&schemas::redact::scrub(&cause.to_string(), &[]));
        source = cause.source();
    }
    text
}

/// The whole body, refused once it passes `limit` bytes (checked as it streams, so
/// a huge answer costs at most `limit` bytes of memory).
pub async fn read_capped(
    response: reqwest::Response,
    limit: u64,
    shown_url: &str,
) -> Result<Bytes, OutboundError> {
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(OutboundError::TooLarge {
            url: shown_url.to_owned(),
            limit,
        });
    }
    let mut body = Vec::new();
    let mut stream = capped_stream(response, limit, shown_url.to_owned());
    while let Some(chunk) = stream.next().await {
        body.extend_from_slice(&chunk?);
    }
    Ok(body.into())
}

/// The body as a stream that ends with `TooLarge` once it passes `limit` bytes.
pub fn capped_stream(
    response: reqwest::Response,
    limit: u64,
    shown_url: String,
) -> impl Stream<Item = Result<Bytes, OutboundError>> {
    // (bytes seen, whether the stream already ended with an error)
    response
        .bytes_stream()
        .scan((0_u64, false), move |(seen, ended), chunk| {
            if *ended {
                return futures::future::ready(None);
            }
            let item = match chunk {
                Ok(bytes) => {
                    *seen += bytes.len() as u64;
                    if *seen > limit {
                        *ended = true;
                        Err(OutboundError::TooLarge {
                            url: shown_url.clone(),
                            limit,
                        })
                    } else {
                        Ok(bytes)
                    }
                }
                Err(e) => {
                    *ended = true;
                    Err(OutboundError::Http {
                        url: shown_url.clone(),
                        message: format!("reading the body: {}", chain(&e)),
                    })
                }
            };
            futures::future::ready(Some(item))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn guard(allow: &[&str]) -> Outbound {
        let entries: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        Outbound::new(AllowList::parse(&entries).unwrap(), 3)
    }

    async fn refused(outbound: &Outbound, url: &str) -> Option<Refused> {
        match outbound.check(&Url::parse(url).unwrap(), &[]).await {
            Err(OutboundError::Refused { why, .. }) => Some(why),
            Ok(_) => None,
            Err(other) => panic!("{url}: {other}"),
        }
    }

    #[tokio::test]
    async fn own_network_is_refused_in_every_spelling() {
        let outbound = guard(&[]);
        for url in [
            "http://127.0.0.1:8123/?query=SELECT%201",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://127.1:8123/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.8/",
            "http://192.168.0.1/",
            "http://0.0.0.0:8081/",
            "http://localhost:8081/api/calls",
        ] {
            assert!(
                refused(&outbound, url).await.is_some(),
                "{url} was let through"
            );
        }
    }

    #[tokio::test]
    async fn the_allow_list_opens_exactly_what_it_names() {
        let outbound = guard(&["127.0.0.1:18555"]);
        assert_eq!(
            refused(&outbound, "http://127.0.0.1:18555/calls").await,
            None
        );
        assert_eq!(
            refused(&outbound, "http://127.0.0.1:8123/").await,
            Some(Refused::Loopback)
        );
        assert_eq!(refused(&outbound, "http://localhost:18555/").await, None);
    }

    #[tokio::test]
    async fn only_http_schemes() {
        let error = guard(&[])
            .check(&Url::parse("file:///etc/passwd").unwrap(), &[])
            .await
            .unwrap_err();
        assert!(matches!(error, OutboundError::BadUrl { .. }), "{error}");
    }

    #[tokio::test]
    async fn errors_never_show_credentials() {
        let error = guard(&[])
            .check(
                &Url::parse("http://user:hunter2@127.0.0.1/x?api_key=k3y&since=1").unwrap(),
                &[],
            )
            .await
            .unwrap_err()
            .to_string();
        assert!(
            !error.contains("hunter2") && !error.contains("k3y"),
            "{error}"
        );
        assert!(
            error.contains("loopback") && error.contains("since=1"),
            "{error}"
        );
    }

    proptest! {
        /// However a host address is spelled (decimal, hex, octal, short forms), the
        /// URL parser hands the guard the address itself, so the verdict is the
        /// address's.
        #[test]
        fn host_spellings_reach_the_classifier_as_the_address(bits in any::<u32>()) {
            let address = Ipv4Addr::from(bits);
            let [a, b, c, d] = address.octets();
            for spelling in [
                format!("{bits}"),
                format!("0x{bits:x}"),
                format!("0{a:o}.0{b:o}.0{c:o}.0{d:o}"),
                format!("{a}.{}", u32::from_be_bytes([0, b, c, d])),
                format!("0x{a:x}.0x{b:x}.0x{c:x}.0x{d:x}"),
            ] {
                let url = Url::parse(&format!("http://{spelling}/")).unwrap();
                prop_assert_eq!(url.host(), Some(Host::Ipv4(address)), "{}", spelling);
            }
        }
    }
}
