//! A typed walker over a parsed TOML document that collects every error.
//!
//! Each getter records the key as known, checks its type and range, and returns
//! the default on error so reading continues and later problems are found too.

use std::ops::{Range, RangeInclusive};

use toml_edit::{Item, TableLike, Value};

use crate::error::{line_col, PolicyError};

/// Collects errors for one file while typed getters read from it.
pub(crate) struct Reader<'s> {
    file: &'s str,
    src: &'s str,
    errors: Vec<PolicyError>,
}

/// Joins a parent key path and a key.
pub(crate) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl<'s> Reader<'s> {
    pub(crate) fn new(file: &'s str, src: &'s str) -> Self {
        Self {
            file,
            src,
            errors: Vec::new(),
        }
    }

    pub(crate) fn into_errors(self) -> Vec<PolicyError> {
        self.errors
    }

    /// How many errors were recorded so far (to tell whether a section was valid).
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    /// Records an error at `span` (the start of the file when unknown).
    pub(crate) fn error(
        &mut self,
        span: Option<Range<usize>>,
        path: &str,
        message: impl Into<String>,
    ) {
        let (line, column) = line_col(self.src, span.map_or(0, |s| s.start));
        self.errors.push(PolicyError {
            file: self.file.to_string(),
            line,
            column,
            key_path: path.to_string(),
            message: message.into(),
        });
    }

    /// Reports every key of `table` (at `path`) that the table `pattern` of
    /// [`crate::schema`] does not accept.
    pub(crate) fn deny_unknown(&mut self, table: &dyn TableLike, path: &str, pattern: &str) {
        let known = crate::schema::keys(pattern)
            .unwrap_or_else(|| panic!("loader bug: table `{pattern}` is not in schema::TABLES"));
        for (key, _) in table.iter() {
            if !known.contains(&key) {
                let span = table.get_key_value(key).and_then(|(k, _)| k.span());
                self.error(
                    span,
                    &join(path, key),
                    format!("unknown key (expected one of: {})", known.join(", ")),
                );
            }
        }
    }

    /// A sub-table, or `None` when absent or of the wrong type (reported).
    pub(crate) fn table<'d>(
        &mut self,
        parent: &'d dyn TableLike,
        key: &str,
        path: &str,
    ) -> Option<&'d dyn TableLike> {
        let item = parent.get(key)?;
        match item.as_table_like() {
            Some(t) => Some(t),
            None => {
                self.error(
                    item_span(item),
                    &join(path, key),
                    format!("expected a table, found {}", item.type_name()),
                );
                None
            }
        }
    }

    fn value<'d>(&mut self, parent: &'d dyn TableLike, key: &str) -> Option<&'d Item> {
        parent.get(key)
    }

    /// A string value, `default` when absent.
    pub(crate) fn string(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        default: &str,
    ) -> String {
        self.opt_string(t, key, path)
            .unwrap_or_else(|| default.to_string())
    }

    /// A string value, `None` when absent or invalid (reported).
    pub(crate) fn opt_string(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
    ) -> Option<String> {
        let item = self.value(t, key)?;
        match item.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.error(
                    item_span(item),
                    &join(path, key),
                    format!("expected a string, found {}", item.type_name()),
                );
                None
            }
        }
    }

    /// One of a fixed set of string values: the `T` named by the value in
    /// `options`, `default`'s when absent, and `default`'s after reporting a
    /// value that is none of them.
    pub(crate) fn choice<T: Copy>(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        default: &str,
        options: &[(&str, T)],
    ) -> T {
        let pick = |name: &str| options.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        let fallback = pick(default).expect("loader bug: the default is one of the options");
        let value = self.string(t, key, path, default);
        pick(&value).unwrap_or_else(|| {
            let names: Vec<String> = options.iter().map(|(n, _)| format!("\"{n}\"")).collect();
            self.error(
                Self::span_of(t, key),
                &join(path, key),
                format!("`{value}` is not one of {}", names.join(", ")),
            );
            fallback
        })
    }

    /// An integer within `range`, `default` when absent or invalid (reported).
    pub(crate) fn integer(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        default: i64,
        range: RangeInclusive<i64>,
    ) -> i64 {
        let Some(item) = self.value(t, key) else {
            return default;
        };
        match item.as_integer() {
            Some(n) if range.contains(&n) => n,
            Some(n) => {
                self.error(
                    item_span(item),
                    &join(path, key),
                    format!("{n} is out of range ({}..={})", range.start(), range.end()),
                );
                default
            }
            None => {
                self.error(
                    item_span(item),
                    &join(path, key),
                    format!("expected an integer, found {}", item.type_name()),
                );
                default
            }
        }
    }

    /// A number in `0.0..=1.0` (an integer 0 or 1 too), `default` when
    /// absent or invalid (reported).
    pub(crate) fn ratio(&mut self, t: &dyn TableLike, key: &str, path: &str, default: f64) -> f64 {
        let Some(item) = self.value(t, key) else {
            return default;
        };
        let n = item
            .as_float()
            .or_else(|| item.as_integer().map(|i| i as f64));
        match n {
            Some(n) if (0.0..=1.0).contains(&n) => n,
            Some(n) => {
                self.error(
                    item_span(item),
                    &join(path, key),
                    format!("{n} is out of range (0.0..=1.0)"),
                );
                default
            }
            None => {
                self.error(
                    item_span(item),
                    &join(path, key),
                    format!("expected a number, found {}", item.type_name()),
                );
                default
            }
        }
    }

    /// A boolean, `default` when absent or invalid (reported).
    pub(crate) fn boolean(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
        default: bool,
    ) -> bool {
        let Some(item) = self.value(t, key) else {
            return default;
        };
        match item.as_bool() {
            Some(b) => b,
            None => {
                self.error(
                    item_span(item),
                    &join(path, key),
                    format!("expected a boolean, found {}", item.type_name()),
                );
                default
            }
        }
    }

    /// An array of strings with its elements' spans; `None` when absent or invalid.
    pub(crate) fn strings(
        &mut self,
        t: &dyn TableLike,
        key: &str,
        path: &str,
    ) -> Option<Vec<(String, Option<Range<usize>>)>> {
        let item = self.value(t, key)?;
        let Some(array) = item.as_array() else {
            self.error(
                item_span(item),
                &join(path, key),
                format!("expected an array of strings, found {}", item.type_name()),
            );
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        let mut ok = true;
        for (i, v) in array.iter().enumerate() {
            match v {
                Value::String(s) => out.push((s.value().clone(), v.span())),
                other => {
                    ok = false;
                    self.error(
                        other.span(),
                        &format!("{}[{i}]", join(path, key)),
                        format!("expected a string, found {}", other.type_name()),
                    );
                }
            }
        }
        ok.then_some(out)
    }

    /// The span of `key`'s value in `t`, for errors found after reading.
    pub(crate) fn span_of(t: &dyn TableLike, key: &str) -> Option<Range<usize>> {
        t.get(key).and_then(item_span)
    }
}

fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}
