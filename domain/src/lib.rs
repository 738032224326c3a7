//! Pure logic of ktstr: no I/O, no async, no OS or hypervisor crates. One folder per
//! concept; `docs/architecture.md` maps them.

pub mod judging;
pub mod kernel;
pub mod plan;
pub mod protocol;
pub mod results;
pub mod shape;
pub mod verifier_log;
