//! End-to-end tests of the fetcher against loopback servers. No test sends a packet anywhere
//! but loopback: destinations outside it are only ever checked by the pure policy functions.

mod happy_paths;
mod host_gate;
mod hostile_servers;
mod hostile_urls;
mod logging;
mod redirects;
mod support;
mod tls;
