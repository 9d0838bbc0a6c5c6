use crate::testutil::{error_at, errors, ok, UP};
use crate::{AccessAction, AccessKind, AccessPolicy, AccessRule, AccessVerdict, RuleMode};

use AccessKind::{Prompt, Resource, Tool};

/// Tenants `demo` and `team-a`, and the anonymous tenant `anonymous`.
const TENANTS: &str = "[auth]\nanonymous_tenant = \"anonymous\"\n\
    [tenants.demo]\napi_keys_sha256 = [\"c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c\"]\n\
    [tenants.team-a]\napi_keys_sha256 = [\"2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae\"]\n";
const JWT: &str = "[auth.jwt]\nissuer = \"https://as.example\"\n\
                   audiences = [\"https://mcp.example/mcp\"]\njwks_file = \"jwks.json\"\n";

/// The `[access]` policy of `TENANTS` + `src`.
fn access(src: &str) -> AccessPolicy {
    ok(&format!("{TENANTS}{src}")).access
}

/// Line (1-based) of the first line of the policy `[upstream]` + `src`
/// containing `needle`.
fn line_of(src: &str, needle: &str) -> usize {
    format!("{UP}{src}")
        .lines()
        .position(|l| l.contains(needle))
        .expect("needle")
        + 1
}

fn scopes(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// (allowed, deciding rule, shadow rule) of `kind` `name` for `demo` without scopes.
fn judge(p: &AccessPolicy, kind: AccessKind, name: &str) -> (bool, Option<usize>, Option<usize>) {
    let v = p.decide(kind, name, "demo", &[]);
    (v.allowed, v.rule, v.shadow_denied_by)
}

const ALLOWED: (bool, Option<usize>, Option<usize>) = (true, None, None);

// === compiled form and decisions ===

#[test]
fn absent_allows_everything_and_is_inactive() {
    let p = ok("");
    assert_eq!(p.access, AccessPolicy::default());
    assert!(!p.access.is_active());
    assert_eq!(p.access.default, AccessAction::Allow);
    for kind in [Tool, Prompt, Resource] {
        assert_eq!(
            p.access.decide(kind, "anything", "anonymous", &[]),
            AccessVerdict {
                allowed: true,
                rule: None,
                shadow_denied_by: None
            }
        );
    }
}

#[test]
fn present_is_active_even_when_it_allows_everything() {
    let p = access("[access]\n");
    assert!(p.is_active());
    assert_eq!(p.default, AccessAction::Allow);
    assert!(p.rules.is_empty());
    assert_eq!(judge(&p, Tool, "x"), ALLOWED);
    let p = access("[[access.rules]]\ntools = [\"x\"]\naction = \"allow\"\n");
    assert!(p.is_active(), "rules without an [access] header");
}

#[test]
fn rules_compile_in_file_order_with_their_mode() {
    let src = format!(
        "{JWT}[access]\ndefault = \"deny\"\nmode = \"shadow\"\n\
         [[access.rules]]\ntenants = [\"demo\", \"team-*\"]\nscopes = [\"files:write\"]\n\
         tools = [\"delete_*\"]\nprompts = [\"*\"]\nresources = [\"file:///srv/private/*\"]\n\
         action = \"deny\"\n\
         [[access.rules]]\ntools = [\"read_*\"]\naction = \"allow\"\nmode = \"enforce\"\n"
    );
    let p = access(&src);
    assert_eq!(p.default, AccessAction::Deny);
    assert_eq!(
        p.rules,
        [
            AccessRule {
                tenants: scopes(&["demo", "team-*"]),
                scopes: scopes(&["files:write"]),
                tools: scopes(&["delete_*"]),
                prompts: scopes(&["*"]),
                resources: scopes(&["file:///srv/private/*"]),
                action: AccessAction::Deny,
                mode: RuleMode::Shadow,
            },
            AccessRule {
                tenants: vec![],
                scopes: vec![],
                tools: scopes(&["read_*"]),
                prompts: vec![],
                resources: vec![],
                action: AccessAction::Allow,
                mode: RuleMode::Enforce,
            },
        ]
    );
    let whole = ok(&format!("{TENANTS}{src}"));
    assert_eq!(
        whole.for_worker(1, 3).access,
        whole.access,
        "not divided between workers"
    );
}

#[test]
fn inline_rules_are_read_too() {
    let p = access("[access]\nrules = [{ tools = [\"x\"], action = \"deny\" }]\n");
    assert_eq!(judge(&p, Tool, "x"), (false, Some(1), None));
    assert!(access("[access]\nrules = []\n").rules.is_empty());
}

#[test]
fn first_match_wins() {
    let p = access(
        "[[access.rules]]\ntools = [\"delete_safe\"]\naction = \"allow\"\n\
         [[access.rules]]\ntools = [\"delete_*\"]\naction = \"deny\"\n\
         [[access.rules]]\ntools = [\"delete_x\"]\naction = \"allow\"\n",
    );
    assert_eq!(judge(&p, Tool, "delete_safe"), (true, Some(1), None));
    assert_eq!(judge(&p, Tool, "delete_x"), (false, Some(2), None));
    assert_eq!(judge(&p, Tool, "read"), ALLOWED);
}

#[test]
fn default_deny() {
    let p = access(
        "[access]\ndefault = \"deny\"\n\
         [[access.rules]]\ntools = [\"read_*\"]\nprompts = [\"greet\"]\naction = \"allow\"\n",
    );
    assert_eq!(judge(&p, Tool, "read_file"), (true, Some(1), None));
    assert_eq!(judge(&p, Tool, "write_file"), (false, None, None));
    assert_eq!(judge(&p, Prompt, "greet"), (true, Some(1), None));
    assert_eq!(judge(&p, Resource, "file:///a"), (false, None, None));
}

#[test]
fn tenant_globs() {
    let p = access(
        "[[access.rules]]\ntenants = [\"demo\", \"team-*\"]\ntools = [\"*\"]\naction = \"deny\"\n\
         [[access.rules]]\ntenants = []\ntools = [\"admin_*\"]\naction = \"deny\"\n",
    );
    let allowed = |tenant: &str, tool: &str| p.decide(Tool, tool, tenant, &[]).allowed;
    assert!(!allowed("demo", "x"));
    assert!(!allowed("team-a", "x"));
    assert!(!allowed("team-b", "x"), "a glob need not name a tenant");
    assert!(allowed("anonymous", "x"));
    assert!(allowed("demo2", "x"), "no `*`: the exact name");
    assert!(!allowed("anonymous", "admin_reset"), "empty: any tenant");
}

#[test]
fn scopes_any_of() {
    let p = access(&format!(
        "{JWT}[[access.rules]]\nscopes = [\"files:write\", \"admin\"]\ntools = [\"write_*\"]\n\
         action = \"allow\"\n\
         [[access.rules]]\ntools = [\"write_*\"]\naction = \"deny\"\n"
    ));
    let verdict = |held: &[&str]| {
        let v = p.decide(Tool, "write_file", "demo", &scopes(held));
        (v.allowed, v.rule)
    };
    assert_eq!(verdict(&["admin"]), (true, Some(1)));
    assert_eq!(verdict(&["files:read", "files:write"]), (true, Some(1)));
    assert_eq!(verdict(&["files:read"]), (false, Some(2)));
    assert_eq!(verdict(&[]), (false, Some(2)));
}

#[test]
fn kinds_are_separate() {
    let p = access(
        "[[access.rules]]\ntools = [\"*\"]\naction = \"deny\"\n\
         [[access.rules]]\nresources = [\"file:///srv/private/*\"]\naction = \"deny\"\n",
    );
    assert_eq!(judge(&p, Tool, "greet"), (false, Some(1), None));
    assert_eq!(judge(&p, Prompt, "greet"), ALLOWED, "a tools-only rule");
    assert_eq!(
        judge(&p, Resource, "file:///srv/private/a.txt"),
        (false, Some(2), None)
    );
    assert_eq!(
        judge(&p, Resource, "file:///srv/private/{name}"),
        (false, Some(2), None),
        "a URI template"
    );
    assert_eq!(judge(&p, Resource, "file:///srv/public/a.txt"), ALLOWED);
}

#[test]
fn shadow_rules_change_nothing_but_are_reported() {
    // Shadow by the section's mode; a rule may enforce.
    let p = access(
        "[access]\nmode = \"shadow\"\n\
         [[access.rules]]\ntools = [\"delete_*\"]\naction = \"deny\"\n\
         [[access.rules]]\ntools = [\"drop_*\"]\naction = \"deny\"\nmode = \"enforce\"\n",
    );
    assert_eq!(judge(&p, Tool, "delete_file"), (true, None, Some(1)));
    assert_eq!(judge(&p, Tool, "drop_table"), (false, Some(2), None));
    assert_eq!(judge(&p, Tool, "read"), ALLOWED);

    // A shadow allow before an enforced deny does not allow.
    let p = access(
        "[[access.rules]]\ntools = [\"x\"]\naction = \"allow\"\nmode = \"shadow\"\n\
         [[access.rules]]\ntools = [\"x\"]\naction = \"deny\"\n",
    );
    assert_eq!(judge(&p, Tool, "x"), (false, Some(2), None));

    // A shadow deny before an enforced allow: allowed by rule 2, reported.
    let p = access(
        "[[access.rules]]\ntools = [\"x\"]\naction = \"deny\"\nmode = \"shadow\"\n\
         [[access.rules]]\ntools = [\"*\"]\naction = \"allow\"\n",
    );
    assert_eq!(judge(&p, Tool, "x"), (true, Some(2), Some(1)));

    // Behind an enforced allow a shadow deny would never be reached.
    let p = access(
        "[[access.rules]]\ntools = [\"*\"]\naction = \"allow\"\n\
         [[access.rules]]\ntools = [\"x\"]\naction = \"deny\"\nmode = \"shadow\"\n",
    );
    assert_eq!(judge(&p, Tool, "x"), (true, Some(1), None));

    // Shadow allows over a default deny change nothing and report nothing.
    let p = access(
        "[access]\ndefault = \"deny\"\n\
         [[access.rules]]\ntools = [\"x\"]\naction = \"allow\"\nmode = \"shadow\"\n",
    );
    assert_eq!(judge(&p, Tool, "x"), (false, None, None));

    // The first matching shadow rule is the one named.
    let p = access(
        "[access]\nmode = \"shadow\"\n\
         [[access.rules]]\ntools = [\"a*\"]\ntenants = [\"team-*\"]\naction = \"deny\"\n\
         [[access.rules]]\ntools = [\"ab\"]\naction = \"deny\"\n\
         [[access.rules]]\ntools = [\"a*\"]\naction = \"deny\"\n",
    );
    assert_eq!(judge(&p, Tool, "ab"), (true, None, Some(2)));
    assert_eq!(judge(&p, Tool, "ac"), (true, None, Some(3)));
}

#[test]
fn rule_names() {
    assert_eq!(AccessPolicy::rule_name(Some(1)), "access.rules[1]");
    assert_eq!(AccessPolicy::rule_name(Some(12)), "access.rules[12]");
    assert_eq!(AccessPolicy::rule_name(None), "access.default");
}

// === errors ===

#[test]
fn unknown_keys() {
    let src = format!(
        "{TENANTS}[access]\ndefualt = \"deny\"\n\
         [[access.rules]]\ntools = [\"x\"]\naction = \"deny\"\nacton = \"deny\"\n"
    );
    let (line, msg) = error_at(&src, "access.defualt");
    assert_eq!(line, line_of(&src, "defualt"));
    assert!(msg.contains("unknown key"), "{msg}");
    let (line, msg) = error_at(&src, "access.rules[1].acton");
    assert_eq!(line, line_of(&src, "acton"));
    assert!(msg.contains("unknown key"), "{msg}");
    assert!(msg.contains("resources"), "{msg}");
}

#[test]
fn bad_action_and_mode_values() {
    let src = format!(
        "{TENANTS}[access]\ndefault = \"block\"\nmode = \"audit\"\n\
         [[access.rules]]\ntools = [\"x\"]\naction = \"deny\"\n\
         [[access.rules]]\ntools = [\"y\"]\naction = \"block\"\nmode = \"dry-run\"\n"
    );
    let (line, msg) = error_at(&src, "access.default");
    assert_eq!(line, line_of(&src, "default = \"block\""));
    assert!(msg.contains("\"allow\", \"deny\""), "{msg}");
    let (line, msg) = error_at(&src, "access.mode");
    assert_eq!(line, line_of(&src, "audit"));
    assert!(msg.contains("\"enforce\", \"shadow\""), "{msg}");
    let (line, msg) = error_at(&src, "access.rules[2].action");
    assert_eq!(line, line_of(&src, "action = \"block\""));
    assert!(
        msg.contains("`block` is not one of \"allow\", \"deny\""),
        "{msg}"
    );
    let (line, _) = error_at(&src, "access.rules[2].mode");
    assert_eq!(line, line_of(&src, "dry-run"));
    assert_eq!(errors(&src).len(), 4, "{:?}", errors(&src));
}

#[test]
fn action_is_required() {
    let src = format!("{TENANTS}[[access.rules]]\ntools = [\"x\"]\n");
    let (line, msg) = error_at(&src, "access.rules[1].action");
    assert_eq!(line, line_of(&src, "[[access.rules]]"), "at the rule");
    assert!(msg.contains("required"), "{msg}");
}

#[test]
fn a_rule_needs_targets() {
    for body in ["", "tools = []\nprompts = []\n", "tenants = [\"demo\"]\n"] {
        let src = format!(
            "{TENANTS}[[access.rules]]\ntools = [\"x\"]\naction = \"deny\"\n\
             [[access.rules]]\n{body}action = \"deny\"\n"
        );
        let (line, msg) = error_at(&src, "access.rules[2]");
        let header = format!("{UP}{src}")
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains("[[access.rules]]"))
            .nth(1)
            .unwrap()
            .0
            + 1;
        assert_eq!(line, header, "{body:?}: at the rule");
        assert!(msg.contains("tools, prompts, resources"), "{msg}");
        assert_eq!(errors(&src).len(), 1, "{body:?}");
    }
}

#[test]
fn tenant_names_must_exist() {
    let src = format!(
        "{TENANTS}[[access.rules]]\ntenants = [\"demo\", \"anonymous\", \"team-*\",\n  \"dmo\"]\n\
         tools = [\"x\"]\naction = \"deny\"\n"
    );
    let (line, msg) = error_at(&src, "access.rules[1].tenants");
    assert_eq!(line, line_of(&src, "\"dmo\""), "at the entry");
    assert!(msg.contains("no tenant named `dmo`"), "{msg}");
    // The implicit anonymous tenant counts too.
    let p = ok("[[access.rules]]\ntenants = [\"anonymous\"]\ntools = [\"x\"]\naction = \"deny\"\n");
    assert!(!p.access.decide(Tool, "x", "anonymous", &[]).allowed);
}

#[test]
fn empty_and_non_string_globs() {
    let src = format!(
        "{TENANTS}[[access.rules]]\ntools = [\"x\",\n  \"\"]\nprompts = [\"p\\u0007\"]\n\
         resources = [\"r\", 7]\ntenants = [\"\"]\naction = \"deny\"\n"
    );
    let (line, msg) = error_at(&src, "access.rules[1].tools");
    assert_eq!(line, line_of(&src, "  \"\"]"));
    assert!(msg.contains("non-empty"), "{msg}");
    let (line, _) = error_at(&src, "access.rules[1].prompts");
    assert_eq!(line, line_of(&src, "prompts ="));
    let (line, msg) = error_at(&src, "access.rules[1].resources[1]");
    assert_eq!(line, line_of(&src, "resources ="));
    assert!(msg.contains("expected a string"), "{msg}");
    let (line, _) = error_at(&src, "access.rules[1].tenants");
    assert_eq!(line, line_of(&src, "tenants = [\"\"]"));
    let src = format!("{TENANTS}[[access.rules]]\ntools = \"x\"\naction = \"deny\"\n");
    assert!(error_at(&src, "access.rules[1].tools")
        .1
        .contains("expected an array"));
}

#[test]
fn scopes_need_jwt_and_are_tokens() {
    let src = format!(
        "{TENANTS}[[access.rules]]\nscopes = [\"files:write\"]\ntools = [\"x\"]\naction = \"deny\"\n"
    );
    let (line, msg) = error_at(&src, "access.rules[1].scopes");
    assert_eq!(line, line_of(&src, "scopes ="));
    assert!(msg.contains("scopes need [auth.jwt]"), "{msg}");
    let src = format!(
        "{JWT}[[access.rules]]\nscopes = [\"files write\", \"\"]\ntools = [\"x\"]\naction = \"deny\"\n"
    );
    let all = errors(&src);
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(all.iter().all(|(p, l, m)| p == "access.rules[1].scopes"
        && *l == line_of(&src, "scopes =")
        && m.contains("not a scope token")));
}

#[test]
fn rules_must_be_tables() {
    let src = "[access.rules]\ntools = [\"x\"]\naction = \"deny\"\n";
    let (line, msg) = error_at(src, "access.rules");
    assert_eq!(line, 3);
    assert!(msg.contains("[[access.rules]]"), "{msg}");
    let (_, msg) = error_at("[access]\nrules = [\"x\"]\n", "access.rules[1]");
    assert!(msg.contains("expected a table"), "{msg}");
    let at_root = crate::parse_policy("t.toml", &format!("access = 1\n{UP}"))
        .expect_err("invalid")
        .0;
    assert_eq!(at_root.len(), 1, "{at_root:?}");
    assert_eq!(
        (at_root[0].key_path.as_str(), at_root[0].line),
        ("access", 1)
    );
    assert!(at_root[0].message.contains("expected a table"));
}

#[test]
fn every_rule_error_is_reported_at_once() {
    let src = format!(
        "{TENANTS}[[access.rules]]\ntools = [\"x\"]\naction = \"nope\"\n\
         [[access.rules]]\ntenants = [\"ghost\"]\nprompts = [\"p\"]\naction = \"deny\"\n\
         [[access.rules]]\naction = \"allow\"\n"
    );
    let paths: Vec<String> = errors(&src).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(
        paths,
        [
            "access.rules[1].action",
            "access.rules[2].tenants",
            "access.rules[3]"
        ]
    );
}

#[test]
fn may_see_any_follows_the_first_deciding_rule() {
    let a = &ok(r#"
[tenants.a]
api_keys_sha256 = ["c48a01f49fd0f2cc404bc3cbbc80e91457a3d41bb429a695243de4c61794155c"]
[tenants.b]
api_keys_sha256 = ["0000000000000000000000000000000000000000000000000000000000000000"]
[access]
default = "deny"
[[access.rules]]
tenants = ["a"]
tools = ["*"]
action = "deny"
[[access.rules]]
tools = ["echo"]
prompts = ["p*"]
action = "allow"
[[access.rules]]
tenants = ["b"]
resources = ["*"]
action = "deny"
mode = "shadow"
"#)
    .access;
    assert!(!a.may_see_any(AccessKind::Tool, "a", &[]));
    assert!(a.may_see_any(AccessKind::Tool, "b", &[]));
    assert!(a.may_see_any(AccessKind::Prompt, "a", &[]));
    // Shadow rules decide nothing; the default denies resources.
    assert!(!a.may_see_any(AccessKind::Resource, "b", &[]));
}
