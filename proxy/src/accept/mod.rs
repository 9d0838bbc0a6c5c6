//! Accept: bytes to requests (the first stage).
//!
//! The lean listener ([`lean`]) accepts on the public address, behind TLS
//! termination ([`tls`]) when `[listen.tls]` is set, and on the worker's
//! private socket, where sibling workers hand over requests for sessions
//! this worker owns. It keeps an idle connection as a bare socket and reads
//! each request head with a pingora HTTP/1 session. Every byte read passes
//! through the [`tap`], which checks the raw framing of a chunked request
//! body with the strict [`chunked`] decoder (the decoder the upstream stage
//! also uses for long-lived streams).
//!
//! Hands on: each request (its head read, the tap that watches its body,
//! the identities of a verified client certificate) to the exchange
//! (`exchange::handler::handle`). Takes back whether the connection can be
//! reused, or a held stream (`upstream::held`) to relay on the bare
//! connection once the handler's state is gone.

pub(crate) mod batching;
pub(crate) mod chunked;
pub(crate) mod lean;
pub(crate) mod tap;
pub(crate) mod tls;
