//! `[paths.tools]` and `[ssrf.tools]`: tool name -> JSON pointers (RFC 6901)
//! into that tool's `arguments` object.

use std::collections::BTreeMap;

use toml_edit::TableLike;

use crate::reader::{join, Reader};

/// Reads a `tools` table of `name = ["/pointer", ...]` entries.
pub(crate) fn read_tool_pointers(
    r: &mut Reader,
    parent: &dyn TableLike,
    path: &str,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let Some(tools) = r.table(parent, "tools", path) else {
        return out;
    };
    let tools_path = join(path, "tools");
    for (name, _) in tools.iter() {
        let Some(list) = r.strings(tools, name, &tools_path) else {
            continue;
        };
        let mut pointers = Vec::with_capacity(list.len());
        for (p, span) in list {
            if is_json_pointer(&p) {
                pointers.push(p);
            } else {
                r.error(
                    span,
                    &join(&tools_path, name),
                    format!("`{p}` is not a JSON pointer (\"/key/0\", `~0` for `~`, `~1` for `/`)"),
                );
            }
        }
        out.insert(name.to_string(), pointers);
    }
    out
}

/// Whether `p` is an RFC 6901 JSON pointer: empty, or `/`-prefixed tokens whose
/// `~` is always followed by `0` or `1`.
pub(crate) fn is_json_pointer(p: &str) -> bool {
    if p.is_empty() {
        return true;
    }
    if !p.starts_with('/') {
        return false;
    }
    let b = p.as_bytes();
    b.iter()
        .enumerate()
        .all(|(i, c)| *c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
}

#[cfg(test)]
mod tests {
    use super::is_json_pointer;

    #[test]
    fn pointers() {
        for ok in ["", "/path", "/a/0/b", "/a~1b", "/~0home"] {
            assert!(is_json_pointer(ok), "{ok}");
        }
        for bad in ["path", "/a~", "/a~2", "#/a"] {
            assert!(!is_json_pointer(bad), "{bad}");
        }
    }
}
