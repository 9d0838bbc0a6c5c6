//! Sessions: which session a request belongs to, and which worker holds
//! its live state.
//!
//! Legacy sessions are kept in this worker's [`store`]; the id a client
//! sees is sealed ([`session_id`]) with everything needed to serve the
//! session anywhere. A request for a session that another worker of this
//! instance owns is handed to that worker over its private socket
//! ([`owner`]); when the owner cannot be reached, the session is revived
//! here from its sealed claims.
//!
//! Hands on: the session a request uses (or the owner's whole answer, when
//! the request was handed over) to the exchange's message phase, and from
//! there to forwarding; the relay creates sessions in the store when a
//! legacy `initialize` succeeds.

pub(crate) mod owner;
pub(crate) mod session_id;
pub(crate) mod store;
