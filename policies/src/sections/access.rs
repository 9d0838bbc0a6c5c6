//! `[access]`: which tools, prompts and resources each caller may see and
//! use, by tenant and by JWT scope.
//!
//! ```toml
//! [access]
//! default = "allow"                      # or "deny"
//! mode = "enforce"                       # or "shadow": the rules' default mode
//! [[access.rules]]
//! tenants = ["demo", "team-*"]           # absent or empty: any tenant
//! scopes = ["files:write"]               # any one of them (needs [auth.jwt])
//! tools = ["delete_*"]                   # globs over tool names,
//! prompts = ["*"]                        # prompt names,
//! resources = ["file:///srv/private/*"]  # resource URIs and URI templates
//! action = "deny"                        # required
//! mode = "shadow"                        # log what it would deny, deny nothing
//! ```
//!
//! The first matching rule in file order decides, else `default`. Globs: `*`
//! matches any run of characters, every other character itself (as in
//! [`super::auth`]). Rules are numbered from 1, the same in load errors
//! (`access.rules[1].action`), logs and metrics ([`AccessPolicy::rule_name`]).
//!
//! The presence of `[access]` turns judging on even when it allows
//! everything: a file without it costs the proxy nothing
//! ([`AccessPolicy::is_active`]).

use std::ops::Range;

use toml_edit::{Item, TableLike, Value};

use super::auth::glob_match;
use super::jwt::is_token;
use crate::model::Auth;
use crate::reader::{join, Reader};

/// What an `[access]` rule, or its `default`, does with what it matches.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum AccessAction {
    Allow,
    Deny,
}

/// Whether a rule decides (`enforce`) or only reports what it would deny
/// (`shadow`), to try a rule on live traffic before enforcing it.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub enum RuleMode {
    #[default]
    Enforce,
    Shadow,
}

/// What is judged: a tool, a prompt or a resource (by URI or URI template).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub enum AccessKind {
    Tool,
    Prompt,
    Resource,
}

/// One `[[access.rules]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// Globs over tenant names; empty: any tenant.
    pub tenants: Vec<String>,
    /// The caller must hold at least one of these JWT scopes; empty: any caller.
    pub scopes: Vec<String>,
    /// Globs over tool names; empty: no tool.
    pub tools: Vec<String>,
    /// Globs over prompt names; empty: no prompt.
    pub prompts: Vec<String>,
    /// Globs over resource URIs and URI templates; empty: no resource.
    pub resources: Vec<String>,
    pub action: AccessAction,
    pub mode: RuleMode,
}

impl AccessRule {
    /// Whether this rule applies to `name` of `kind` asked for by `tenant`
    /// holding `scopes`.
    fn matches(&self, kind: AccessKind, name: &str, tenant: &str, scopes: &[String]) -> bool {
        self.applies_to(tenant, scopes) && self.globs(kind).iter().any(|g| glob_match(g, name))
    }

    /// Whether the rule concerns this caller (tenant and scopes).
    fn applies_to(&self, tenant: &str, scopes: &[String]) -> bool {
        (self.tenants.is_empty() || self.tenants.iter().any(|g| glob_match(g, tenant)))
            && (self.scopes.is_empty() || self.scopes.iter().any(|s| scopes.contains(s)))
    }

    fn globs(&self, kind: AccessKind) -> &[String] {
        match kind {
            AccessKind::Tool => &self.tools,
            AccessKind::Prompt => &self.prompts,
            AccessKind::Resource => &self.resources,
        }
    }
}

/// The compiled `[access]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessPolicy {
    /// What happens when no enforced rule matches.
    pub default: AccessAction,
    /// In file order; the first match decides.
    pub rules: Vec<AccessRule>,
    /// Whether the file has an `[access]` table ([`AccessPolicy::is_active`]).
    pub configured: bool,
}

impl Default for AccessPolicy {
    /// No `[access]`: everything allowed, nothing judged.
    fn default() -> Self {
        Self {
            default: AccessAction::Allow,
            rules: Vec::new(),
            configured: false,
        }
    }
}

/// The outcome of [`AccessPolicy::decide`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct AccessVerdict {
    /// What happens: false = hidden from lists and calls refused.
    pub allowed: bool,
    /// 1-based index of the enforced rule that decided, None = `default`.
    pub rule: Option<usize>,
    /// A shadow rule would have denied what is allowed (log and count it,
    /// change nothing): its 1-based index.
    pub shadow_denied_by: Option<usize>,
}

impl AccessPolicy {
    /// False when the policy has no `[access]` table: then nothing needs
    /// judging (callers skip parsing responses entirely).
    pub fn is_active(&self) -> bool {
        self.configured
    }

    /// First matching rule wins (file order). A rule matches when the tenant
    /// matches one of its tenant globs (or it has none), the caller holds at
    /// least one of its scopes (or it lists none), and the name matches one
    /// of its globs for `kind` (a rule with no globs for that kind does not
    /// match that kind). Enforced rules decide; shadow rules never change the
    /// outcome: if evaluating every rule as enforced would deny while the
    /// enforced decision allows, `shadow_denied_by` names the shadow rule
    /// responsible.
    pub fn decide(
        &self,
        kind: AccessKind,
        name: &str,
        tenant: &str,
        scopes: &[String],
    ) -> AccessVerdict {
        // The first matching rule of any mode, and the first enforced one.
        let mut first: Option<(usize, AccessAction)> = None;
        let mut enforced: Option<(usize, AccessAction)> = None;
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.matches(kind, name, tenant, scopes) {
                continue;
            }
            first.get_or_insert((i + 1, rule.action));
            if rule.mode == RuleMode::Enforce {
                enforced = Some((i + 1, rule.action));
                break;
            }
        }
        let action = enforced.map_or(self.default, |(_, a)| a);
        // When the first match is a shadow rule that denies (an enforced one
        // would have decided alike), enforcing every rule would deny.
        let shadow_denied_by = match first {
            Some((i, AccessAction::Deny)) if action == AccessAction::Allow => Some(i),
            _ => None,
        };
        AccessVerdict {
            allowed: action == AccessAction::Allow,
            rule: enforced.map(|(i, _)| i),
            shadow_denied_by,
        }
    }

    /// Whether this caller may see anything at all of `kind`: false when the
    /// first enforced rule concerning it denies `*`, or when none allows
    /// anything and the default denies. Capabilities a caller can use nothing
    /// of are not announced to it. (An allow rule counts even if a later
    /// listing turns out to hold no name it matches.)
    pub fn may_see_any(&self, kind: AccessKind, tenant: &str, scopes: &[String]) -> bool {
        for rule in self.rules.iter().filter(|r| {
            r.mode == RuleMode::Enforce && r.applies_to(tenant, scopes) && !r.globs(kind).is_empty()
        }) {
            match rule.action {
                AccessAction::Allow => return true,
                AccessAction::Deny if rule.globs(kind).iter().any(|g| g == "*") => return false,
                AccessAction::Deny => {}
            }
        }
        self.default == AccessAction::Allow
    }

    /// Rule name for logs and metrics: `access.rules[N]` (N from 1) or `access.default`.
    pub fn rule_name(rule: Option<usize>) -> String {
        match rule {
            Some(n) => format!("access.rules[{n}]"),
            None => "access.default".to_string(),
        }
    }
}

const ACTIONS: [(&str, AccessAction); 2] =
    [("allow", AccessAction::Allow), ("deny", AccessAction::Deny)];
pub(crate) const MODES: [(&str, RuleMode); 2] =
    [("enforce", RuleMode::Enforce), ("shadow", RuleMode::Shadow)];

/// Reads `[access]` (`t`, `None` when absent); `auth` names the tenants and
/// says whether tokens (and so scopes) exist.
pub(crate) fn read_access(r: &mut Reader, t: Option<&dyn TableLike>, auth: &Auth) -> AccessPolicy {
    const P: &str = "access";
    let Some(t) = t else {
        return AccessPolicy::default();
    };
    r.deny_unknown(t, P, P);
    let default = r.choice(t, "default", P, "allow", &ACTIONS);
    let mode = r.choice(t, "mode", P, "enforce", &MODES);
    let mode_name = MODES
        .iter()
        .find(|(_, m)| *m == mode)
        .map_or("enforce", |(n, _)| n);
    let rules = rule_tables(r, t)
        .into_iter()
        .enumerate()
        .filter_map(|(i, (rule, span))| {
            read_rule(
                r,
                rule,
                span,
                &format!("{P}.rules[{}]", i + 1),
                mode_name,
                auth,
            )
        })
        .collect();
    AccessPolicy {
        default,
        rules,
        configured: true,
    }
}

/// The tables of `rules`: `[[access.rules]]`, or an inline array of inline
/// tables, each with its span.
fn rule_tables<'d>(
    r: &mut Reader,
    t: &'d dyn TableLike,
) -> Vec<(&'d dyn TableLike, Option<Range<usize>>)> {
    const P: &str = "access.rules";
    match t.get("rules") {
        None => Vec::new(),
        Some(Item::ArrayOfTables(a)) => a.iter().map(|t| (t as &dyn TableLike, t.span())).collect(),
        Some(Item::Value(Value::Array(a))) => {
            let mut out = Vec::new();
            for (i, v) in a.iter().enumerate() {
                match v.as_inline_table() {
                    Some(t) => out.push((t as &dyn TableLike, v.span())),
                    None => r.error(
                        v.span(),
                        &format!("{P}[{}]", i + 1),
                        format!("expected a table, found {}", v.type_name()),
                    ),
                }
            }
            out
        }
        Some(_) => {
            r.error(
                Reader::span_of(t, "rules"),
                P,
                "expected [[access.rules]] tables",
            );
            Vec::new()
        }
    }
}

/// Reads the rule `t` at `path` (`span`: its header); `None` when invalid
/// (reported).
fn read_rule(
    r: &mut Reader,
    t: &dyn TableLike,
    span: Option<Range<usize>>,
    path: &str,
    mode: &str,
    auth: &Auth,
) -> Option<AccessRule> {
    let errors_before = r.error_count();
    r.deny_unknown(t, path, "access.rules");
    let mut tenants = Vec::new();
    for (g, at) in globs(r, t, "tenants", path) {
        let known = auth.tenants.iter().any(|t| *t.name == g)
            || auth.anonymous_tenant.as_deref() == Some(g.as_str());
        if !g.contains('*') && !known {
            r.error(
                at,
                &join(path, "tenants"),
                format!(
                    "no tenant named `{g}`: not a [tenants.NAME] nor auth.anonymous_tenant \
                     (a name with `*` is a glob and need not name one)"
                ),
            );
        }
        tenants.push(g);
    }
    let mut scopes = Vec::new();
    for (s, at) in r.strings(t, "scopes", path).unwrap_or_default() {
        if is_token(&s) {
            scopes.push(s);
        } else {
            r.error(
                at,
                &join(path, "scopes"),
                format!("`{s}` is not a scope token"),
            );
        }
    }
    if t.get("scopes").is_some() && auth.jwt.is_none() {
        r.error(
            Reader::span_of(t, "scopes"),
            &join(path, "scopes"),
            "scopes come from tokens: scopes need [auth.jwt]",
        );
    }
    let mut names =
        |key: &str| -> Vec<String> { globs(r, t, key, path).into_iter().map(|(g, _)| g).collect() };
    let tools = names("tools");
    let prompts = names("prompts");
    let resources = names("resources");
    // A target key of the wrong type or with bad entries is reported already.
    let named = |key: &str| {
        t.get(key)
            .is_some_and(|i| i.as_array().is_none_or(|a| !a.is_empty()))
    };
    if !["tools", "prompts", "resources"].into_iter().any(named) {
        r.error(
            span.clone(),
            path,
            "name at least one of tools, prompts, resources (a rule without them matches nothing)",
        );
    }
    if t.get("action").is_none() {
        r.error(
            span,
            &join(path, "action"),
            "required: \"allow\" or \"deny\"",
        );
    }
    let action = r.choice(t, "action", path, "deny", &ACTIONS);
    let mode = r.choice(t, "mode", path, mode, &MODES);
    (r.error_count() == errors_before).then_some(AccessRule {
        tenants,
        scopes,
        tools,
        prompts,
        resources,
        action,
        mode,
    })
}

/// The globs of `key` in the rule at `path`, with their spans: non-empty
/// strings without control characters.
fn globs(
    r: &mut Reader,
    t: &dyn TableLike,
    key: &str,
    path: &str,
) -> Vec<(String, Option<Range<usize>>)> {
    let mut out = Vec::new();
    for (g, span) in r.strings(t, key, path).unwrap_or_default() {
        if g.is_empty() || g.chars().any(char::is_control) {
            r.error(
                span,
                &join(path, key),
                "a glob is a non-empty string without control characters",
            );
        } else {
            out.push((g, span));
        }
    }
    out
}

#[cfg(test)]
mod tests;
