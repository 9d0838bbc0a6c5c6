//! Header-injection and request-smuggling guard: the first check of the head
//! phase, before anything reads a header's meaning.
//!
//! From the raw request head (HTTP/1, as received) it refuses: bare LF or CR
//! line ends, obsolete line folding, header names that are not tokens
//! (whitespace before the colon included), CR/LF/NUL/other control bytes in a
//! value, a request line that is not `METHOD SP /origin-form SP HTTP/1.x`,
//! heads and single header lines over the `[headers]` limits (431), repeated
//! singleton headers, `Content-Length` together with `Transfer-Encoding`,
//! `Transfer-Encoding` repeated, other than `chunked`, or on HTTP/1.0, a
//! `Content-Length` that is not plain digits, more header lines than
//! `max_count`, underscore spellings of framing and singleton headers
//! (`Transfer_Encoding`, which CGI-style servers read as the real one), and a
//! `Connection` header naming anything but hop-by-hop tokens (a hop would
//! drop an end-to-end header the filters already judged). The raw head matters because the HTTP
//! parser drops `Content-Length` when `Transfer-Encoding` is present.
//!
//! Where no raw head exists (HTTP/2) the same value, size and framing checks
//! run on the parsed header map instead (the map of an HTTP/1 request is read
//! from its raw head, so judging both would judge it twice). Framing and injection
//! refusals close the connection: what follows cannot be trusted to start a
//! new request.

use http::HeaderMap;
use policies::HeaderPolicy;

use crate::exchange::Exchange;
use crate::header_values::header_at;
use crate::rejection::{Decision, Location, Rejection, RejectionKind as K};
use crate::transport::SINGLETON_HEADERS;
use crate::Filter;

/// `Connection` tokens allowed: hop-by-hop only.
const CONNECTION_TOKENS: &[&str] = &["close", "keep-alive", "upgrade", "te", "http2-settings"];

pub struct HeaderGuardFilter;

impl Filter for HeaderGuardFilter {
    fn name(&self) -> &'static str {
        "header_guard"
    }

    fn check(&self, ex: &mut Exchange<'_>) -> Decision {
        let limits = &ex.policy.headers;
        // The parsed map is read from the raw head, so every rule the map
        // check applies has already been applied to the bytes it came from.
        let checked = if ex.raw_head.is_empty() {
            check_map(ex.headers, limits)
        } else {
            check_raw(ex.raw_head, limits)
        };
        match checked {
            Ok(()) => Decision::Continue,
            Err(r) => r.into(),
        }
    }
}

fn injection(rule: &'static str, at: impl Into<Location>, why: impl Into<String>) -> Rejection {
    Rejection::new(K::HeaderInjection, why)
        .with_rule(rule)
        .with_at(at)
}

fn framing(rule: &'static str, at: impl Into<Location>, why: impl Into<String>) -> Rejection {
    Rejection::new(K::AmbiguousFraming, why)
        .with_rule(rule)
        .with_at(at)
}

fn too_large(rule: &'static str, at: impl Into<Location>, why: impl Into<String>) -> Rejection {
    Rejection::new(K::HeaderTooLarge, why)
        .with_rule(rule)
        .with_at(at)
}

/// RFC 9110 `tchar`, by byte: a header name's every byte is looked up.
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        table[i] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        i += 1;
    }
    table
};

fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

fn value_bytes_ok(name: &str, v: &[u8]) -> Result<(), Rejection> {
    let Some(bad) = v
        .iter()
        .find(|b| (**b < 0x20 && **b != b'\t') || **b == 0x7f)
    else {
        return Ok(());
    };
    // (Names keep the client's case until here: lower-cased for the report.)
    let name = name.to_ascii_lowercase();
    Err(match bad {
        0 => injection(
            "nul-in-header-value",
            header_at(&name),
            format!("NUL byte in {name} value"),
        ),
        b'\r' | b'\n' => injection(
            "line-break-in-header-value",
            header_at(&name),
            format!("line break in {name} value"),
        ),
        b => injection(
            "control-byte-in-header-value",
            header_at(&name),
            format!("control byte 0x{b:02x} in {name} value"),
        ),
    })
}

/// Checks the raw HTTP/1 head.
fn check_raw(raw: &[u8], limits: &HeaderPolicy) -> Result<(), Rejection> {
    if raw.len() > limits.max_block_bytes {
        return Err(too_large(
            "head-too-large",
            "head",
            format!("request head of {} bytes", raw.len()),
        ));
    }
    // Every LF must end a CRLF; the count of line ends gives the count of
    // header lines before any is read (no list of lines is built).
    let mut line_ends = 0;
    for i in memchr::memchr_iter(b'\n', raw) {
        if i == 0 || raw[i - 1] != b'\r' {
            return Err(injection("bare-lf", "head", "bare LF line ending"));
        }
        line_ends += 1;
    }
    if raw == b"\r\n" {
        return Err(injection("empty-head", "head", "empty request head"));
    }
    if !raw.ends_with(b"\r\n\r\n") {
        return Err(injection(
            "unterminated-head",
            "head",
            "request head does not end with an empty line",
        ));
    }
    // The lines before the final empty one, each without its CRLF (every
    // piece split at an LF ends with the CR checked above; the split leaves
    // one empty piece after the last LF).
    let mut lines = raw[..raw.len() - 2]
        .split(|b| *b == b'\n')
        .take(line_ends - 1)
        .map(|l| &l[..l.len() - 1]);
    let request_line = lines.next().unwrap_or_default();
    let http10 = check_request_line(request_line)?;
    let header_count = line_ends - 2;
    if header_count > limits.max_count {
        return Err(too_large(
            "too-many-headers",
            "headers",
            format!("{header_count} header lines"),
        ));
    }
    let mut fields = Vec::with_capacity(header_count);
    for line in lines {
        if line.contains(&b'\r') {
            return Err(injection("bare-cr", "headers", "bare CR in a header line"));
        }
        if matches!(line.first(), Some(b' ' | b'\t')) {
            return Err(injection(
                "obsolete-line-folding",
                "headers",
                "obsolete line folding",
            ));
        }
        if line.len() > limits.max_field_bytes {
            return Err(too_large(
                "header-line-too-large",
                "headers",
                format!("header line of {} bytes", line.len()),
            ));
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            return Err(injection(
                "header-without-colon",
                "headers",
                "header line without a colon",
            ));
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        if name.is_empty() || !name.iter().all(|b| is_tchar(*b)) {
            return Err(injection(
                "invalid-header-name",
                "headers",
                format!("invalid header name {:?}", String::from_utf8_lossy(name)),
            ));
        }
        // Every byte is a tchar, so ASCII. Names keep their case and are
        // compared ignoring it: a lower-cased copy per header line showed in
        // the per-request profile.
        let name = std::str::from_utf8(name).unwrap_or_default();
        value_bytes_ok(name, value)?;
        fields.push((name, value.trim_ascii()));
    }
    check_fields(&fields, http10)
}

/// `METHOD SP /path SP HTTP/1.x`; returns whether the version is HTTP/1.0.
fn check_request_line(line: &[u8]) -> Result<bool, Rejection> {
    let bad = |rule, why: &str| injection(rule, "request-line", format!("request line: {why}"));
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad(
            "malformed-request-line",
            "not three parts separated by single spaces",
        ));
    };
    if method.is_empty() || !method.iter().all(|b| is_tchar(*b)) {
        return Err(bad("invalid-method", "invalid method"));
    }
    if !target.starts_with(b"/") || !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(bad(
            "invalid-request-target",
            "target is not an origin-form path",
        ));
    }
    match version {
        b"HTTP/1.1" => Ok(false),
        b"HTTP/1.0" => Ok(true),
        _ => Err(bad(
            "unsupported-http-version",
            "version is not HTTP/1.0 or HTTP/1.1",
        )),
    }
}

/// Checks the parsed header map (every transport, raw head or not).
fn check_map(headers: &HeaderMap, limits: &HeaderPolicy) -> Result<(), Rejection> {
    let mut total = 0;
    let mut fields = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let line = name.as_str().len() + 2 + value.len();
        if line > limits.max_field_bytes {
            return Err(too_large(
                "header-line-too-large",
                header_at(name.as_str()),
                format!("header {name} of {line} bytes"),
            ));
        }
        total += line + 2;
        value_bytes_ok(name.as_str(), value.as_bytes())?;
        fields.push((name.as_str(), value.as_bytes().trim_ascii()));
    }
    if total > limits.max_block_bytes {
        return Err(too_large(
            "head-too-large",
            "headers",
            format!("headers of {total} bytes"),
        ));
    }
    if fields.len() > limits.max_count {
        return Err(too_large(
            "too-many-headers",
            "headers",
            format!("{} header lines", fields.len()),
        ));
    }
    check_fields(&fields, false)
}

/// The names `check_fields` reads: the singletons, then these two.
const TRANSFER_ENCODING: usize = SINGLETON_HEADERS.len();
const CONNECTION: usize = SINGLETON_HEADERS.len() + 1;

/// Index of a field name among the singletons, `transfer-encoding` and
/// `connection`, compared ignoring case.
fn known_name(name: &str) -> Option<usize> {
    let same = |known: &str| known.len() == name.len() && known.eq_ignore_ascii_case(name);
    SINGLETON_HEADERS.iter().position(|k| same(k)).or_else(|| {
        if same("transfer-encoding") {
            Some(TRANSFER_ENCODING)
        } else if same("connection") {
            Some(CONNECTION)
        } else {
            None
        }
    })
}

/// Headers whose underscore spelling some servers read as the real thing
/// (CGI-style `_` to `-` mapping): refused rather than forwarded.
fn underscore_alias(name: &str) -> Option<String> {
    if !name.contains('_') {
        return None;
    }
    let dashed = name.replace('_', "-").to_ascii_lowercase();
    let sensitive = SINGLETON_HEADERS.contains(&dashed.as_str())
        || matches!(dashed.as_str(), "transfer-encoding" | "connection");
    sensitive.then_some(dashed)
}

/// Singletons, framing and `Connection`, on trimmed values. One pass sorts
/// the fields by name; the rules are then judged in a fixed order, so a head
/// with several faults always gets the same refusal.
fn check_fields(fields: &[(&str, &[u8])], http10: bool) -> Result<(), Rejection> {
    let mut count = [0usize; CONNECTION + 1];
    let mut first: [Option<&[u8]>; CONNECTION + 1] = [None; CONNECTION + 1];
    let mut alias = None;
    for (name, value) in fields {
        if let Some(i) = known_name(name) {
            count[i] += 1;
            first[i].get_or_insert(value);
        } else if alias.is_none() {
            alias = underscore_alias(name);
        }
    }
    if let Some(alias) = alias {
        return Err(injection(
            "underscore-header-name",
            header_at(&alias),
            format!("underscore spelling of {alias}"),
        ));
    }
    let names = SINGLETON_HEADERS.iter().chain(&["transfer-encoding"]);
    for (name, n) in names.zip(count) {
        if n > 1 {
            let why = format!("repeated singleton header {name}");
            let at = format!("header:{name}");
            return Err(match *name {
                "content-length" | "transfer-encoding" => framing("repeated-header", at, why),
                _ => Rejection::new(K::MalformedHeader, why)
                    .with_rule("repeated-header")
                    .with_at(at),
            });
        }
    }
    let content_length = SINGLETON_HEADERS
        .iter()
        .position(|k| *k == "content-length")
        .expect("content-length is a singleton");
    let cl = first[content_length];
    let te = first[TRANSFER_ENCODING];
    if let Some(v) = cl {
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return Err(framing(
                "malformed-content-length",
                "header:content-length",
                format!("malformed Content-Length {:?}", String::from_utf8_lossy(v)),
            ));
        }
    }
    if let Some(v) = te {
        if cl.is_some() {
            return Err(framing(
                "content-length-with-transfer-encoding",
                "header:transfer-encoding",
                "Content-Length together with Transfer-Encoding",
            ));
        }
        if http10 {
            return Err(framing(
                "transfer-encoding-on-http10",
                "header:transfer-encoding",
                "Transfer-Encoding on HTTP/1.0",
            ));
        }
        if !v.eq_ignore_ascii_case(b"chunked") {
            return Err(framing(
                "unsupported-transfer-encoding",
                "header:transfer-encoding",
                format!(
                    "Transfer-Encoding {:?} is not exactly `chunked`",
                    String::from_utf8_lossy(v)
                ),
            ));
        }
    }
    if count[CONNECTION] == 0 {
        return Ok(());
    }
    let connection = fields
        .iter()
        .filter(|(name, _)| known_name(name) == Some(CONNECTION));
    for (_, v) in connection {
        for token in v.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
            let hop = CONNECTION_TOKENS
                .iter()
                .any(|t| t.as_bytes().eq_ignore_ascii_case(token));
            if !token.is_empty() && !hop {
                let token = String::from_utf8_lossy(token).to_ascii_lowercase();
                return Err(injection(
                    "connection-names-end-to-end-header",
                    "header:connection",
                    format!("Connection names the end-to-end header {token:?}"),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
