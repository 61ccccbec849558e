//! dualwrite: runs dual-write patterns against real NoSQL stores under injected
//! faults and counts the divergence each lets through.
//!
//! Data flow (one module per box): [`scenario`] -> [`driver`] (+ [`fault`] nemesis,
//! [`relay`]) -> [`store`] clients -> [`history`] -> [`checker`] -> [`result`] -> [`report`].
//! [`run`] wires one run together; `main.rs` only parses flags and maps exit codes.

pub mod app;
pub mod backoff;
pub mod bench;
pub mod bench_cluster;
pub mod checker;
pub mod cli;
pub mod commands;
pub mod driver;
pub mod exit;
pub mod fault;
pub mod history;
pub mod order;
pub mod pattern;
pub mod plan;
pub mod progress;
pub mod reader;
pub mod relay;
pub mod replicas;
pub mod report;
pub mod result;
pub mod run;
pub mod scenario;
pub mod store;
pub mod verdict;
pub mod writer;
