//! Benchmarks and test fixtures for mcpgate.
//!
//! [`mock`] is the MCP mock upstream behind the `demo-upstream` binary,
//! [`load`] the load generator behind `loadgen`, [`scenario`] the benchmark
//! scenarios behind `mcpbench run`, and [`report`] the evidence bundle,
//! report and plots behind `mcpbench evidence`.
#![forbid(unsafe_code)]

pub mod load;
pub mod mock;

pub mod report;
pub mod scenario;
