//! Accept: bytes to requests (the first stage).
//!
//! The lean listener ([`lean`]) accepts on the public address, behind TLS
//! termination ([`tls`]) when `[listen.tls]` is set, and on the worker's
//! private socket, where sibling workers hand over requests for sessions
//! this worker owns. It keeps an idle connection as a bare socket, read
//! ahead and written in batches ([`batching`]), and serves each request with
//! mcpgate's HTTP/1.1 server side ([`downstream`]): the head read and
//! checked, the body read (a chunked one by the strict [`chunked`] decoder,
//! which the upstream stage also uses for long-lived streams), the answer
//! written.
//!
//! Hands on: each request (its [`downstream::Downstream`], the identities of
//! a verified client certificate) to the exchange
//! (`exchange::handler::handle`). Takes back whether the connection can be
//! reused, or a held stream (`upstream::held`) to relay on the bare
//! connection once the handler's state is gone.

pub(crate) mod batching;
pub(crate) mod chunked;
pub(crate) mod downstream;
pub(crate) mod lean;
pub(crate) mod tls;
