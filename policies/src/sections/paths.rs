//! `[paths]`: what the path-traversal filter allows.
//!
//! ```toml
//! [paths]
//! allowed_schemes = ["file", "demo"]        # empty or absent: any scheme
//! allowed_roots = ["file:///srv/data/**"]   # empty or absent: no root restriction
//! heuristic = false                         # also judge path-like tool arguments
//! [paths.tools]
//! read_file = ["/path"]                     # JSON pointers into the tool's arguments
//! [paths.upstreams.default]                 # per upstream pool ("default" = [upstream])
//! allowed_roots = ["file:///srv/**"]
//! [tenants.acme.paths]                      # per tenant: replaces the keys it sets
//! allowed_roots = ["file:///srv/data/acme/**"]
//! ```
//!
//! A URI must satisfy the tenant's scope (or `[paths]` for a tenant without
//! one) **and** the scope of the upstream it goes to. Traversal sequences are
//! rejected whatever the scopes say.

use std::collections::BTreeMap;

use toml_edit::TableLike;

use super::pointer::read_tool_pointers;
use crate::reader::{join, Reader};

/// Name of `[upstream]` in per-upstream tables; `[upstreams.NAME]` pools
/// use their own names.
pub const DEFAULT_UPSTREAM: &str = super::upstreams::DEFAULT_POOL;

/// Which URIs one tenant or upstream may name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UriScope {
    /// Lower-case schemes; empty means any scheme.
    pub schemes: Vec<String>,
    /// Allowed roots; empty means no root restriction.
    pub roots: Vec<RootGlob>,
}

impl UriScope {
    /// Whether `scheme` (lower case) is allowed.
    pub fn allows_scheme(&self, scheme: &str) -> bool {
        self.schemes.is_empty() || self.schemes.iter().any(|s| s == scheme)
    }

    /// Whether the canonical `uri` lies under an allowed root.
    pub fn allows_uri(&self, uri: &str) -> bool {
        self.roots.is_empty() || self.roots.iter().any(|r| r.matches(uri))
    }
}

/// An allowed root such as `file:///srv/data/**`, written decoded.
///
/// `*` matches within one path segment, `**` across segments, `?` one
/// character other than `/`. Scheme and authority are compared in lower case,
/// the path as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootGlob {
    pattern: String,
    tokens: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    One,
    Segment,
    Deep,
}

impl RootGlob {
    /// Parses and validates a root pattern.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let Some((scheme, rest)) = raw.split_once(':') else {
            return Err(format!(
                "`{raw}` has no scheme (write e.g. file:///srv/data/**)"
            ));
        };
        if !is_scheme(&scheme.to_ascii_lowercase()) {
            return Err(format!("`{raw}`: `{scheme}` is not a URI scheme"));
        }
        if raw.chars().any(|c| c.is_control() || c == '\\' || c == '%') {
            return Err(format!(
                "`{raw}`: write roots decoded, with `/` only (no `%`, `\\` or control characters)"
            ));
        }
        if rest.split('/').any(|seg| seg == ".." || seg == ".") {
            return Err(format!("`{raw}` contains a `.` or `..` segment"));
        }
        // Lower-case the scheme and the authority; the path stays as written.
        let mut pattern = scheme.to_ascii_lowercase();
        pattern.push(':');
        match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find('/').unwrap_or(after.len());
                pattern.push_str("//");
                pattern.push_str(&after[..end].to_lowercase());
                pattern.push_str(&after[end..]);
            }
            None => pattern.push_str(rest),
        }
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' if chars.peek() == Some(&'*') => {
                    chars.next();
                    Token::Deep
                }
                '*' => Token::Segment,
                '?' => Token::One,
                c => Token::Char(c),
            });
        }
        Ok(Self { pattern, tokens })
    }

    /// The pattern (scheme and authority lower-cased).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the canonical `uri` matches (linear in pattern x uri).
    pub fn matches(&self, uri: &str) -> bool {
        let text: Vec<char> = uri.chars().collect();
        let mut dp = vec![false; text.len() + 1];
        dp[0] = true;
        for t in &self.tokens {
            let mut next = vec![false; text.len() + 1];
            for j in 0..=text.len() {
                next[j] = match t {
                    Token::Char(c) => j > 0 && dp[j - 1] && text[j - 1] == *c,
                    Token::One => j > 0 && dp[j - 1] && text[j - 1] != '/',
                    Token::Segment => dp[j] || (j > 0 && next[j - 1] && text[j - 1] != '/'),
                    Token::Deep => dp[j] || (j > 0 && next[j - 1]),
                };
            }
            dp = next;
        }
        dp[text.len()]
    }
}

/// The compiled `[paths]` section.
#[derive(Debug, Clone, Default)]
pub struct PathPolicy {
    /// `[paths]` itself: the scope of every tenant without its own.
    pub scope: UriScope,
    /// `[tenants.NAME.paths]`, already merged with `[paths]`.
    pub tenants: BTreeMap<String, UriScope>,
    /// `[paths.upstreams.NAME]`: must be satisfied as well.
    pub upstreams: BTreeMap<String, UriScope>,
    /// Tool name -> JSON pointers of its path arguments.
    pub tools: BTreeMap<String, Vec<String>>,
    /// Judge every tool argument string that looks like a path or file URI.
    pub heuristic: bool,
    /// `shadow`: log and count what would be refused, refuse nothing.
    pub mode: crate::RuleMode,
}

impl PathPolicy {
    /// The scopes a URI must satisfy for `tenant` sending to `upstream`.
    pub fn scopes(&self, tenant: Option<&str>, upstream: &str) -> [Option<&UriScope>; 2] {
        let own = tenant
            .and_then(|t| self.tenants.get(t))
            .unwrap_or(&self.scope);
        [Some(own), self.upstreams.get(upstream)]
    }
}

/// Reads `[paths]` plus every `[tenants.NAME.paths]`. `upstream_names` are
/// the names a `[paths.upstreams.NAME]` table may use.
pub(crate) fn read_paths(
    r: &mut Reader,
    t: Option<&dyn TableLike>,
    tenants: Option<&dyn TableLike>,
    upstream_names: &[&str],
) -> PathPolicy {
    const P: &str = "paths";
    let mut out = PathPolicy::default();
    if let Some(t) = t {
        r.deny_unknown(t, P, P);
        out.scope = read_scope(r, t, P, &UriScope::default());
        out.heuristic = r.boolean(t, "heuristic", P, false);
        out.mode = r.choice(t, "mode", P, "enforce", &crate::sections::access::MODES);
        out.tools = read_tool_pointers(r, t, P);
        if let Some(ups) = r.table(t, "upstreams", P) {
            let ups_path = join(P, "upstreams");
            for (name, _) in ups.iter() {
                let path = join(&ups_path, name);
                if !upstream_names.contains(&name) {
                    let span = ups.get_key_value(name).and_then(|(k, _)| k.span());
                    r.error(
                        span,
                        &path,
                        format!(
                            "no upstream pool named `{name}` (defined: {}; `default` is [upstream])",
                            upstream_names.join(", ")
                        ),
                    );
                    continue;
                }
                if let Some(ut) = r.table(ups, name, &ups_path) {
                    r.deny_unknown(ut, &path, "paths.upstreams.*");
                    let scope = read_scope(r, ut, &path, &UriScope::default());
                    out.upstreams.insert(name.to_string(), scope);
                }
            }
        }
    }
    if let Some(tenants) = tenants {
        for (name, item) in tenants.iter() {
            let Some(tt) = item.as_table_like() else {
                continue; // reported by the auth section
            };
            let tenant_path = join("tenants", name);
            if let Some(pt) = r.table(tt, "paths", &tenant_path) {
                let path = join(&tenant_path, "paths");
                r.deny_unknown(pt, &path, "tenants.*.paths");
                let scope = read_scope(r, pt, &path, &out.scope);
                out.tenants.insert(name.to_string(), scope);
            }
        }
    }
    out
}

/// Reads `allowed_schemes` / `allowed_roots`; absent keys keep `base`'s.
fn read_scope(r: &mut Reader, t: &dyn TableLike, path: &str, base: &UriScope) -> UriScope {
    let schemes = read_schemes(r, t, path).unwrap_or_else(|| base.schemes.clone());
    let roots = match r.strings(t, "allowed_roots", path) {
        None => base.roots.clone(),
        Some(list) => list
            .into_iter()
            .filter_map(|(s, span)| match RootGlob::parse(&s) {
                Ok(g) => Some(g),
                Err(why) => {
                    r.error(span, &join(path, "allowed_roots"), why);
                    None
                }
            })
            .collect(),
    };
    UriScope { schemes, roots }
}

/// RFC 3986 scheme: a letter, then letters, digits, `+`, `-`, `.` (lower case here).
/// `allowed_schemes` of table `t` (lower-cased, each checked to be a URI
/// scheme); `None` when the key is absent.
pub(crate) fn read_schemes(r: &mut Reader, t: &dyn TableLike, path: &str) -> Option<Vec<String>> {
    let list = r.strings(t, "allowed_schemes", path)?;
    Some(
        list.into_iter()
            .filter_map(|(s, span)| {
                let lower = s.to_ascii_lowercase();
                if is_scheme(&lower) {
                    Some(lower)
                } else {
                    r.error(
                        span,
                        &join(path, "allowed_schemes"),
                        format!("`{s}` is not a URI scheme"),
                    );
                    None
                }
            })
            .collect(),
    )
}

pub(crate) fn is_scheme(s: &str) -> bool {
    let mut b = s.bytes();
    b.next().is_some_and(|c| c.is_ascii_lowercase())
        && b.all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let g = RootGlob::parse("FILE:///srv/data/**").unwrap();
        assert_eq!(g.as_str(), "file:///srv/data/**");
        assert!(g.matches("file:///srv/data/a.txt"));
        assert!(g.matches("file:///srv/data/a/b/c.txt"));
        assert!(g.matches("file:///srv/data/"));
        assert!(!g.matches("file:///srv/data"));
        assert!(!g.matches("file:///srv/database/x"));
        assert!(!g.matches("file:///etc/passwd"));
        let one = RootGlob::parse("repo://Acme/*.md").unwrap();
        assert!(one.matches("repo://acme/readme.md"));
        assert!(!one.matches("repo://acme/docs/readme.md"));
        let q = RootGlob::parse("demo://readm?").unwrap();
        assert!(q.matches("demo://readme"));
        assert!(!q.matches("demo://readm/"));
    }

    #[test]
    fn bad_globs() {
        for bad in [
            "/srv/data/**",
            "file:///srv/../etc/**",
            "file:///srv/my%20data",
            "file:///c:\\x",
            "1x://a",
        ] {
            assert!(RootGlob::parse(bad).is_err(), "{bad}");
        }
    }
}
