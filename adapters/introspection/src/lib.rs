//! The `KernelIntrospection` adapter: reads every loaded BPF program (id, type, full name,
//! `verified_insns`) straight out of a stopped guest's physical memory, with no help from
//! the guest.
//!
//! - [`Layout::from_vmlinux`] resolves symbols (`prog_idr`, `page_offset_base`,
//!   `phys_base`, `init_top_pgt`, `__pgtable_l5_enabled`, ...) from the ELF symbol table
//!   and every structure offset from `.BTF`; nothing is hard-coded but the x86_64 constant
//!   `__START_KERNEL_map`.
//! - [`walk_programs`] translates kernel addresses (image, direct map, 4- or 5-level page
//!   walk for vmalloc) and walks the `prog_idr` radix tree, bounded against hostile guests.
//! - [`GuestIntrospector`] caches one parsed layout per vmlinux path, so only the first
//!   cell of a kernel pays for the parse.
//!
//! KASLR is not supported: the image is assumed to sit where vmlinux links it (the
//! `phys_base` and `page_offset_base` the guest used are read from its memory, but the
//! virtual slide of the image is not searched for). Guests boot with `nokaslr`, and
//! the app refuses `--kaslr`.

mod btf_layout;
mod error;
mod kernel_layout;
mod name;
#[cfg(feature = "test-support")]
pub mod synthetic;
mod translate;
mod walk;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ktstr_domain::verifier_log::prog::ProgStat;
use ktstr_ports::{GuestMemory, IntrospectionError, KernelArtifact, KernelIntrospection};

pub use btf_layout::{BtfIndex, Expect};
pub use error::{LayoutError, WalkError};
pub use kernel_layout::{Field, Layout, Offsets, START_KERNEL_MAP, Symbols, offsets_from_btf};
pub use name::full_name;
pub use translate::AddressSpace;
pub use walk::{MAX_KSYM_NAME, MAX_NODES, MAX_PROGRAMS, walk_programs};

/// One slot per vmlinux path: filled by the first caller, waited on by concurrent ones.
type Slot = Arc<Mutex<Option<Arc<Layout>>>>;

/// Reads guest programs, parsing each kernel's vmlinux once.
#[derive(Debug, Default)]
pub struct GuestIntrospector {
    layouts: Mutex<HashMap<PathBuf, Slot>>,
}

impl GuestIntrospector {
    pub fn new() -> Self {
        Self::default()
    }

    /// The layout of `vmlinux`, parsed on first use. A failed parse is not cached, so a
    /// later call tries again.
    pub fn layout(&self, vmlinux: &Path) -> Result<Arc<Layout>, LayoutError> {
        let slot = {
            let mut map = self.layouts.lock().unwrap_or_else(PoisonError::into_inner);
            map.entry(vmlinux.to_path_buf()).or_default().clone()
        };
        // Held across the parse: a second cell of the same kernel waits instead of
        // parsing too, while other kernels' slots stay free.
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(layout) = slot.as_ref() {
            return Ok(layout.clone());
        }
        let layout = Arc::new(Layout::from_vmlinux(vmlinux)?);
        *slot = Some(layout.clone());
        Ok(layout)
    }

    /// How many layouts are parsed and cached.
    pub fn cached(&self) -> usize {
        let map = self.layouts.lock().unwrap_or_else(PoisonError::into_inner);
        map.values()
            .filter(|s| s.lock().unwrap_or_else(PoisonError::into_inner).is_some())
            .count()
    }
}

impl KernelIntrospection for GuestIntrospector {
    fn read_programs(
        &self,
        kernel: &KernelArtifact,
        memory: &dyn GuestMemory,
    ) -> Result<Vec<ProgStat>, IntrospectionError> {
        let layout = self
            .layout(&kernel.vmlinux)
            .map_err(|e| IntrospectionError::Kernel {
                vmlinux: kernel.vmlinux.clone(),
                source: Box::new(e),
            })?;
        walk_programs(&layout, memory).map_err(|e| IntrospectionError::Guest(Box::new(e)))
    }
}
