//! Poisoned definitions (`[content.poisoning]`): the named rules over one
//! tool, prompt or resource definition a server lists.
//!
//! A definition acts on the model as soon as a client reads the listing
//! (line jumping), so it is judged there: its name, title and description,
//! every string and property name of `inputSchema` and `outputSchema` (a
//! payload may sit in a parameter's description, title, default or name),
//! its annotations, a prompt's arguments, a resource's URI. `icons` and
//! `_meta` are not read.
//!
//! The character rules (`invisible-characters`, `terminal-escapes`,
//! `whitespace-padding`) find byte ranges, so `strip` removes exactly what
//! was found. The text rules read each string normalized: escapes and
//! invisible characters removed, whitespace collapsed, and the text that
//! Unicode tag characters spell appended, so an instruction split by
//! zero-width characters or smuggled as tags is still read.
//! `tool-shadowing` also knows the names of the other tools on the same
//! page: a description that gives orders about one of them is a finding.
//!
//! Pure: the proxy's response phase ([`crate::response::poisoning`])
//! applies the actions and [`ContentBook`] remembers what was hidden.

pub mod text;

use std::sync::OnceLock;

use policies::{PoisonAction, PoisonRule, PoisoningPolicy};
use regex::Regex;
use serde_json::Value;

pub use crate::content_book::{ContentBook, Finding};

/// Deepest schema nesting read.
const MAX_DEPTH: usize = 32;

/// What a listing calls its entries, and which key names each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListedKind {
    Tool,
    Prompt,
    Resource,
    ResourceTemplate,
}

impl ListedKind {
    /// The kind a list method answers with, and its member in `result`.
    pub fn listed_by(method: &str) -> Option<(Self, &'static str)> {
        match method {
            "tools/list" => Some((Self::Tool, "tools")),
            "prompts/list" => Some((Self::Prompt, "prompts")),
            "resources/list" => Some((Self::Resource, "resources")),
            "resources/templates/list" => Some((Self::ResourceTemplate, "resourceTemplates")),
            _ => None,
        }
    }

    /// The key that names an entry (`name`, or a resource's `uri`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Resource => "uri",
            Self::ResourceTemplate => "uriTemplate",
            _ => "name",
        }
    }

    /// The `[access]` kind that governs it (a template is a resource).
    pub fn access_kind(self) -> policies::AccessKind {
        match self {
            Self::Tool => policies::AccessKind::Tool,
            Self::Prompt => policies::AccessKind::Prompt,
            Self::Resource | Self::ResourceTemplate => policies::AccessKind::Resource,
        }
    }

    /// The kind a call of an `[access]` target names.
    pub fn of_target(kind: policies::AccessKind) -> Self {
        match kind {
            policies::AccessKind::Tool => Self::Tool,
            policies::AccessKind::Prompt => Self::Prompt,
            policies::AccessKind::Resource => Self::Resource,
        }
    }

    pub fn noun(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Prompt => "prompt",
            Self::Resource => "resource",
            Self::ResourceTemplate => "resource template",
        }
    }
}

/// One rule that fired on one string of a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub rule: PoisonRule,
    /// Where: `description`, `inputSchema/properties/path/description`,
    /// `inputSchema/properties/<key>` for a property name.
    pub field: String,
}

struct Patterns {
    tags: Regex,
    phrases: Regex,
    secrets: Regex,
    shadow_generic: Regex,
    imperative: Regex,
}

fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let re = |s: &str| Regex::new(s).expect("a built-in pattern compiles");
        Patterns {
            tags: re(concat!(
                r"(?i)<\s*/?\s*(important|system|instructions?|secret|hidden|admin|critical",
                r"|system[_ -]?prompt|assistant|override|prompt)\b[^<>]{0,40}>",
                r"|\[/?INST\]|<\|im_(start|end|sep)\|>|<<\s*/?\s*SYS\s*>>",
                r"|<\|(system|user|assistant|endoftext)\|>"
            )),
            phrases: re(concat!(
                r"(?i)\b(ignore|forget|override)\s+(all\s+|any\s+)?(of\s+)?(the\s+|your\s+)?",
                r"(previous|prior|above|earlier|preceding|former)\s+(instructions|prompts?|messages|rules|directions)",
                r"|\bdisregard\s+(all\s+|any\s+)?(the\s+|your\s+)?(previous|prior|above|earlier|preceding|former|system|user'?s?)\b",
                r"|\b(do\s+not|don'?t|never)\s+(tell|mention|inform|reveal|disclose|notify|alert|show|let)\b[^.\n]{0,40}\buser",
                r"|\bwithout\s+(telling|informing|notifying|alerting|asking)\s+(the\s+)?user",
                r"|\buser\s+(must|should|shall)\s+(not|never)\s+(know|see|be\s+told|find\s+out|notice)",
                r"|\bthis\s+is\s+(very|extremely|critically|really)\s+important",
                r"|\bbefore\s+(using|calling|invoking|running)\s+(this|any)\s+tool\b[^.\n]{0,60}\b(read|call|send|pass|include|fetch|open|run|provide)\b",
                r"|\byou\s+must\s+(first\s+|always\s+)?(read|call|send|pass|include|fetch|open)\b",
                r"|\botherwise\s+the\s+tool\s+will\s+(not\s+work|fail|break)",
                r"|\b(reveal|print|repeat|output|show)\s+(your|the)\s+(system|developer|hidden)\s+(prompt|instructions|message)",
                r"|\b(pass|send|include)\s+(its|their|the\s+file'?s?)\s+contents?\s+(as|in)\b",
                r"|\b(new|updated|real|secret)\s+instructions\s*:",
                r"|\bas\s+an\s+ai\s+(assistant|model)\s*,?\s+you\s+(must|should|will)\b"
            )),
            secrets: re(concat!(
                r"(?i)~/\.ssh\b|\.ssh/|(^|[^a-z0-9])id_(rsa|dsa|ecdsa|ed25519)([^a-z0-9]|$)|(^|[\s/'`(\[])\.env\b",
                r"|\bmcp\.json\b|claude_desktop_config\.json|\.cursor/|\.aws/(credentials|config)\b",
                r"|\.config/gcloud\b|application_default_credentials\.json|\.azure/|\.kube/config\b",
                r"|\bkubeconfig\b|\.netrc\b|\.npmrc\b|\.pypirc\b|\.git-credentials\b",
                r"|\.docker/config\.json|/etc/(passwd|shadow|sudoers)\b|\bprivate[\s_-]?keys?\b",
                r"|\bauthorized_keys\b|\bwallet\.dat\b|\.(bash|zsh)_history\b|\bsecrets?\.(ya?ml|json|toml)\b"
            )),
            shadow_generic: re(concat!(
                r"(?i)\b(when|whenever|before|after|if)\b[^.\n]{0,60}\b(call|calls|calling|use|uses|using|invoke|invokes|invoking|run|running)\b",
                r"[^.\n]{0,40}\b(any|all|other|another|every)\b[^.\n]{0,20}\btools?\b",
                r"|\binstead\s+of\s+(using|calling|invoking)\b",
                r"|\b(all|other|every)\s+(other\s+)?tools?\b[^.\n]{0,60}\b(must|should|always|never)\b",
                r"|\b(send|forward|redirect|bcc|cc|route)\b[^.\n]{0,40}\b(all|every|any)\b[^.\n]{0,30}",
                r"\b(e-?mails?|messages?|requests?|payments?|transfers?|funds|files?|data|contents?|outputs?|results?|conversations?|chats?|history)\b[^.\n]{0,30}\bto\b"
            )),
            imperative: re(
                r"(?i)\b(must|always|never|do\s+not|don'?t|make\s+sure|ensure|important|required|has\s+to|have\s+to)\b",
            ),
        }
    })
}

/// The rules of `policy` that fire on `entry`, a `kind` definition listed
/// with `siblings` (the names of the other tools on its page).
pub fn scan(
    policy: &PoisoningPolicy,
    kind: ListedKind,
    entry: &Value,
    siblings: &[&str],
) -> Vec<Hit> {
    let mut hits = Vec::new();
    let own = entry.get(kind.key()).and_then(Value::as_str).unwrap_or("");
    for_each_string(entry, kind, &mut |field, s, is_description| {
        for rule in PoisonRule::ALL {
            if policy.action(rule) == PoisonAction::Off {
                continue;
            }
            if hits.iter().any(|h: &Hit| h.rule == rule) {
                continue;
            }
            if fires(policy, rule, s, is_description, own, siblings) {
                hits.push(Hit {
                    rule,
                    field: truncate(field),
                });
            }
        }
    });
    hits
}

fn fires(
    policy: &PoisoningPolicy,
    rule: PoisonRule,
    s: &str,
    is_description: bool,
    own: &str,
    siblings: &[&str],
) -> bool {
    let p = patterns();
    match rule {
        PoisonRule::InvisibleCharacters => !text::invisible_spans(s).is_empty(),
        PoisonRule::TerminalEscapes => !text::escape_spans(s).is_empty(),
        PoisonRule::WhitespacePadding => !text::padding_spans(s, policy.whitespace_run).is_empty(),
        PoisonRule::LongDescription => is_description && s.len() > policy.max_description_bytes,
        PoisonRule::InstructionTags => p.tags.is_match(&text::normalized(s)),
        PoisonRule::InstructionPhrases => p.phrases.is_match(&text::normalized(s)),
        PoisonRule::SecretReferences => p.secrets.is_match(&text::normalized(s)),
        PoisonRule::ToolShadowing => shadows(&text::normalized(s), own, siblings),
    }
}

/// Whether `text` gives orders about other tools: a generic phrasing, or a
/// sentence that names another tool of the page and is imperative.
fn shadows(text: &str, own: &str, siblings: &[&str]) -> bool {
    let p = patterns();
    if p.shadow_generic.is_match(text) {
        return true;
    }
    let others: Vec<&str> = siblings
        .iter()
        .copied()
        .filter(|n| *n != own && n.len() >= 3)
        .collect();
    if others.is_empty() {
        return false;
    }
    text.split(['.', '!', '?', '\n']).any(|sentence| {
        p.imperative.is_match(sentence) && others.iter().any(|n| names(sentence, n))
    })
}

/// Whether `name` occurs in `text` as a whole word.
fn names(text: &str, name: &str) -> bool {
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    text.match_indices(name).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + name.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

/// Removes what the strippable `rules` found from every string of `entry`
/// the scan reads. Whether anything changed.
pub fn strip(
    policy: &PoisoningPolicy,
    kind: ListedKind,
    entry: &mut Value,
    rules: &[PoisonRule],
) -> bool {
    let mut changed = false;
    // Until nothing is left to strip: a removal can change what its
    // neighbours are (a joiner between two emoji once what sat between
    // them is gone). Each pass that changes anything shortens the text.
    let edit = |s: &str| -> Option<String> {
        let mut out = s.to_owned();
        loop {
            let before = out.len();
            for rule in rules {
                let spans = match rule {
                    PoisonRule::TerminalEscapes => text::escape_spans(&out),
                    PoisonRule::InvisibleCharacters => text::invisible_spans(&out),
                    PoisonRule::WhitespacePadding => {
                        text::padding_spans(&out, policy.whitespace_run)
                    }
                    _ => continue,
                };
                if !spans.is_empty() {
                    let with = if *rule == PoisonRule::WhitespacePadding {
                        " "
                    } else {
                        ""
                    };
                    out = text::replace_spans(&out, &spans, with);
                }
            }
            if out.len() == before {
                break;
            }
        }
        (out != s).then_some(out)
    };
    visit_mut(entry, kind, &mut |s| {
        if let Some(new) = edit(s) {
            *s = new;
            changed = true;
        }
    });
    changed
}

/// The top-level fields read, by kind; then the nested ones.
const TOP: &[&str] = &[
    "name",
    "title",
    "description",
    "uri",
    "uriTemplate",
    "mimeType",
];
const NESTED: &[&str] = &["inputSchema", "outputSchema", "annotations", "arguments"];

/// Calls `f(field, text, is_description)` for every string the scan reads.
fn for_each_string(entry: &Value, _kind: ListedKind, f: &mut impl FnMut(&str, &str, bool)) {
    for key in TOP {
        if let Some(s) = entry.get(*key).and_then(Value::as_str) {
            f(key, s, matches!(*key, "description" | "title"));
        }
    }
    for key in NESTED {
        if let Some(v) = entry.get(*key) {
            walk(v, &mut key.to_string(), 0, f);
        }
    }
}

fn walk(v: &Value, path: &mut String, depth: usize, f: &mut impl FnMut(&str, &str, bool)) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::String(s) => {
            let leaf = path.rsplit('/').next().unwrap_or("");
            f(path, s, matches!(leaf, "description" | "title"));
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("/{i}"));
                walk(x, path, depth + 1, f);
                path.truncate(len);
            }
        }
        Value::Object(m) => {
            for (k, x) in m {
                let len = path.len();
                path.push('/');
                path.push_str(k);
                // A property name is read too (payloads hide in names).
                f(path, k, false);
                walk(x, path, depth + 1, f);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

/// [`for_each_string`]'s strings (not property names: a renamed property
/// would break the schema), mutably.
fn visit_mut(entry: &mut Value, _kind: ListedKind, f: &mut impl FnMut(&mut String)) {
    let Some(obj) = entry.as_object_mut() else {
        return;
    };
    for (key, v) in obj.iter_mut() {
        if TOP.contains(&key.as_str()) {
            if let Value::String(s) = v {
                f(s);
            }
        } else if NESTED.contains(&key.as_str()) {
            walk_mut(v, 0, f);
        }
    }
}

fn walk_mut(v: &mut Value, depth: usize, f: &mut impl FnMut(&mut String)) {
    if depth > MAX_DEPTH {
        return;
    }
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter_mut().for_each(|x| walk_mut(x, depth + 1, f)),
        Value::Object(m) => m.values_mut().for_each(|x| walk_mut(x, depth + 1, f)),
        _ => {}
    }
}

fn truncate(field: &str) -> String {
    use crate::content_book::{clip, MAX_SHOWN};
    if field.len() <= MAX_SHOWN {
        return field.to_owned();
    }
    format!("{}...", clip(field, MAX_SHOWN))
}

#[cfg(test)]
mod tests;
