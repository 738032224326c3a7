//! Builds real images from real host binaries and reads them back.

mod common;
mod contents;
mod libraries;
