//! `[content]`: guards on what servers send.
//!
//! `[content.poisoning]` scans the tool, prompt and resource definitions a
//! server lists for what hides instructions from the user or addresses the
//! model: invisible characters, terminal escapes, instruction tags and
//! phrases, references to secrets and agent configuration, instructions
//! about other tools, over-long descriptions and whitespace padding. Each
//! rule is named ([`PoisonRule`]) and acts as `action` says ([`PoisonAction`]),
//! overridable per rule under `[content.poisoning.rules.NAME]`. The section
//! is off when absent.

use std::collections::BTreeMap;

use toml_edit::TableLike;

use crate::reader::{join, Reader};
use crate::RuleMode;

/// One named check on listed definitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PoisonRule {
    /// Unicode tag characters (outside emoji flags), zero-width and bidi
    /// controls, variation selectors used as a covert channel.
    InvisibleCharacters,
    /// ESC and other control characters (ANSI/terminal escape sequences).
    TerminalEscapes,
    /// `<IMPORTANT>`, `<system>`, `[INST]` and other prompt-format tags.
    InstructionTags,
    /// "ignore previous instructions", "do not tell the user", ...
    InstructionPhrases,
    /// `~/.ssh`, `id_rsa`, `.env`, `mcp.json`, cloud credential paths, ...
    SecretReferences,
    /// Instructions about how other tools must be used.
    ToolShadowing,
    /// A description over `max_description_bytes`.
    LongDescription,
    /// A run of `whitespace_run` or more whitespace characters.
    WhitespacePadding,
}

impl PoisonRule {
    /// Every rule, in the order they are checked.
    pub const ALL: [PoisonRule; 8] = [
        Self::InvisibleCharacters,
        Self::TerminalEscapes,
        Self::InstructionTags,
        Self::InstructionPhrases,
        Self::SecretReferences,
        Self::ToolShadowing,
        Self::LongDescription,
        Self::WhitespacePadding,
    ];

    /// The rule's name in policy files, logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Self::InvisibleCharacters => "invisible-characters",
            Self::TerminalEscapes => "terminal-escapes",
            Self::InstructionTags => "instruction-tags",
            Self::InstructionPhrases => "instruction-phrases",
            Self::SecretReferences => "secret-references",
            Self::ToolShadowing => "tool-shadowing",
            Self::LongDescription => "long-description",
            Self::WhitespacePadding => "whitespace-padding",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Whether `strip` can remove what the rule finds (the characters
    /// themselves, or a padding run collapsed to one space). For the other
    /// rules the text is the finding: `strip` acts as `flag`.
    pub fn strippable(self) -> bool {
        matches!(
            self,
            Self::InvisibleCharacters | Self::TerminalEscapes | Self::WhitespacePadding
        )
    }
}

/// What a finding does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PoisonAction {
    /// The rule is not checked.
    Off,
    /// Logged and counted; the definition passes unchanged.
    #[default]
    Flag,
    /// What the rule found is removed from the definition (strippable
    /// rules; the others flag).
    Strip,
    /// The definition is left out of listings, and calls of it are answered
    /// as calls of an unknown name.
    Hide,
}

impl PoisonAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Flag => "flag",
            Self::Strip => "strip",
            Self::Hide => "hide",
        }
    }
}

const ACTIONS: [(&str, PoisonAction); 4] = [
    ("off", PoisonAction::Off),
    ("flag", PoisonAction::Flag),
    ("strip", PoisonAction::Strip),
    ("hide", PoisonAction::Hide),
];

/// The compiled `[content.poisoning]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoisoningPolicy {
    /// The section is present: listings are scanned.
    pub enabled: bool,
    /// `shadow`: findings are logged and counted as what would have been
    /// done; nothing is changed or hidden.
    pub mode: RuleMode,
    /// Each rule's action (`action`, or the rule's override).
    pub actions: BTreeMap<PoisonRule, PoisonAction>,
    /// `long-description`: the longest description or title that passes.
    pub max_description_bytes: usize,
    /// `whitespace-padding`: the shortest run of whitespace that is found.
    pub whitespace_run: usize,
}

impl Default for PoisoningPolicy {
    fn default() -> Self {
        Self {
            enabled: false,
            mode: RuleMode::Enforce,
            actions: PoisonRule::ALL
                .into_iter()
                .map(|r| (r, PoisonAction::Flag))
                .collect(),
            max_description_bytes: 8192,
            whitespace_run: 50,
        }
    }
}

impl PoisoningPolicy {
    /// The action of `rule` (`Off` when the section is absent).
    pub fn action(&self, rule: PoisonRule) -> PoisonAction {
        if !self.enabled {
            return PoisonAction::Off;
        }
        self.actions.get(&rule).copied().unwrap_or_default()
    }

    /// Whether any rule hides definitions (calls must then be checked).
    pub fn hides(&self) -> bool {
        self.enabled
            && self.mode == RuleMode::Enforce
            && self.actions.values().any(|a| *a == PoisonAction::Hide)
    }
}

/// The compiled `[content]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContentPolicy {
    pub poisoning: PoisoningPolicy,
}

/// Reads `[content]` (everything off when absent).
pub(crate) fn read_content(r: &mut Reader, t: Option<&dyn TableLike>) -> ContentPolicy {
    const P: &str = "content";
    let Some(t) = t else {
        return ContentPolicy::default();
    };
    r.deny_unknown(t, P, P);
    let poisoning = r
        .table(t, "poisoning", P)
        .map(|p| read_poisoning(r, p))
        .unwrap_or_default();
    ContentPolicy { poisoning }
}

fn read_poisoning(r: &mut Reader, t: &dyn TableLike) -> PoisoningPolicy {
    const P: &str = "content.poisoning";
    r.deny_unknown(t, P, P);
    let d = PoisoningPolicy::default();
    let mode = r.choice(t, "mode", P, "enforce", &crate::sections::access::MODES);
    let default_action = r.choice(t, "action", P, "flag", &ACTIONS);
    let max_description_bytes = r.integer(
        t,
        "max_description_bytes",
        P,
        d.max_description_bytes as i64,
        1..=1 << 24,
    ) as usize;
    let whitespace_run =
        r.integer(t, "whitespace_run", P, d.whitespace_run as i64, 2..=1 << 20) as usize;
    let mut actions: BTreeMap<PoisonRule, PoisonAction> = PoisonRule::ALL
        .into_iter()
        .map(|rule| {
            let a = match default_action {
                PoisonAction::Strip if !rule.strippable() => PoisonAction::Flag,
                a => a,
            };
            (rule, a)
        })
        .collect();
    let rules_path = join(P, "rules");
    if let Some(rules) = r.table(t, "rules", P) {
        for (name, _) in rules.iter() {
            let path = join(&rules_path, name);
            let Some(rule) = PoisonRule::from_name(name) else {
                let known: Vec<&str> = PoisonRule::ALL.iter().map(|r| r.name()).collect();
                let span = rules.get_key_value(name).and_then(|(k, _)| k.span());
                r.error(
                    span,
                    &path,
                    format!("unknown rule (expected one of: {})", known.join(", ")),
                );
                continue;
            };
            let Some(rt) = r.table(rules, name, &rules_path) else {
                continue;
            };
            r.deny_unknown(rt, &path, "content.poisoning.rules.*");
            if rt.get("action").is_none() {
                continue;
            }
            let action = r.choice(rt, "action", &path, "flag", &ACTIONS);
            if action == PoisonAction::Strip && !rule.strippable() {
                r.error(
                    Reader::span_of(rt, "action"),
                    &join(&path, "action"),
                    format!(
                        "`strip` removes characters; {} finds text: use \"flag\" or \"hide\"",
                        rule.name()
                    ),
                );
                continue;
            }
            actions.insert(rule, action);
        }
    }
    PoisoningPolicy {
        enabled: true,
        mode,
        actions,
        max_description_bytes,
        whitespace_run,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{error_at, ok};

    #[test]
    fn absent_is_off() {
        let p = ok("");
        assert!(!p.content.poisoning.enabled);
        assert_eq!(
            p.content.poisoning.action(PoisonRule::InstructionTags),
            PoisonAction::Off
        );
        assert!(!p.content.poisoning.hides());
    }

    #[test]
    fn section_default_and_overrides() {
        let p = ok(
            "[content.poisoning]\naction = \"strip\"\nwhitespace_run = 80\n\
                    [content.poisoning.rules.instruction-tags]\naction = \"hide\"\n\
                    [content.poisoning.rules.long-description]\naction = \"off\"\n",
        );
        let c = &p.content.poisoning;
        assert!(c.enabled && c.hides());
        assert_eq!(c.whitespace_run, 80);
        assert_eq!(
            c.action(PoisonRule::InvisibleCharacters),
            PoisonAction::Strip
        );
        // `strip` as the section's default flags what cannot be stripped.
        assert_eq!(c.action(PoisonRule::SecretReferences), PoisonAction::Flag);
        assert_eq!(c.action(PoisonRule::InstructionTags), PoisonAction::Hide);
        assert_eq!(c.action(PoisonRule::LongDescription), PoisonAction::Off);
        let shadow = ok("[content.poisoning]\nmode = \"shadow\"\naction = \"hide\"\n");
        assert!(!shadow.content.poisoning.hides());
    }

    #[test]
    fn errors_name_line_and_key() {
        let (line, msg) = error_at(
            "[content.poisoning.rules.no-such-rule]\naction = \"flag\"\n",
            "content.poisoning.rules.no-such-rule",
        );
        assert_eq!(line, 3);
        assert!(msg.contains("invisible-characters"), "{msg}");
        let (line, msg) = error_at(
            "[content.poisoning.rules.secret-references]\naction = \"strip\"\n",
            "content.poisoning.rules.secret-references.action",
        );
        assert_eq!(line, 4);
        assert!(msg.contains("use \"flag\" or \"hide\""), "{msg}");
        let (line, _) = error_at(
            "[content.poisoning]\naction = \"redact\"\n",
            "content.poisoning.action",
        );
        assert_eq!(line, 4);
        let (line, _) = error_at(
            "[content.poisoning]\nlevel = 1\n",
            "content.poisoning.level",
        );
        assert_eq!(line, 4);
    }
}
