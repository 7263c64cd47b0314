//! Multi-process tests: real `rms-node` processes on 127.0.0.1. One test binary, linked once.

#![allow(clippy::unwrap_used)]

mod attacks;
mod changes;
mod core;
mod devices;
mod disk_full;
mod election;
mod failover;
mod fuzz;
mod hq;
mod identity;
mod journal;
mod lifecycle;
mod multi_node;
mod pause;
mod security;
mod sim;
mod single_node;
mod status_page;
mod tidy;
