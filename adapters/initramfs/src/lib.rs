//! Builds the initramfs each cell boots: `/init` (ktstr-init), `/ktstr/plan.json`, the
//! scheduler under `/ktstr/bin`, and every shared object the two binaries need, placed
//! where the guest's dynamic loader will look for it. Images are gzip-compressed newc
//! cpio archives, cached under their content hash.

mod archive;
mod builder;
mod contents;
mod elf;
mod error;
mod ldconf;
mod paths;
mod shared_libs;

pub use builder::InitramfsBuilder;
pub use contents::{CONSOLE_PATH, EntrySource, INIT_PATH, ImageEntry, LD_CACHE_PATH, init_plan};
pub use error::BuildError;
pub use shared_libs::LibrarySearch;
