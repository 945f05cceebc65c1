//! What a job may point the agent at, as a model rather than as strings.
//!
//! A job from the control plane names destinations (bootstrap servers, a Schema Registry URL, an
//! OAuth token endpoint) and secret references (`vault://…`, `file:///…`). The agent's operator
//! limits them with lists of patterns. Matching those as plain strings is how allowlists get
//! bypassed: `*` in `host:*` also matches `evil:1,host:`, and `http://*.prod.internal:8081` also
//! matches `http://other:1234/.prod.internal:8081`. So every value is first parsed into its
//! parts, exactly as the client that will use it reads it, and each part is matched on its own:
//!
//! - [`HostPort`]: exactly one `host:port` (a DNS name, a dotted-quad IPv4 address or a bracketed
//!   IPv6 address, and a port); anything that a client could read as several hosts, a scheme or
//!   a path (`,`, spaces, `/`, `@`, …) is refused with an error naming the entry.
//!   [`HostPortPattern`] matches the host with a glob and the port exactly, by range or `*`.
//! - [`DestUrl`]: an `http`/`https` URL parsed by the WHATWG parser reqwest uses, without
//!   credentials in it. [`UrlPattern`] matches scheme, host (glob), port and path prefix (at a
//!   segment boundary), each on its own.
//! - [`canonical_file`]: a `file://` reference's path, resolved (`realpath`) before it is matched
//!   or read; `..` and `.` segments are refused outright, and so are non-regular files and the
//!   kernel's pseudo file systems (`/proc/self/environ` holds the agent's own credentials).
//! - [`GlobList`]: the one glob engine of every list (globset's syntax: `*`, `?`, `[…]`, `{a,b}`).
//! - [`Floor`]: a security floor the operator pins per destination pattern (TLS, host-name
//!   verification, SASL mechanisms, CA file); a job may tighten it, never loosen it.
//!
//! No I/O except [`canonical_file`] and [`canonical_pattern_path`] (file metadata only).

mod file;
mod floor;
mod glob;
mod host;
mod url;

pub use crate::file::{canonical_file, canonical_pattern_path, FileError};
pub use crate::floor::{Floor, Transport, Violation};
pub use crate::glob::{Case, GlobList};
pub use crate::host::{HostPort, HostPortPattern};
pub use crate::url::{DestUrl, UrlPattern};

/// The JSON Schema `format` of a bootstrap entry: exactly one [`HostPort`].
pub const HOST_PORT_FORMAT: &str = "krawl-host-port";
/// The JSON Schema `format` of a destination URL: a [`DestUrl`].
pub const URL_FORMAT: &str = "krawl-url";

/// A value that does not parse into the model, or a pattern that does not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// A destination named by a job (or a config) is not one well-formed `host:port` or URL.
    #[error("{what} {entry:?} is not valid: {reason}")]
    Entry {
        /// What the value is, e.g. `bootstrap server`.
        what: &'static str,
        entry: String,
        reason: String,
    },
    /// An operator's pattern does not parse; the message says what to write instead.
    #[error("`{key}`: pattern {pattern:?} is not valid: {reason}")]
    Pattern {
        key: String,
        pattern: String,
        reason: String,
    },
}

impl PolicyError {
    pub(crate) fn entry(what: &'static str, entry: &str, reason: impl Into<String>) -> Self {
        Self::Entry {
            what,
            entry: entry.to_string(),
            reason: reason.into(),
        }
    }

    pub(crate) fn pattern(key: &str, pattern: &str, reason: impl Into<String>) -> Self {
        Self::Pattern {
            key: key.to_string(),
            pattern: pattern.to_string(),
            reason: reason.into(),
        }
    }
}
