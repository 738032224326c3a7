//! What the verifier said: its statistics lines, the program it rejected and why, cycle
//! collapse of long logs, a loaded program's counts, and terminal escapes in loaders' logs.

pub mod collapse;
pub mod escapes;
pub mod prog;
pub mod rejection;
pub mod vstats;
