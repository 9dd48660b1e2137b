//! Integration tests of the registry against librdkafka's in-process mock cluster.

mod client;
mod common;
mod evolution;
mod http;
mod replicas;
