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
//!
//! `[content.secrets]` and `[content.pii]` (opt-in) judge what results carry
//! (text content, `structuredContent`, resource contents, prompt messages)
//! and, with `in_arguments`, what `tools/call` arguments carry: each named
//! rule ([`SECRET_RULES`], [`PII_RULES`]) redacts, blocks or flags what it
//! matches ([`DataAction`]), unless an allowlist of values, tools or tenants
//! lets it through. Both sections share one shape (`content.secrets` in the
//! schema).
//!
//! `[content.limits]` caps how much a server may send in answer to one
//! request ([`limits`]).

pub mod limits;

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

/// Names of the secret rules (`[content.secrets.rules.NAME]`); the
/// patterns are in `filters::secrets`.
pub const SECRET_RULES: [&str; 16] = [
    "private-key",
    "aws-access-key",
    "aws-secret-key",
    "gcp-api-key",
    "azure-storage-key",
    "github-token",
    "gitlab-token",
    "slack-token",
    "slack-webhook",
    "stripe-key",
    "openai-key",
    "npm-token",
    "pypi-token",
    "sendgrid-key",
    "jwt",
    "generic-secret",
];

/// Names of the personal-data rules (`[content.pii.rules.NAME]`).
pub const PII_RULES: [&str; 4] = ["email", "phone", "iban", "card-number"];

/// What a secret or personal-data finding does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DataAction {
    /// The rule is not checked.
    Off,
    /// Logged and counted; the message passes unchanged.
    Flag,
    /// The match is replaced by `[REDACTED:rule]`; the JSON stays valid.
    #[default]
    Redact,
    /// The whole message is replaced by an error (a request is refused).
    Block,
}

impl DataAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Flag => "flag",
            Self::Redact => "redact",
            Self::Block => "block",
        }
    }
}

const DATA_ACTIONS: [(&str, DataAction); 4] = [
    ("off", DataAction::Off),
    ("flag", DataAction::Flag),
    ("redact", DataAction::Redact),
    ("block", DataAction::Block),
];

/// Where a rule does not apply: values, tools and tenants allowed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataAllow {
    /// Exact matched values that pass (a documented example key).
    pub values: Vec<String>,
    /// Tools (and prompts, resource URIs) whose messages the rule skips;
    /// `*` at the end matches any suffix.
    pub tools: Vec<String>,
    /// Tenants the rule skips.
    pub tenants: Vec<String>,
}

impl DataAllow {
    fn matches_target(&self, target: Option<&str>, tenant: &str) -> bool {
        let glob = |pat: &str, name: &str| match pat.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => pat == name,
        };
        self.tenants.iter().any(|t| t == tenant)
            || target.is_some_and(|n| self.tools.iter().any(|p| glob(p, n)))
    }
}

/// One rule's compiled setting.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DataRule {
    pub action: DataAction,
    pub allow: DataAllow,
}

/// The compiled `[content.secrets]` or `[content.pii]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataGuardPolicy {
    /// The section is present.
    pub enabled: bool,
    /// `shadow`: findings are counted as what would have been done.
    pub mode: RuleMode,
    /// Also judge `tools/call` arguments (what a client or model sends out).
    pub in_arguments: bool,
    /// `generic-secret`: the least Shannon entropy (bits per character) a
    /// value assigned to a key named like a secret must have.
    pub min_entropy: f64,
    /// The section's allowlist, for every rule.
    pub allow: DataAllow,
    /// Each rule's setting, by name.
    pub rules: BTreeMap<&'static str, DataRule>,
}

impl Eq for DataGuardPolicy {}

impl DataGuardPolicy {
    /// What `rule` does to a match of `value` in a message of `target`
    /// for `tenant` (`Off` when the section is absent, the rule off, or an
    /// allowlist lets it through).
    pub fn action_for(
        &self,
        rule: &str,
        value: &str,
        target: Option<&str>,
        tenant: &str,
    ) -> DataAction {
        if !self.enabled {
            return DataAction::Off;
        }
        let Some(r) = self.rules.get(rule) else {
            return DataAction::Off;
        };
        if r.action == DataAction::Off
            || self.allow.values.iter().any(|v| v == value)
            || r.allow.values.iter().any(|v| v == value)
            || self.allow.matches_target(target, tenant)
            || r.allow.matches_target(target, tenant)
        {
            return DataAction::Off;
        }
        r.action
    }

    /// Whether `rule` is checked at all.
    pub fn checks(&self, rule: &str) -> bool {
        self.enabled
            && self
                .rules
                .get(rule)
                .is_some_and(|r| r.action != DataAction::Off)
    }
}

/// What a tool result that breaks its `outputSchema` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContractAction {
    /// The result is replaced by an error.
    #[default]
    Block,
    /// Logged and counted; the result passes.
    Flag,
}

impl ContractAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Flag => "flag",
        }
    }
}

const CONTRACT_ACTIONS: [(&str, ContractAction); 2] = [
    ("block", ContractAction::Block),
    ("flag", ContractAction::Flag),
];

/// The compiled `[content.output_schema]`: `structuredContent` against the
/// tool's listed `outputSchema` (`isError` results exempt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutputSchemaPolicy {
    /// The section is present.
    pub enabled: bool,
    pub action: ContractAction,
    /// `shadow`: counted as what would be done; nothing changes.
    pub mode: RuleMode,
}

/// The compiled `[content]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ContentPolicy {
    /// A `[content]` table is present: every answer to a request goes
    /// through the response phase, which lets only the request's one
    /// answer through (see `filters::MessageStream`).
    pub present: bool,
    pub poisoning: PoisoningPolicy,
    /// Results held to their tool's `outputSchema`.
    pub output_schema: OutputSchemaPolicy,
    /// Secrets in results (and, with `in_arguments`, in tool arguments).
    pub secrets: DataGuardPolicy,
    /// Personal data, the same way; opt-in.
    pub pii: DataGuardPolicy,
    /// Caps on result size and events per stream.
    pub limits: limits::LimitsPolicy,
}

impl ContentPolicy {
    /// Whether any content guard reads server messages.
    pub fn any_enabled(&self) -> bool {
        self.poisoning.enabled
            || self.secrets.enabled
            || self.pii.enabled
            || self.output_schema.enabled
    }

    /// Whether request filters need the pool's content book: calls of
    /// hidden definitions, or arguments judged for secrets.
    pub fn judges_requests(&self) -> bool {
        self.poisoning.hides()
            || (self.secrets.enabled && self.secrets.in_arguments)
            || (self.pii.enabled && self.pii.in_arguments)
    }
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
    let secrets = r
        .table(t, "secrets", P)
        .map(|s| read_data_guard(r, s, "secrets", &SECRET_RULES))
        .unwrap_or_default();
    let pii = r
        .table(t, "pii", P)
        .map(|s| read_data_guard(r, s, "pii", &PII_RULES))
        .unwrap_or_default();
    let output_schema = r
        .table(t, "output_schema", P)
        .map(|o| {
            const O: &str = "content.output_schema";
            r.deny_unknown(o, O, O);
            OutputSchemaPolicy {
                enabled: true,
                action: r.choice(o, "action", O, "block", &CONTRACT_ACTIONS),
                mode: r.choice(o, "mode", O, "enforce", &crate::sections::access::MODES),
            }
        })
        .unwrap_or_default();
    let limits = r
        .table(t, "limits", P)
        .map(|l| limits::read_limits(r, l))
        .unwrap_or_default();
    ContentPolicy {
        present: true,
        poisoning,
        output_schema,
        secrets,
        pii,
        limits,
    }
}

fn read_allow(r: &mut Reader, t: &dyn TableLike, path: &str) -> DataAllow {
    let mut list = |key: &str| -> Vec<String> {
        r.strings(t, key, path)
            .unwrap_or_default()
            .into_iter()
            .map(|(s, _)| s)
            .collect()
    };
    DataAllow {
        values: list("allow_values"),
        tools: list("allow_tools"),
        tenants: list("allow_tenants"),
    }
}

/// Reads `[content.secrets]` or `[content.pii]` (`which`), whose rules are
/// `names`.
fn read_data_guard(
    r: &mut Reader,
    t: &dyn TableLike,
    which: &str,
    names: &[&'static str],
) -> DataGuardPolicy {
    let path = format!("content.{which}");
    let p = path.as_str();
    r.deny_unknown(t, p, p);
    let mode = r.choice(t, "mode", p, "enforce", &crate::sections::access::MODES);
    let action = r.choice(t, "action", p, "redact", &DATA_ACTIONS);
    let in_arguments = r.boolean(t, "in_arguments", p, false);
    let min_entropy = r.integer(t, "min_entropy_centibits", p, 350, 0..=800) as f64 / 100.0;
    let allow = read_allow(r, t, p);
    let mut rules: BTreeMap<&'static str, DataRule> = names
        .iter()
        .map(|n| {
            (
                *n,
                DataRule {
                    action,
                    allow: DataAllow::default(),
                },
            )
        })
        .collect();
    let rules_path = join(p, "rules");
    if let Some(rt) = r.table(t, "rules", p) {
        for (name, _) in rt.iter() {
            let path = join(&rules_path, name);
            let Some(known) = names.iter().find(|n| **n == name) else {
                let span = rt.get_key_value(name).and_then(|(k, _)| k.span());
                r.error(
                    span,
                    &path,
                    format!("unknown rule (expected one of: {})", names.join(", ")),
                );
                continue;
            };
            let Some(one) = r.table(rt, name, &rules_path) else {
                continue;
            };
            r.deny_unknown(one, &path, &format!("{p}.rules.*"));
            let rule_action = r.choice(one, "action", &path, action.as_str(), &DATA_ACTIONS);
            rules.insert(
                known,
                DataRule {
                    action: rule_action,
                    allow: read_allow(r, one, &path),
                },
            );
        }
    }
    DataGuardPolicy {
        enabled: true,
        mode,
        in_arguments,
        min_entropy,
        allow,
        rules,
    }
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
    fn output_schema() {
        assert!(!ok("").content.output_schema.enabled);
        let p = ok("[content.output_schema]\n");
        assert_eq!(p.content.output_schema.action, ContractAction::Block);
        assert!(p.content.any_enabled());
        let p = ok("[content.output_schema]\naction = \"flag\"\nmode = \"shadow\"\n");
        assert_eq!(p.content.output_schema.action, ContractAction::Flag);
        let (line, _) = error_at(
            "[content.output_schema]\naction = \"redact\"\n",
            "content.output_schema.action",
        );
        assert_eq!(line, 4);
    }

    #[test]
    fn secrets_and_pii() {
        let p = ok("[content.secrets]\nallow_tenants = [\"ops\"]\nin_arguments = true\n\
                    [content.secrets.rules.jwt]\naction = \"flag\"\nallow_tools = [\"auth_*\"]\n\
                    [content.secrets.rules.aws-access-key]\nallow_values = [\"AKIAIOSFODNN7EXAMPLE\"]\n");
        let s = &p.content.secrets;
        assert!(s.enabled && s.in_arguments && !p.content.pii.enabled);
        assert_eq!(s.min_entropy, 3.5);
        assert_eq!(
            s.action_for("github-token", "x", Some("t"), "acme"),
            DataAction::Redact
        );
        assert_eq!(
            s.action_for("github-token", "x", Some("t"), "ops"),
            DataAction::Off
        );
        assert_eq!(
            s.action_for("jwt", "x", Some("echo"), "acme"),
            DataAction::Flag
        );
        assert_eq!(
            s.action_for("jwt", "x", Some("auth_login"), "acme"),
            DataAction::Off
        );
        assert_eq!(
            s.action_for("aws-access-key", "AKIAIOSFODNN7EXAMPLE", None, "acme"),
            DataAction::Off
        );
        assert_eq!(
            s.action_for("aws-access-key", "AKIAOTHER", None, "acme"),
            DataAction::Redact
        );
        let p =
            ok("[content.pii]\naction = \"block\"\n[content.pii.rules.phone]\naction = \"off\"\n");
        assert!(p.content.pii.checks("email") && !p.content.pii.checks("phone"));
        assert_eq!(
            p.content.pii.action_for("iban", "x", None, "a"),
            DataAction::Block
        );
        let (line, msg) = error_at(
            "[content.pii.rules.ssn]\naction = \"flag\"\n",
            "content.pii.rules.ssn",
        );
        assert_eq!(line, 3);
        assert!(msg.contains("card-number"), "{msg}");
        let (line, _) = error_at(
            "[content.secrets]\naction = \"strip\"\n",
            "content.secrets.action",
        );
        assert_eq!(line, 4);
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
