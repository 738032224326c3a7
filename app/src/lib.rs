//! The `ktstr` application: command-line wiring and use cases over the ports.

pub mod cli;
pub mod commands;
pub mod host;
pub mod manifest_file;
pub mod sweep;
