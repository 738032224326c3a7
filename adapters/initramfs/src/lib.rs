//! Builds the initramfs each cell boots: `/init` (ktstr-init), `/ktstr/plan.json`, the
//! scheduler under `/ktstr/bin`, and every shared object the two binaries need, placed
//! where the guest's dynamic loader will look for it. Images are gzip-compressed newc
//! cpio archives, cached under their content hash.

mod archive;
mod builder;
mod elf;
mod error;
mod ldconf;
mod manifest;
mod paths;
mod resolve;

pub use builder::InitramfsBuilder;
pub use error::BuildError;
pub use manifest::{CONSOLE_PATH, EntrySource, INIT_PATH, ImageEntry, LD_CACHE_PATH, init_plan};
pub use resolve::LibrarySearch;
