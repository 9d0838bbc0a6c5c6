//! Operations: the processes around the stages, and what every stage
//! reports to.
//!
//! - The instance: the [`supervisor`] starts and restarts the worker
//!   processes; each worker's [`lifecycle`] binds, serves and drains it.
//!   A worker knows itself by its [`worker_identity`].
//! - Beside the requests: the [`admin`] listener (metrics of every worker,
//!   liveness, readiness, the JWKS of minted credentials) and the
//!   [`background`] work (health checks, the idle-session sweep).
//! - The policy while serving: [`reload`] re-reads and swaps it;
//!   [`policy_file`] is what every reading of the file checks.
//! - [`traces`]: OpenTelemetry spans of each request, over OTLP.
//! - The [`audit`] trail: a record per request, noted by the stages as
//!   it goes, written by a thread of each worker.
//! - Shared by every stage: [`metrics`] and the [`clock`]. These two and
//!   `worker_identity` import nothing from the crate, so any stage may use
//!   them; `lifecycle`, `supervisor`, `admin` and `background` sit above
//!   all the stages.

pub(crate) mod admin;
pub(crate) mod audit;
mod background;
pub(crate) mod clock;
pub(crate) mod explain;
pub(crate) mod handover;
pub(crate) mod lifecycle;
pub(crate) mod metrics;
pub(crate) mod pin;
pub(crate) mod policy_file;
pub(crate) mod reload;
pub(crate) mod supervisor;
pub(crate) mod traces;
pub(crate) mod worker_identity;
