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
//! Pinned definitions (the rug-pull defence): every tool and prompt a server
//! lists is compared with an approved definition, from `lock_file` (written
//! by `mcpgate pin`) or, with `pin = "first-seen"`, from what each pool
//! first listed (kept in `state_file`, shared by the instance's workers).
//! `on_change` says what happens to a definition that differs from its pin,
//! or, with a lock file, is missing from it.

use std::path::PathBuf;

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

/// What happens to a listed definition that differs from its pin (or, with
/// a lock file, is not in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnChange {
    /// Hidden from listings, and its calls (`tools/call`, `prompts/get`)
    /// refused.
    #[default]
    Block,
    /// Hidden from listings (the model never reads the new text); calls by
    /// name still go through, their arguments checked against the pinned
    /// schema.
    Hide,
    /// Passed unchanged; logged and counted.
    Alert,
}

impl OnChange {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Hide => "hide",
            Self::Alert => "alert",
        }
    }
}

/// Where approved definitions come from when there is no lock file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PinMode {
    /// No pins (unless `lock_file` is set).
    #[default]
    Off,
    /// What each pool first listed is the approved definition.
    FirstSeen,
}

/// The compiled `[tools]` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolsPolicy {
    /// Validate each `tools/call`'s `arguments` against the tool's
    /// `inputSchema` (off by default).
    pub validate_arguments: bool,
    /// See [`OnUncompilable`].
    pub on_uncompilable: OnUncompilable,
    /// `shadow`: log and count calls that fail validation, refuse nothing.
    pub mode: crate::RuleMode,
    /// The approved definitions, written by `mcpgate pin`.
    pub lock_file: Option<PathBuf>,
    /// See [`OnChange`].
    pub on_change: OnChange,
    /// See [`PinMode`].
    pub pin: PinMode,
    /// Where first-seen pins, and definitions seen to differ from their
    /// pins, are kept for every worker of the instance (required with
    /// `pin = "first-seen"`; optional with a lock file, where it shares
    /// which definitions changed).
    pub state_file: Option<PathBuf>,
}

impl ToolsPolicy {
    /// Whether listed definitions are compared with pins at all.
    pub fn pins_active(&self) -> bool {
        self.lock_file.is_some() || self.pin == PinMode::FirstSeen
    }
}

const ON_UNCOMPILABLE: [(&str, OnUncompilable); 2] = [
    ("skip", OnUncompilable::Skip),
    ("refuse", OnUncompilable::Refuse),
];

const ON_CHANGE: [(&str, OnChange); 3] = [
    ("block", OnChange::Block),
    ("hide", OnChange::Hide),
    ("alert", OnChange::Alert),
];

const PIN: [(&str, PinMode); 2] = [("off", PinMode::Off), ("first-seen", PinMode::FirstSeen)];

/// Reads `[tools]` (defaults when absent).
pub(crate) fn read_tools(r: &mut Reader, t: Option<&dyn TableLike>) -> ToolsPolicy {
    const P: &str = "tools";
    let d = ToolsPolicy::default();
    let Some(t) = t else {
        return d;
    };
    r.deny_unknown(t, P, P);
    let tools = ToolsPolicy {
        validate_arguments: r.boolean(t, "validate_arguments", P, d.validate_arguments),
        on_uncompilable: r.choice(t, "on_uncompilable", P, "skip", &ON_UNCOMPILABLE),
        mode: r.choice(t, "mode", P, "enforce", &crate::sections::access::MODES),
        lock_file: r.opt_string(t, "lock_file", P).map(PathBuf::from),
        on_change: r.choice(t, "on_change", P, "block", &ON_CHANGE),
        pin: r.choice(t, "pin", P, "off", &PIN),
        state_file: r.opt_string(t, "state_file", P).map(PathBuf::from),
    };
    for (key, set) in [
        ("lock_file", tools.lock_file.as_ref()),
        ("state_file", tools.state_file.as_ref()),
    ] {
        if set.is_some_and(|p| p.as_os_str().is_empty()) {
            r.error(
                Reader::span_of(t, key),
                &format!("{P}.{key}"),
                "must not be empty",
            );
        }
    }
    if tools.pin == PinMode::FirstSeen {
        if tools.lock_file.is_some() {
            r.error(
                Reader::span_of(t, "pin"),
                "tools.pin",
                "`first-seen` pins what servers list when there is no lock file; remove `pin` or `lock_file`",
            );
        } else if tools.state_file.is_none() {
            r.error(
                Reader::span_of(t, "pin"),
                "tools.pin",
                "`first-seen` needs `state_file`: the pins every worker of the instance shares",
            );
        }
    }
    tools
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
        let (line, _) = error_at("[tools]\nlock_file = 3\n", "tools.lock_file");
        assert_eq!(line, 4);
        let (line, msg) = error_at("[tools]\non_change = \"warn\"\n", "tools.on_change");
        assert_eq!(line, 4);
        assert!(msg.contains("\"block\", \"hide\", \"alert\""), "{msg}");
    }

    #[test]
    fn reads_the_pin_keys() {
        let p = ok("[tools]\nlock_file = \"tools.lock\"\non_change = \"hide\"\n");
        assert_eq!(
            p.tools.lock_file.as_deref(),
            Some(std::path::Path::new("tools.lock"))
        );
        assert_eq!(p.tools.on_change, OnChange::Hide);
        assert!(p.tools.pins_active());
        let p = ok("[tools]\npin = \"first-seen\"\nstate_file = \"/tmp/pins.json\"\n");
        assert_eq!(p.tools.pin, PinMode::FirstSeen);
        assert_eq!(p.tools.on_change, OnChange::Block);
        assert!(p.tools.pins_active());
        assert!(!ok("").tools.pins_active());
    }

    #[test]
    fn first_seen_needs_a_state_file_and_no_lock() {
        let (line, msg) = error_at("[tools]\npin = \"first-seen\"\n", "tools.pin");
        assert_eq!(line, 4);
        assert!(msg.contains("state_file"), "{msg}");
        let (_, msg) = error_at(
            "[tools]\npin = \"first-seen\"\nstate_file = \"s\"\nlock_file = \"l\"\n",
            "tools.pin",
        );
        assert!(msg.contains("lock_file"), "{msg}");
        error_at("[tools]\nlock_file = \"\"\n", "tools.lock_file");
    }
}
