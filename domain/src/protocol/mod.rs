//! The guest ↔ host contract, all of it: the serial devices and kernel command-line keys
//! (`init_plan`), the frames (`frame`), their framing on the wire (`wire`), the legal order
//! of a run's frames (`order`: the guest's sink follows it, the judge checks it), and how
//! much a guest may write (`guest_output`).
//!
//! Frames flow guest → host only today. A host → guest direction (a cell's plan delivered
//! after the VM started) gets its own frame kinds and its own order, beside these.

pub mod frame;
pub mod guest_output;
pub mod guest_report;
pub mod init_plan;
pub mod observation;
pub mod order;
pub mod payload;
pub mod wire;
