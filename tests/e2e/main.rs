//! End-to-end tests against the real local stack (scripts/stack up): Toxiproxy and
//! the real servers. One test binary, one module per topic.

mod app;
mod capacity;
mod cassandra;
mod cassandra_cluster;
mod cli;
mod common;
mod deployments;
mod dynamodb;
mod dynamodb_patterns;
mod guard_rails;
mod kafka_topic;
mod mongodb;
mod outcomes;
mod readers;
mod reliability;
mod repeats;
mod reports;
mod two_stores;
