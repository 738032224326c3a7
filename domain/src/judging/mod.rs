//! Where verdicts are decided: `judge` turns a cell's evidence into its record, from the
//! guest's observations (`attach`, `dispatch`, `liveness`, the kernel's `scx_exit`), the
//! host's reading (`crosscheck`) and the environment's failures (`environment`), through
//! the gates in order (`verdict`).

pub mod attach;
pub mod attach_wait;
pub mod crosscheck;
pub mod dispatch;
pub mod environment;
pub mod evidence;
pub mod judge;
pub mod liveness;
pub mod record;
mod record_formats;
pub mod scx_exit;
pub mod verdict;
