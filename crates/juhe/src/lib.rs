//! Juhe (聚合): a self-hostable implementation of the 友米聚合 open API platform.
//!
//! Library-first: `main.rs` only parses the command line; everything, including the
//! server, starts from here so tests run the real application in-process.
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod error;
pub mod http;
pub mod lenient;
pub mod metrics;
pub mod ratelimit;
pub mod report;
pub mod store;
pub mod timefmt;
