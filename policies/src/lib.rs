#![forbid(unsafe_code)]
//! mcpgate policy files: strict TOML parsing, validation and compilation.
//!
//! A policy file is parsed once into a [`Policy`], an immutable value the proxy
//! shares behind an `Arc` and swaps atomically on reload. Parsing never stops at
//! the first problem: every unknown key, wrong type and impossible value is
//! collected into [`PolicyErrors`], each with file, line, column and key path, so
//! an operator fixes a file in one pass.

mod compile;
mod error;
mod model;
mod reader;
mod reload;
mod schema;
mod sections;
mod share;
pub use reload::{differs, keep_restart_only, RESTART_ONLY};
pub use schema::{accepted_keys, table_pattern};
pub use share::share;

pub use compile::{
    decode_session_key, is_version_date, parse_host_pattern, parse_policy, parse_policy_file,
    split_host, DEFAULT_LEGACY_VERSIONS, DEFAULT_MODERN_VERSIONS,
};
pub use error::{PolicyError, PolicyErrors};
pub use model::*;

#[doc(hidden)]
pub mod fuzzing;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
