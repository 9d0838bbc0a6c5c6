//! Character-level findings: invisible characters, terminal escapes and
//! whitespace padding, each found as byte ranges so `strip` removes exactly
//! what was found.

use std::ops::Range;

/// Emoji tag sequences (subdivision flags) start with this black flag.
const BLACK_FLAG: char = '\u{1F3F4}';
const CANCEL_TAG: char = '\u{E007F}';

/// Whether `c` is invisible when rendered, ignoring context.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{E0000}'..='\u{E007F}'            // tag characters
        | '\u{200B}'..='\u{200D}'            // zero-width space, (non-)joiner
        | '\u{2060}'..='\u{2064}'            // word joiner, invisible operators
        | '\u{FEFF}'                         // zero-width no-break space
        | '\u{202A}'..='\u{202E}'            // bidi embeddings and overrides
        | '\u{2066}'..='\u{2069}'            // bidi isolates
        | '\u{200E}' | '\u{200F}'            // bidi marks
        | '\u{FE00}'..='\u{FE0D}'            // variation selectors 1-14
        | '\u{E0100}'..='\u{E01EF}'          // variation selectors 17-256
        | '\u{180E}'                         // Mongolian vowel separator
        | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
    )
}

/// Whether a character may stand on either side of a legitimate zero-width
/// joiner (emoji sequences such as family or profession emoji).
fn joins_emoji(c: Option<char>) -> bool {
    c.is_some_and(|c| (c as u32) >= 0x2000 && !c.is_alphanumeric())
}

/// Byte ranges of invisible characters in `s`, except those of emoji: a
/// subdivision flag's tag sequence (U+1F3F4, tags, U+E007F) and a
/// zero-width joiner between two emoji.
pub fn invisible_spans(s: &str) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        if c == BLACK_FLAG {
            // A well-formed flag: tags up to and including CANCEL TAG.
            let mut j = i + 1;
            while j < chars.len() && ('\u{E0020}'..='\u{E007E}').contains(&chars[j].1) && j - i <= 8
            {
                j += 1;
            }
            if j > i + 1 && j < chars.len() && chars[j].1 == CANCEL_TAG {
                i = j + 1;
                continue;
            }
        }
        let emoji_joiner = c == '\u{200D}'
            && joins_emoji(i.checked_sub(1).map(|p| chars[p].1))
            && joins_emoji(chars.get(i + 1).map(|n| n.1));
        if invisible(c) && !emoji_joiner {
            push_merged(&mut out, at..at + c.len_utf8());
        }
        i += 1;
    }
    out
}

/// The text that tag characters in `s` spell (U+E0041 is `A`): hidden
/// instructions smuggled as tags are judged by the text rules too.
pub fn tag_text(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            '\u{E0020}'..='\u{E007E}' => char::from_u32(c as u32 - 0xE0000),
            _ => None,
        })
        .collect()
}

/// Byte ranges of terminal escape sequences and other control characters
/// (tab, line feed and carriage return excepted): ESC sequences (CSI up to
/// its final byte, OSC/DCS/APC/PM up to BEL or ST, else ESC and the next
/// character), C1 controls (with a CSI's parameters) and DEL.
pub fn escape_spans(s: &str) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = s.char_indices().collect();
    let end_of = |k: usize| chars.get(k).map_or(s.len(), |c| c.0);
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let control = (c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
            || c == '\u{7F}'
            || ('\u{80}'..='\u{9F}').contains(&c);
        if !control {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        let kind = match c {
            '\u{1B}' => chars.get(j).map(|n| n.1),
            '\u{9B}' => Some('['),
            '\u{9D}' | '\u{90}' | '\u{9E}' | '\u{9F}' => Some(']'),
            _ => None,
        };
        if c == '\u{1B}' && kind.is_some() {
            j += 1;
        }
        match kind {
            Some('[') => {
                // Parameters and intermediates, then one final byte.
                while j < chars.len() && ('\u{20}'..='\u{3F}').contains(&chars[j].1) {
                    j += 1;
                }
                if j < chars.len() && ('\u{40}'..='\u{7E}').contains(&chars[j].1) {
                    j += 1;
                }
            }
            Some(']' | 'P' | '_' | '^' | 'X') => {
                // A string up to BEL, ST (ESC \) or the C1 ST.
                while j < chars.len() {
                    let n = chars[j].1;
                    if n == '\u{7}' || n == '\u{9C}' {
                        j += 1;
                        break;
                    }
                    if n == '\u{1B}' && chars.get(j + 1).map(|x| x.1) == Some('\\') {
                        j += 2;
                        break;
                    }
                    j += 1;
                }
            }
            _ => {}
        }
        push_merged(&mut out, at..end_of(j));
        i = j;
    }
    out
}

/// Byte ranges of runs of at least `min` whitespace characters.
pub fn padding_spans(s: &str, min: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    let mut count = 0;
    for (at, c) in s.char_indices().chain(std::iter::once((s.len(), 'x'))) {
        if c.is_whitespace() {
            start.get_or_insert(at);
            count += 1;
        } else {
            if let Some(st) = start.take() {
                if count >= min {
                    out.push(st..at);
                }
            }
            count = 0;
        }
    }
    out
}

fn push_merged(out: &mut Vec<Range<usize>>, r: Range<usize>) {
    match out.last_mut() {
        Some(last) if last.end == r.start => last.end = r.end,
        _ => out.push(r),
    }
}

/// `s` with `spans` (sorted, disjoint) replaced by `with`.
pub fn replace_spans(s: &str, spans: &[Range<usize>], with: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut from = 0;
    for r in spans {
        out.push_str(&s[from..r.start]);
        out.push_str(with);
        from = r.end;
    }
    out.push_str(&s[from..]);
    out
}

/// The text the text rules read: escapes and invisible characters removed,
/// whitespace runs collapsed to one space, and the text any tag characters
/// spell appended.
pub fn normalized(s: &str) -> String {
    let hidden = tag_text(s);
    let s = replace_spans(s, &escape_spans(s), "");
    let s = replace_spans(&s, &invisible_spans(&s), "");
    let mut out = String::with_capacity(s.len() + hidden.len() + 1);
    let mut space = false;
    for c in s.chars() {
        if c.is_whitespace() {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c);
    }
    if !hidden.is_empty() {
        out.push(' ');
        out.push_str(&hidden);
    }
    out
}
