//! Juhe (聚合): a self-hostable implementation of the 友米聚合 open API platform.
//!
//! Library-first: the `juhe` binary (crates/juhe-cli) only parses the command line;
//! everything, including the server, starts from here so tests run the real application
//! in-process. Layers, from the edge inwards: `http` parses and presents, `core` decides,
//! `store` persists (see docs/architecture.md).
#![forbid(unsafe_code)]

pub mod app;
pub mod config;
pub mod core;
pub mod error;
pub mod gateway;
pub mod http;
pub mod lenient;
pub mod metrics;
pub mod ratelimit;
pub mod report;
pub mod store;
pub mod timefmt;
pub mod webhooks;
