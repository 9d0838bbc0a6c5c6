//! Benchmarks and test fixtures for mcpgate.
//!
//! [`mock`] is the MCP mock upstream behind the `demo-upstream` binary.
#![forbid(unsafe_code)]

pub mod mock;
