//! Reading MCP header values: singletons, the base64 sentinel, whitespace.

use std::borrow::Cow;

use base64::Engine;
use http::header::InvalidHeaderName;
use http::{HeaderMap, HeaderName};

use crate::rejection::Location;
use crate::transport::SINGLETON_HEADERS;

/// Headers other than the singletons that a rejection names in its location.
const NAMED_HEADERS: &[&str] = &["transfer-encoding", "connection", "accept"];

/// The location of a header in a rejection: `header:NAME` for a header
/// mcpgate knows by name, `headers` for any other (its name is the client's
/// and is never echoed).
pub fn header_at(name: &str) -> Location {
    SINGLETON_HEADERS
        .iter()
        .chain(NAMED_HEADERS)
        .find(|known| known.eq_ignore_ascii_case(name))
        .map_or(Location::Borrowed("headers"), |known| {
            Location::Owned(format!("header:{known}"))
        })
}

/// The session header's name, shared rather than parsed from text where
/// mcpgate writes or removes it on every request or answer.
pub static MCP_SESSION_ID: HeaderName = HeaderName::from_static("mcp-session-id");

/// Header names that most MCP requests and answers carry and that `http`
/// does not know: a head read by [`header_name`] shares these instead of
/// allocating a copy of each name (four per request of a 2026-07-28 client).
static MCP_HEADER_NAMES: [HeaderName; 7] = [
    HeaderName::from_static("mcp-protocol-version"),
    HeaderName::from_static("mcp-session-id"),
    HeaderName::from_static("mcp-method"),
    HeaderName::from_static("mcp-name"),
    HeaderName::from_static("last-event-id"),
    HeaderName::from_static("traceparent"),
    HeaderName::from_static("tracestate"),
];

/// A header name as read from the wire, in any case: the shared name when
/// it is one of the MCP names, else `http`'s (which copies a name it does
/// not know).
pub fn header_name(raw: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    MCP_HEADER_NAMES
        .iter()
        .find(|k| k.as_str().as_bytes().eq_ignore_ascii_case(raw))
        .map_or_else(|| HeaderName::from_bytes(raw), |k| Ok(k.clone()))
}

/// Largest header value mcpgate decodes (checked before decoding).
pub const MAX_DECODED_HEADER_BYTES: usize = 8 * 1024;

/// Outcome of reading a header that must appear at most once.
#[derive(Debug, PartialEq, Eq)]
pub enum Single<'a> {
    Absent,
    One(&'a [u8]),
    Repeated,
}

/// Reads a singleton header.
pub fn single<'a>(headers: &'a HeaderMap, name: &str) -> Single<'a> {
    let mut it = headers.get_all(name).iter();
    match (it.next(), it.next()) {
        (None, _) => Single::Absent,
        (Some(v), None) => Single::One(v.as_bytes()),
        (Some(_), Some(_)) => Single::Repeated,
    }
}

/// A singleton header as trimmed text; `None` when absent, repeated or not UTF-8.
pub fn single_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    match single(headers, name) {
        Single::One(v) => std::str::from_utf8(v)
            .ok()
            .map(|s| s.trim_matches([' ', '\t'])),
        _ => None,
    }
}

/// The elements of a comma-separated header list (RFC 9110 5.6.1) over all
/// the header's lines, trimmed, empty ones skipped; a line that is not
/// text contributes none.
pub fn list_elements<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
}

/// Decodes a 2026-07-28 header value: surrounding whitespace dropped, then a
/// `=?base64?...?=` sentinel decoded. `None` when too long or undecodable.
pub fn decode_mcp_value(raw: &[u8]) -> Option<Cow<'_, str>> {
    if raw.len() > MAX_DECODED_HEADER_BYTES {
        return None;
    }
    let text = std::str::from_utf8(raw).ok()?.trim_matches([' ', '\t']);
    match text
        .strip_prefix("=?base64?")
        .and_then(|r| r.strip_suffix("?="))
    {
        Some(b64) => {
            let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
            String::from_utf8(bytes).ok().map(Cow::Owned)
        }
        None => Some(Cow::Borrowed(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_sentinel_and_trims() {
        assert_eq!(
            decode_mcp_value(b"  tools/call\t").as_deref(),
            Some("tools/call")
        );
        assert_eq!(
            decode_mcp_value(b"=?base64?w6nDqQ==?=").as_deref(),
            Some("éé")
        );
        assert_eq!(decode_mcp_value(b"=?base64?***?="), None);
        assert_eq!(
            decode_mcp_value(&vec![b'a'; MAX_DECODED_HEADER_BYTES + 1]),
            None
        );
    }

    #[test]
    fn only_known_header_names_are_located() {
        assert_eq!(header_at("Content-Length"), "header:content-length");
        assert_eq!(header_at("mcp-method"), "header:mcp-method");
        assert_eq!(header_at("transfer-encoding"), "header:transfer-encoding");
        assert_eq!(header_at("x-evil-<script>"), "headers");
    }

    #[test]
    fn list_elements_span_lines_and_skip_empty_ones() {
        let mut h = HeaderMap::new();
        assert_eq!(list_elements(&h, "connection").count(), 0);
        h.append("connection", " keep-alive ,, Close".parse().unwrap());
        h.append("connection", "x-a,\tx-b ".parse().unwrap());
        h.append(
            "connection",
            http::HeaderValue::from_bytes(b"caf\xe9").unwrap(),
        );
        let got: Vec<&str> = list_elements(&h, "connection").collect();
        assert_eq!(got, ["keep-alive", "Close", "x-a", "x-b"]);
    }

    #[test]
    fn singleton_detection() {
        let mut h = HeaderMap::new();
        assert_eq!(single(&h, "mcp-method"), Single::Absent);
        h.append("mcp-method", "a".parse().unwrap());
        assert_eq!(single(&h, "mcp-method"), Single::One(b"a"));
        h.append("mcp-method", "b".parse().unwrap());
        assert_eq!(single(&h, "mcp-method"), Single::Repeated);
    }

    #[test]
    fn header_names_are_read_in_any_case_shared_or_not() {
        for raw in [&b"MCP-Protocol-Version"[..], b"mcp-session-id", b"Mcp-Name"] {
            let name = header_name(raw).unwrap();
            assert_eq!(name, HeaderName::from_bytes(raw).unwrap());
        }
        assert_eq!(header_name(b"X-Other").unwrap().as_str(), "x-other");
        assert_eq!(
            header_name(b"Content-Type").unwrap(),
            http::header::CONTENT_TYPE
        );
        assert!(header_name(b"bad name").is_err());
        assert!(header_name(b"").is_err());
        assert!(header_name(b"mcp-name\0").is_err());
    }
}
