//! Syntax errors are reported where the mistake is, not where toml_edit
//! noticed it.

use crate::parse_policy;

/// Nine valid lines, so the line under test is line 10.
const HEAD: &str = "[listen]\naddress = \"127.0.0.1:8080\"\n# a comment\n\n[upstream]\n\
                    url = \"http://127.0.0.1:9100/mcp\"\npool_size = 128\n\n# the next line\n";
/// What follows it: a blank line, then a table header on line 12.
const TAIL: &str = "\n\n[limits]\nmax_json_depth = 64\n";

/// The (line, column) of the one error in HEAD + `from_line_10` + TAIL.
fn position(from_line_10: &str, crlf: bool) -> (usize, usize) {
    let mut src = format!("{HEAD}{from_line_10}{TAIL}");
    if crlf {
        src = src.replace('\n', "\r\n");
    }
    let errs = parse_policy("p.toml", &src).expect_err("a syntax error").0;
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].message.starts_with("invalid TOML"), "{errs:?}");
    assert_eq!(errs[0].key_path, "");
    (errs[0].line, errs[0].column)
}

fn assert_at(from_line_10: &str, want: (usize, usize)) {
    for crlf in [false, true] {
        assert_eq!(
            position(from_line_10, crlf),
            want,
            "{from_line_10:?} (CRLF: {crlf})"
        );
    }
}

#[test]
fn bad_values() {
    assert_at("key = = 1", (10, 7));
    assert_at("x = tru", (10, 5));
    assert_at("key = [1,,2]", (10, 10));
    assert_at("name = \"é\" x", (10, 12));
}

#[test]
fn unterminated_strings() {
    assert_at("key = \"abc", (10, 11));
    assert_at("key = 'abc", (10, 11));
    // Reported at the end of the file before: the opening quotes.
    assert_at("key = \"\"\"abc", (10, 7));
    assert_at("key = '''abc", (10, 7));
}

#[test]
fn unclosed_arrays_and_inline_tables() {
    // Reported at 12:1 (the next header) before: just after the last element.
    assert_at("key = [1, 2", (10, 12));
    assert_at("key = {a = 1", (10, 13));
    // A missing comma in a multi-line array: after the element on line 11.
    assert_at("key = [\n  1\n  2\n]", (11, 4));
    // A missing element is reported where it is missing, not moved back.
    assert_at("key = [\n  1,\n  =\n]", (12, 3));
    // Columns count characters; an element ending in a multi-byte one.
    assert_at("key = [\"é\", \"ü\"", (10, 16));
}

#[test]
fn duplicate_keys() {
    assert_at("pool_size = 1", (10, 1));
    assert_at("[listen]", (10, 2));
}

#[test]
fn bad_table_headers() {
    assert_at("[upstream", (10, 10));
    assert_at("[a.]", (10, 4));
    assert_at("[[a]", (10, 5));
}

#[test]
fn any_cut_of_a_file_gets_a_position_inside_it() {
    let src = format!(
        "{HEAD}x = [\"é\", 'ü', \"\"\"ß\\\n\"\"\", {{ k = \"€\" }}, [\n  1, # c\n  2]]\n\
         [tenants.t]\napi_keys_sha256 = []\nk = '''\n€'''{TAIL}"
    );
    for (cut, _) in src.char_indices() {
        crate::fuzzing::policy(&src.as_bytes()[..cut]);
        crate::fuzzing::policy(&src.as_bytes()[cut..]);
    }
}
