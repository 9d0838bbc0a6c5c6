//! `[tools]`: what mcpgate checks of the tools a server lists and the calls
//! made to them.
//!
//! Today: argument validation. With `validate_arguments = true`, every
//! `tools/call` has its `arguments` validated against the tool's own
//! `inputSchema`, as the upstream last listed it, before any upstream
//! contact. `on_uncompilable` says what happens to calls of a tool whose
//! schema mcpgate cannot compile (a remote `$ref`, an unknown draft, over
//! the size or depth limits): `"skip"` (not enforced, a warning is logged
//! once) or `"refuse"` (its calls are refused).
//!
//! The section is named for tools, not for validation, so that the keys
//! planned next (a lock file of tool definitions, what to do when a listing
//! changes, pins) join it here.

use toml_edit::TableLike;

use crate::reader::Reader;

/// What happens to calls of a tool whose schema cannot be compiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnUncompilable {
    /// The schema is not enforced; a warning is logged once per schema.
    #[default]
    Skip,
    /// Every call of the tool is refused as having invalid arguments.
    Refuse,
}

/// The compiled `[tools]` section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ToolsPolicy {
    /// Validate each `tools/call`'s `arguments` against the tool's
    /// `inputSchema` (off by default).
    pub validate_arguments: bool,
    /// See [`OnUncompilable`].
    pub on_uncompilable: OnUncompilable,
    /// `shadow`: log and count calls that fail validation, refuse nothing.
    pub mode: crate::RuleMode,
}

const ON_UNCOMPILABLE: [(&str, OnUncompilable); 2] = [
    ("skip", OnUncompilable::Skip),
    ("refuse", OnUncompilable::Refuse),
];

/// Reads `[tools]` (defaults when absent).
pub(crate) fn read_tools(r: &mut Reader, t: Option<&dyn TableLike>) -> ToolsPolicy {
    const P: &str = "tools";
    let d = ToolsPolicy::default();
    let Some(t) = t else {
        return d;
    };
    r.deny_unknown(t, P, P);
    ToolsPolicy {
        validate_arguments: r.boolean(t, "validate_arguments", P, d.validate_arguments),
        on_uncompilable: r.choice(t, "on_uncompilable", P, "skip", &ON_UNCOMPILABLE),
        mode: r.choice(t, "mode", P, "enforce", &crate::sections::access::MODES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{error_at, ok};

    #[test]
    fn defaults_are_off_and_skip() {
        let p = ok("");
        assert_eq!(p.tools, ToolsPolicy::default());
        assert!(!p.tools.validate_arguments);
        assert_eq!(p.tools.on_uncompilable, OnUncompilable::Skip);
        assert_eq!(ok("[tools]\n").tools, ToolsPolicy::default());
    }

    #[test]
    fn reads_both_keys() {
        let p = ok("[tools]\nvalidate_arguments = true\non_uncompilable = \"refuse\"\n");
        assert!(p.tools.validate_arguments);
        assert_eq!(p.tools.on_uncompilable, OnUncompilable::Refuse);
    }

    #[test]
    fn errors_name_line_and_key() {
        let (line, msg) = error_at(
            "[tools]\nvalidate_arguments = \"yes\"\n",
            "tools.validate_arguments",
        );
        assert_eq!(line, 4);
        assert!(msg.contains("expected a boolean"), "{msg}");
        let (line, msg) = error_at(
            "[tools]\non_uncompilable = \"warn\"\n",
            "tools.on_uncompilable",
        );
        assert_eq!(line, 4);
        assert!(msg.contains("\"skip\", \"refuse\""), "{msg}");
        let (line, _) = error_at("[tools]\nlock_file = \"x\"\n", "tools.lock_file");
        assert_eq!(line, 4);
    }
}
