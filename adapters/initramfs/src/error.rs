//! Why an image could not be built.

use std::io;
use std::path::PathBuf;

use ktstr_ports::GuestImageError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BuildError {
    #[error("cannot read `{path}`: {source}")]
    Read { path: PathBuf, source: io::Error },

    #[error("`{path}` is not a usable ELF file: {reason}")]
    NotElf { path: PathBuf, reason: String },

    #[error(
        "shared library `{library}` needed by `{needed_by}`{via} was not found (searched: {searched}){skipped}; \
         install the package that provides it (`apt-get install <package>`; `apt-file search {library}` names it) \
         or set `binary` to a statically linked build"
    )]
    MissingLibrary {
        library: String,
        needed_by: PathBuf,
        /// ", pulled in by `<root binary>`" when the needing object is itself a library.
        via: String,
        searched: String,
        /// Candidates rejected for the wrong ELF class or machine, if any.
        skipped: String,
    },

    #[error(
        "ELF interpreter `{interpreter}` of `{binary}` is missing or unusable: {reason}; \
         install the C library it belongs to or set `binary` to a statically linked build"
    )]
    Interpreter {
        interpreter: String,
        binary: PathBuf,
        reason: String,
    },

    #[error("guest path `{guest_path}` would hold both `{first}` and `{second}`")]
    Conflict {
        guest_path: String,
        first: PathBuf,
        second: PathBuf,
    },

    #[error("scheduler path `{0}` has no usable file name")]
    SchedulerName(PathBuf),

    #[error("`{path}` is too large for a newc cpio entry ({size} bytes)")]
    TooLarge { path: String, size: usize },

    #[error("cannot write the image in `{dir}`: {source}")]
    Write { dir: PathBuf, source: io::Error },

    #[error("image build task failed: {0}")]
    Task(String),
}

impl From<BuildError> for GuestImageError {
    fn from(err: BuildError) -> Self {
        GuestImageError(Box::new(err))
    }
}
