//! The `juhe` command and the developer tooling that sits on top of the server library:
//! administration commands, the demo data set, the load generator, the assistant simulator and the benchmarks.
//! Nothing here is reachable from the server, and everything here reaches the store only
//! through the server library's public, merchant-scoped API.
#![forbid(unsafe_code)]

pub mod bench;
pub mod bench_events;
pub mod bench_gateway;
pub mod cli;
pub mod demo_data;
pub mod events;
pub mod loadgen;
pub mod simulate;
