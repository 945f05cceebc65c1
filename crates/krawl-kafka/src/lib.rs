//! krawl's read-only Kafka metadata extraction engine.
//!
//! - [`config`]: typed connection and extraction settings, validated, mapped
//!   onto librdkafka properties.
//! - [`connection`]: one admin client per cluster connection; classified
//!   connect errors.
//! - [`admin_ext`]: safe async wrappers over librdkafka admin calls the
//!   `rdkafka` crate lacks. The only `unsafe` code in krawl lives there.
//! - [`broker_client`]: krawl's own small Kafka client (rustls, SASL, bounded
//!   decoding by `krawl-wire`) for DescribeLogDirs ([`log_dirs`]), Metadata
//!   ([`metadata`]), ListOffsets ([`offsets`]) and consumer groups many per
//!   request: ListGroups, DescribeGroups, committed offsets ([`groups`]).
//! - [`extract`]: the extraction itself, streaming records to a sink.
//! - [`probe`]: the read-only probes of the agent's short jobs (connection test, preflight
//!   permissions, topic list).

pub mod admin_ext;
pub mod api_keys;
pub mod broker_client;
pub mod config;
pub mod connection;
pub mod context;
pub mod error;
pub mod extract;
pub mod groups;
pub mod log_dirs;
pub mod metadata;
pub mod offsets;
pub mod partition_table;
pub mod probe;
#[cfg(test)]
mod test_broker;

pub use config::{ExtractConfig, ExtractOptions, KafkaConfig, KafkaSecrets};
pub use connection::Connection;
pub use error::{ExtractError, FailureClass};
pub use extract::{Extractor, NoProgress, Progress, RecordSink};
