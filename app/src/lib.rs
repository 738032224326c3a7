//! The `ktstr` application: command-line wiring and use cases over the ports.

pub mod backends;
pub mod bench;
pub mod bench_profile;
pub mod cli;
pub mod commands;
pub mod error_text;
pub mod harness;
pub mod host;
pub mod host_env;
pub mod kernel_cmd;
pub mod manifest_file;
pub mod outputs;
pub mod results_cmd;
pub mod stop;
pub mod sweep;
pub mod verifier;
