//! Puts a hidden target's real name back into the server's answer.
//!
//! A request naming a target hidden from its caller went upstream under a
//! placeholder (see [`crate::access`]); the server answered as it answers any
//! unknown name, quoting the placeholder. The placeholder is replaced in the
//! answer's bytes by the name the client sent, escaped as a JSON string's
//! content, so everything else (member order, spacing, the server's own
//! escapes) stays exactly as the server wrote it: the client reads what the
//! server says of a name it does not know.

/// `bytes` with every `placeholder` replaced by `original` (JSON-escaped),
/// or `None` when the answer does not quote the placeholder.
pub fn unmask(bytes: &[u8], placeholder: &str, original: &str) -> Option<Vec<u8>> {
    let needle = placeholder.as_bytes();
    if needle.is_empty() {
        return None;
    }
    let mut at = memchr::memmem::find_iter(bytes, needle).peekable();
    at.peek()?;
    // The placeholder only ever stands inside a JSON string.
    let quoted = serde_json::to_string(original).unwrap_or_default();
    let escaped = quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .as_bytes();
    let mut out = Vec::with_capacity(bytes.len() + escaped.len());
    let mut from = 0;
    for i in at {
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(escaped);
        from = i + needle.len();
    }
    out.extend_from_slice(&bytes[from..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_every_occurrence_and_nothing_else() {
        let answer = br#"{"result":{"content":[{"type":"text","text":"Tool PH not found (PH)"}],"isError":true},"jsonrpc":"2.0","id":2}"#;
        let out = unmask(answer, "PH", "get-env").unwrap();
        assert_eq!(
            out,
            br#"{"result":{"content":[{"type":"text","text":"Tool get-env not found (get-env)"}],"isError":true},"jsonrpc":"2.0","id":2}"#
        );
        assert_eq!(unmask(b"{\"a\":1}", "PH", "x"), None);
    }

    #[test]
    fn the_name_is_escaped_as_json_string_content() {
        let out = unmask(br#"{"m":"Unknown tool: PH"}"#, "PH", "a\"b\\c\n").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["m"], "Unknown tool: a\"b\\c\n");
    }
}
