//! Results of a sweep: the per-cell records and the summaries drawn from them, boots
//! compared (`--repeat`), a baseline compared, shards merged, where time went.

pub mod baseline;
pub mod boot_profile;
pub mod determinism;
pub mod merge;
pub mod rejudging;
pub mod report;
pub mod timing;
