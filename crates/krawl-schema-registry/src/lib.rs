//! Schema Registry extraction over the Confluent-compatible REST API
//! (Confluent Platform / Cloud, Karapace, Redpanda, Apicurio's `ccompat`).
//! Read-only: the client sends `GET` requests and nothing else.
//!
//! - [`config`]: the `[schema_registry]` section ([`SchemaRegistryConfig`]),
//!   its validation and secret references.
//! - [`client`]: [`RegistryClient`], the HTTP client (TLS, auth, retries,
//!   `Retry-After`), and [`RegistryError`].
//! - [`extract`]: [`extract::extract`] writes subject, schema version and
//!   warning records to a [`RegistrySink`] and returns a [`SubjectIndex`];
//!   [`bind`] attaches subjects to a topic by exact names.
//! - [`fields`]: field lists of Avro, JSON Schema and Protobuf schemas.
//! - [`guard`]: the bounds every schema text keeps before a parser sees it
//!   (size, nesting, references): the registry is untrusted.
//! - [`references`]: a schema's transitive references, resolved iteratively
//!   and within bounds.

pub mod client;
pub mod config;
pub mod extract;
pub mod fields;
pub mod guard;
pub mod references;

pub use client::{RegistryClient, RegistryError, SchemaVersion, VersionSpec};
pub use config::{
    RegistryAuth, RegistryConfigError, RegistrySecrets, RegistryTls, SchemaRegistryConfig,
    VersionsMode,
};
pub use extract::{
    bind, Binding, RegistryExtractError, RegistryOutput, RegistrySink, RegistrySummary,
    SubjectIndex,
};
