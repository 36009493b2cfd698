//! The library behind the `imgmeta` binary: composes the crates into the processes the
//! subcommands start. `main.rs` only parses arguments and calls these functions.

pub mod analyze;
pub mod batches;
pub mod content_cache;
pub mod detector;
pub mod keys;
pub mod logging;
pub mod models;
pub mod security;
pub mod serve;
pub mod traces;
