//! Canonical form of a URI or file path, as the most lenient server would read it.
//!
//! A path is judged only after every trick that could hide a `..` from a
//! naive check has been undone, in this order, repeated until nothing changes:
//!
//! 1. look-alikes folded: full-width forms (`．` `／` `＼` `％` `：`), one- and
//!    two-dot leaders (U+2024, U+2025), the ellipsis, small and ideographic
//!    full stops, division/fraction slashes and other solidus look-alikes;
//!    invisible characters (zero-width, soft hyphen, bidi controls) dropped;
//! 2. NUL and every other control character refused outright;
//! 3. one round of percent-decoding (`%2e`, and IIS-style `%u002e`), the
//!    result required to be valid UTF-8; overlong forms (`%c0%ae`,
//!    `%e0%80%ae`) are refused as such, as is anything still encoded after
//!    four rounds (five levels of encoding or more).
//!
//! Then `\` becomes `/`, and the string is split into scheme, authority, path,
//! query and fragment. [`Canonical::check`] refuses `..` segments (also as
//! `...`, `.. `, `..;param`, `..::$DATA`), `file://host/` with a remote host,
//! UNC and device paths (`\\server\share`, `//?/C:`), drive letters anywhere
//! but at the start, drive-relative paths (`C:foo`) and `~` home expansion.
//! A later file-path segment that starts with one letter and a colon (`a:b`)
//! counts as a drive letter: refused, like every other way to re-root a path.

/// Longest URI or path inspected; longer ones are refused.
pub const MAX_INSPECTED_BYTES: usize = 16 * 1024;

/// Rounds of percent-decoding undone before a string counts as over-encoded.
const MAX_DECODE_ROUNDS: usize = 4;

/// Which rule a URI or path broke (for the log; the client sees a generic error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    TooLong,
    Nul,
    ControlChar,
    InvalidUtf8,
    OverlongUtf8,
    TooManyEncodings,
    DotDotSegment,
    EmbeddedDriveLetter,
    DriveRelative,
    UncPath,
    RemoteFileHost,
    HomeDirectory,
}

impl Finding {
    /// Stable rule name used in log details.
    pub fn rule(self) -> &'static str {
        match self {
            Self::TooLong => "too-long",
            Self::Nul => "nul-byte",
            Self::ControlChar => "control-character",
            Self::InvalidUtf8 => "invalid-utf8",
            Self::OverlongUtf8 => "overlong-utf8",
            Self::TooManyEncodings => "too-many-encodings",
            Self::DotDotSegment => "dot-dot-segment",
            Self::EmbeddedDriveLetter => "embedded-drive-letter",
            Self::DriveRelative => "drive-relative-path",
            Self::UncPath => "unc-path",
            Self::RemoteFileHost => "remote-file-host",
            Self::HomeDirectory => "home-directory",
        }
    }
}

/// A URI or path after decoding and folding, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// Lower-case scheme; `None` for a bare path (a one-letter "scheme" is a drive).
    pub scheme: Option<String>,
    /// Lower-case authority, when the URI has `//`.
    pub authority: Option<String>,
    /// Decoded path with `/` separators.
    pub path: String,
    /// Decoded query and fragment, when present.
    pub query: Option<String>,
    pub fragment: Option<String>,
}

/// Decodes and folds `input` until it no longer changes (steps 1-3 above).
pub fn decode_fully(input: &str) -> Result<String, Finding> {
    if input.len() > MAX_INSPECTED_BYTES {
        return Err(Finding::TooLong);
    }
    let mut cur = fold_checked(input)?;
    for _ in 0..MAX_DECODE_ROUNDS {
        match decode_round(&cur)? {
            None => return Ok(cur),
            Some(next) => cur = fold_checked(&next)?,
        }
    }
    match decode_round(&cur)? {
        None => Ok(cur),
        Some(_) => Err(Finding::TooManyEncodings),
    }
}

/// Canonicalizes `input` and applies every traversal rule.
pub fn canonicalize(input: &str) -> Result<Canonical, Finding> {
    let decoded = decode_fully(input)?.replace('\\', "/");
    let c = split(&decoded);
    c.check()?;
    Ok(c)
}

/// Folds look-alikes and refuses control characters.
fn fold_checked(s: &str) -> Result<String, Finding> {
    let out = fold(s);
    for c in out.chars() {
        if c == '\0' {
            return Err(Finding::Nul);
        }
        if c.is_control() {
            return Err(Finding::ControlChar);
        }
    }
    Ok(out)
}

/// Maps look-alikes of `.`, `/`, `\`, `%`, `:` (and every full-width ASCII
/// form) to ASCII and drops invisible characters.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            // Full-width ASCII: U+FF01..U+FF5E are U+0021..U+007E shifted.
            '\u{FF01}'..='\u{FF5E}' => {
                out.push(char::from_u32(c as u32 - 0xFEE0).unwrap_or(c));
            }
            '\u{3000}' => out.push(' '),
            // One-dot leader, small / ideographic / half-width full stops,
            // Syriac, Lisu and Vai full stops.
            '\u{2024}' | '\u{FE52}' | '\u{3002}' | '\u{FF61}' | '\u{0701}' | '\u{0702}'
            | '\u{A4F8}' | '\u{A60E}' => out.push('.'),
            '\u{2025}' => out.push_str(".."),
            '\u{2026}' => out.push_str("..."),
            // Fraction slash, division slash, box diagonal, rising diagonal,
            // big solidus, Philippine punctuation, Kangxi radical, kana mark.
            '\u{2044}' | '\u{2215}' | '\u{2571}' | '\u{27CB}' | '\u{29F8}' | '\u{1735}'
            | '\u{2F03}' | '\u{3033}' => out.push('/'),
            // Small reverse solidus, set minus, reverse solidus operators,
            // box diagonal, falling diagonal.
            '\u{FE68}' | '\u{2216}' | '\u{29F5}' | '\u{29F9}' | '\u{2572}' | '\u{27CD}' => {
                out.push('\\')
            }
            '\u{FE6A}' => out.push('%'),
            '\u{FE55}' | '\u{2236}' | '\u{A789}' => out.push(':'),
            // Invisible: soft hyphen, combining grapheme joiner, Mongolian
            // vowel separator, zero-width and bidi controls, word joiners, BOM.
            '\u{00AD}'
            | '\u{034F}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// One round of percent-decoding; `None` when nothing was encoded.
fn decode_round(s: &str) -> Result<Option<String>, Finding> {
    let b = s.as_bytes();
    if !b.contains(&b'%') {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (hex_at(b, i + 1), hex_at(b, i + 2)) {
                out.push(h << 4 | l);
                changed = true;
                i += 3;
                continue;
            }
            if matches!(b.get(i + 1), Some(b'u' | b'U')) {
                let digits: Option<Vec<u8>> = (2..6).map(|k| hex_at(b, i + k)).collect();
                if let Some(d) = digits {
                    let cp = d.iter().fold(0u32, |acc, x| acc << 4 | u32::from(*x));
                    let ch = char::from_u32(cp).ok_or(Finding::InvalidUtf8)?;
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    changed = true;
                    i += 6;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    if !changed {
        return Ok(None);
    }
    match String::from_utf8(out) {
        Ok(s) => Ok(Some(s)),
        Err(e) => {
            let bytes = e.as_bytes();
            let at = e.utf8_error().valid_up_to();
            let next = bytes.get(at + 1).copied().unwrap_or(0);
            Err(match bytes[at] {
                0xC0 | 0xC1 => Finding::OverlongUtf8,
                0xE0 if (0x80..0xA0).contains(&next) => Finding::OverlongUtf8,
                0xF0 if (0x80..0x90).contains(&next) => Finding::OverlongUtf8,
                _ => Finding::InvalidUtf8,
            })
        }
    }
}

fn hex_at(b: &[u8], i: usize) -> Option<u8> {
    match b.get(i)? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Length of a leading RFC 3986 scheme and its colon (two letters at least:
/// `C:` is a drive letter).
fn scheme_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let colon = b.iter().position(|c| *c == b':')?;
    let name = &b[..colon];
    let ok = name.len() >= 2
        && name[0].is_ascii_alphabetic()
        && name
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
    ok.then_some(colon)
}

fn split(s: &str) -> Canonical {
    let (scheme, rest) = match scheme_len(s) {
        Some(n) => (Some(s[..n].to_ascii_lowercase()), &s[n + 1..]),
        None => (None, s),
    };
    let (rest, fragment) = match rest.split_once('#') {
        Some((a, f)) => (a, Some(f.to_string())),
        None => (rest, None),
    };
    let (rest, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q.to_string())),
        None => (rest, None),
    };
    let (authority, path) = match (&scheme, rest.strip_prefix("//")) {
        (Some(_), Some(after)) => {
            let end = after.find('/').unwrap_or(after.len());
            (Some(after[..end].to_lowercase()), after[end..].to_string())
        }
        _ => (None, rest.to_string()),
    };
    Canonical {
        scheme,
        authority,
        path,
        query,
        fragment,
    }
}

/// Whether a segment is `..` in disguise: only dots and spaces, two dots or
/// more, once path parameters (`;x`) and NTFS streams (`::$DATA`) are cut off.
fn is_dot_dot(segment: &str) -> bool {
    let core = segment.split(';').next().unwrap_or("");
    let core = if core.starts_with('.') {
        core.split(':').next().unwrap_or("")
    } else {
        core
    };
    core.bytes().all(|b| b == b'.' || b == b' ') && core.bytes().filter(|b| *b == b'.').count() >= 2
}

/// `X:` or `X|` (old file-URI spelling) at the start of a segment.
fn drive_prefix(segment: &str) -> bool {
    let b = segment.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && matches!(b[1], b':' | b'|')
}

impl Canonical {
    fn is_file_like(&self) -> bool {
        matches!(self.scheme.as_deref(), None | Some("file"))
    }

    /// Applies every traversal rule.
    pub fn check(&self) -> Result<(), Finding> {
        if let Some(a) = &self.authority {
            if is_dot_dot(a) {
                return Err(Finding::DotDotSegment);
            }
            if self.scheme.as_deref() == Some("file") && !(a.is_empty() || a == "localhost") {
                return Err(Finding::RemoteFileHost);
            }
        }
        if self.is_file_like() && self.path.starts_with("//") {
            return Err(Finding::UncPath);
        }
        if self.scheme.is_none() && self.path.starts_with('~') {
            return Err(Finding::HomeDirectory);
        }
        let mut first_real = true;
        for seg in self.path.split('/') {
            if is_dot_dot(seg) {
                return Err(Finding::DotDotSegment);
            }
            if seg.is_empty() {
                continue;
            }
            if drive_prefix(seg) {
                let bare_drive = seg.len() == 2;
                if self.is_file_like() {
                    if !first_real {
                        return Err(Finding::EmbeddedDriveLetter);
                    }
                    if !bare_drive {
                        return Err(Finding::DriveRelative);
                    }
                } else if bare_drive {
                    return Err(Finding::EmbeddedDriveLetter);
                }
            }
            first_real = false;
        }
        for part in [&self.query, &self.fragment].into_iter().flatten() {
            if part.split(['&', '=', ';', ',', '/']).any(is_dot_dot) {
                return Err(Finding::DotDotSegment);
            }
        }
        Ok(())
    }

    /// Scheme judged against `allowed_schemes`: a bare absolute path is a
    /// `file` path; a relative one has none.
    pub fn effective_scheme(&self) -> Option<&str> {
        match &self.scheme {
            Some(s) => Some(s),
            None if self.is_absolute_bare() => Some("file"),
            None => None,
        }
    }

    fn is_absolute_bare(&self) -> bool {
        self.path.starts_with('/') || drive_prefix(&self.path)
    }

    /// The form matched against allowed roots: `scheme://authority/path` with
    /// `.` and empty segments removed; `None` for a relative bare path.
    pub fn root_form(&self) -> Option<String> {
        let mut segs: Vec<&str> = self
            .path
            .split('/')
            .filter(|s| !s.is_empty() && *s != ".")
            .collect();
        let trailing = self.path.ends_with('/') && !segs.is_empty();
        let mut path = String::new();
        match (&self.scheme, &self.authority) {
            (None, _) if !self.is_absolute_bare() => return None,
            (None, _) => path.push_str("file://"),
            (Some(s), Some(a)) => {
                path.push_str(s);
                path.push_str("://");
                if !(s == "file" && a == "localhost") {
                    path.push_str(a);
                }
            }
            (Some(s), None) if s == "file" => path.push_str("file://"),
            (Some(s), None) => {
                path.push_str(s);
                path.push(':');
                if !self.path.starts_with('/') {
                    path.push_str(&segs.join("/"));
                    if trailing {
                        path.push('/');
                    }
                    return Some(path);
                }
            }
        }
        if segs.is_empty() {
            path.push('/');
            return Some(path);
        }
        for s in segs.drain(..) {
            path.push('/');
            path.push_str(s);
        }
        if trailing {
            path.push('/');
        }
        Some(path)
    }
}

#[cfg(test)]
mod tests;
