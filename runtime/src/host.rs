//! This machine's name, for the audit trail's "from where" of changes made on it
//! (cmctl, a tokens file read at start-up).

/// `/etc/hostname`, else `$HOSTNAME`, else `unknown host`.
pub fn name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| "unknown host".into())
}
