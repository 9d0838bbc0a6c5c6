//! Errors found while reading a policy file.

use std::fmt;
use std::ops::Range;

/// One problem in a policy file, located precisely enough to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// File the problem is in, as given by the caller.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// Dotted key path (`limits.max_body_bytes`); empty for syntax errors.
    pub key_path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key_path.is_empty() {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )
        } else {
            write!(
                f,
                "{}:{}:{}: `{}`: {}",
                self.file, self.line, self.column, self.key_path, self.message
            )
        }
    }
}

/// Every problem found in one policy file (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.0 {
            writeln!(f, "error: {e}")?;
        }
        write!(f, "{} error(s) in policy", self.0.len())
    }
}

impl std::error::Error for PolicyErrors {}

/// Converts a byte offset into a 1-based (line, column) pair.
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

/// Where a TOML syntax error is, from the span toml_edit reports for it.
///
/// toml_edit reports a missing token as an empty span just before the next
/// token, and an unterminated multi-line string at the end of the file. Both
/// can lie lines after the mistake (`key = [1, 2` followed by a blank line
/// and `[upstream]` was reported at the `[upstream]` line), so:
/// - an empty span inside an open array or inline table, after a complete
///   element (not `[`, `{` or `,`) on an earlier line, moves to just after
///   that element: the missing `,`, `]` or `}` belongs there;
/// - the end of the file inside an unterminated multi-line string moves to
///   its opening quotes;
/// - a position on the LF of a CRLF moves to the CR (the end of the line).
pub(crate) fn syntax_error_offset(src: &str, span: Range<usize>) -> usize {
    #[derive(PartialEq)]
    enum In {
        Code,
        Comment,
        Basic,
        Literal,
        MlBasic,
        MlLiteral,
    }
    let b = src.as_bytes();
    let at = span.start.min(b.len());
    let mut state = In::Code;
    // Open arrays and inline tables (table headers excluded).
    let mut depth = 0usize;
    // Only blanks so far on this line: a `[` here at depth 0 is a header.
    let mut line_start = true;
    // End and last byte of the last token (not blank, newline or comment).
    let mut last: Option<(usize, u8)> = None;
    let mut string_start = 0;
    let mut i = 0;
    // Delimiters are ASCII and never occur inside a multi-byte UTF-8
    // sequence, so scanning bytes is exact (`last` may end inside a
    // character; it is rounded up below).
    while i < at {
        let c = b[i];
        let rest = &b[i..];
        match state {
            In::Code => match c {
                b'#' => state = In::Comment,
                b'\n' => line_start = true,
                b' ' | b'\t' | b'\r' => {}
                _ => {
                    if rest.starts_with(b"\"\"\"") || rest.starts_with(b"'''") {
                        state = if c == b'"' {
                            In::MlBasic
                        } else {
                            In::MlLiteral
                        };
                        string_start = i;
                        i += 2;
                    } else if c == b'"' || c == b'\'' {
                        state = if c == b'"' { In::Basic } else { In::Literal };
                        string_start = i;
                    } else if (c == b'[' && !(line_start && depth == 0)) || c == b'{' {
                        depth += 1;
                    } else if c == b']' || c == b'}' {
                        depth = depth.saturating_sub(1);
                    }
                    line_start = false;
                    last = Some((i + 1, c));
                }
            },
            In::Comment => {
                if c == b'\n' {
                    state = In::Code;
                    line_start = true;
                }
            }
            In::Basic | In::Literal => match c {
                // An unterminated one-line string ends with its line.
                b'\n' => {
                    state = In::Code;
                    line_start = true;
                }
                b'\r' if rest.get(1) == Some(&b'\n') => {}
                b'\\' if state == In::Basic && rest.get(1).is_some_and(|n| *n != b'\n') => {
                    i += 1;
                    last = Some((i + 1, b'\\'));
                }
                _ => {
                    if (c == b'"' && state == In::Basic) || (c == b'\'' && state == In::Literal) {
                        state = In::Code;
                    }
                    last = Some((i + 1, c));
                }
            },
            In::MlBasic | In::MlLiteral => {
                let q = if state == In::MlBasic { b'"' } else { b'\'' };
                if c == b'\\' && state == In::MlBasic {
                    i += 1;
                } else if rest.starts_with(&[q, q, q]) {
                    // Up to two more quotes still belong to the content.
                    let extra = rest[3..].iter().take(2).take_while(|x| **x == q).count();
                    i += 2 + extra;
                    state = In::Code;
                    last = Some((i + 1, q));
                }
            }
        }
        i += 1;
    }
    if matches!(state, In::MlBasic | In::MlLiteral) && span.start >= b.len() {
        return string_start;
    }
    if state == In::Code && span.is_empty() && depth > 0 {
        if let Some((mut end, c)) = last {
            // The end of the character whose last byte was seen.
            while !src.is_char_boundary(end) {
                end += 1;
            }
            let between = b.get(end..at).unwrap_or_default();
            if !matches!(c, b'[' | b'{' | b',') && between.contains(&b'\n') {
                return end;
            }
        }
    }
    if at > 0 && b.get(at) == Some(&b'\n') && b[at - 1] == b'\r' {
        return at - 1;
    }
    at
}

#[cfg(test)]
mod tests;
