//! Requests made on an account's behalf (poll pages, URL imports and their
//! redirects) go through [`Outbound`] and nowhere else: an account's URL never
//! reaches our own network, a hop never carries credentials to another origin, a
//! body never grows past its cap, and an error never quotes a secret.

mod address;
mod allow;
mod guard;

use serde::{Deserialize, Serialize};

pub use address::{classify, Refused};
pub use allow::{AllowEntry, AllowList};
pub use guard::{capped_stream, read_capped, Outbound, OutboundError, OutboundRequest};

/// `[outbound]`: limits on requests made for an account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Non-public addresses that may still be reached: `IP`, `IP:PORT`, `CIDR`,
    /// `[IPv6]:PORT`. For partners on a private network and for tests; empty in
    /// production, where loopback, private, link-local, unique-local, multicast and
    /// metadata addresses are all refused.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Redirects followed per request, each checked like the first URL.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: u32,
    /// Largest poll response read (bytes).
    #[serde(default = "default_max_page_bytes")]
    pub max_page_bytes: u64,
    /// Largest CSV an import reads, uploaded or fetched (bytes).
    #[serde(default = "default_max_import_bytes")]
    pub max_import_bytes: u64,
}

fn default_max_redirects() -> u32 {
    5
}
fn default_max_page_bytes() -> u64 {
    32 * 1024 * 1024
}
fn default_max_import_bytes() -> u64 {
    512 * 1024 * 1024
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            max_redirects: default_max_redirects(),
            max_page_bytes: default_max_page_bytes(),
            max_import_bytes: default_max_import_bytes(),
        }
    }
}

impl OutboundConfig {
    /// The allow-list, or the first bad entry as (config key, problem).
    pub fn allow_list(&self) -> Result<AllowList, (String, String)> {
        AllowList::parse(&self.allow)
            .map_err(|(i, problem)| (format!("outbound.allow[{i}]"), problem))
    }

    pub fn outbound(&self) -> Result<Outbound, (String, String)> {
        Ok(Outbound::new(self.allow_list()?, self.max_redirects))
    }
}
