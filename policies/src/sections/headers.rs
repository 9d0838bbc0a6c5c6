//! `[headers]`: size limits of the request head (header-injection filter).
//!
//! pingora refuses heads above 1 MiB and more than 256 header lines on its own
//! (closing the connection); these limits are the smaller ones mcpgate
//! answers with 431.

use toml_edit::TableLike;

use crate::reader::{join, Reader};

/// pingora's own ceiling for a request head (`MAX_HEADER_SIZE`).
const PINGORA_MAX_HEAD: i64 = 1_048_575;

/// The compiled `[headers]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderPolicy {
    /// Largest request head (request line and every header line), in bytes.
    pub max_block_bytes: usize,
    /// Largest single header line (`name: value`), in bytes.
    pub max_field_bytes: usize,
    /// Most header lines in one request head.
    pub max_count: usize,
}

impl Default for HeaderPolicy {
    fn default() -> Self {
        Self {
            max_block_bytes: 32 * 1024,
            max_field_bytes: 8 * 1024,
            max_count: 100,
        }
    }
}

/// Reads `[headers]` (defaults when absent).
pub(crate) fn read_headers(r: &mut Reader, t: Option<&dyn TableLike>) -> HeaderPolicy {
    const P: &str = "headers";
    let d = HeaderPolicy::default();
    let Some(t) = t else {
        return d;
    };
    r.deny_unknown(t, P, P);
    let block = r.integer(
        t,
        "max_block_bytes",
        P,
        d.max_block_bytes as i64,
        1024..=PINGORA_MAX_HEAD,
    ) as usize;
    let field = r.integer(
        t,
        "max_field_bytes",
        P,
        d.max_field_bytes as i64,
        256..=PINGORA_MAX_HEAD,
    ) as usize;
    // pingora refuses more than 256 header lines itself.
    let count = r.integer(t, "max_count", P, d.max_count as i64, 8..=256) as usize;
    if field > block {
        r.error(
            Reader::span_of(t, "max_field_bytes"),
            &join(P, "max_field_bytes"),
            format!("{field} is larger than max_block_bytes ({block})"),
        );
    }
    HeaderPolicy {
        max_block_bytes: block,
        max_field_bytes: field,
        max_count: count,
    }
}
