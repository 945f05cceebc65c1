//! The [`RecordSink`] of a job: records become NDJSON lines, cut into chunks of at most
//! `chunk_max_records` records or about `chunk_max_bytes` decoded bytes, compressed with zstd and
//! `PUT` in sequence.
//!
//! Lossless and duplicate-free across retries and control-plane restarts: a chunk keeps its
//! (seq, bytes) until it is acknowledged and is re-sent unchanged after a transport error, a 5xx
//! or a 429/503 (honouring `Retry-After`), until the job is cancelled or `upload_retry_secs`
//! pass; the control plane stores a repeated (seq, sha256) once. Each full chunk is uploaded by
//! its own task while the extraction fills the next one, up to [`UPLOADS_IN_FLIGHT`] at once (the
//! protocol identifies a chunk by its seq, so they may arrive in any order; on a control plane
//! 50 ms away, uploading inline stalled the extraction for a round trip and the compression of
//! every chunk). Acknowledgements are counted in seq order, so the stream hash is the hash of the
//! chunks in order. Memory: the chunk being filled (its buffer reserved once) and at most
//! [`UPLOADS_IN_FLIGHT`] compressed bodies in flight.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use krawl_kafka::{ExtractError, RecordSink};
use krawl_model::{Envelope, Record};
use krawl_protocol::chunk::{self, Encoding, StreamHash};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::client::{Backoff, ClientError, ControlPlaneClient};
use crate::config::AgentSection;
use crate::health::Telemetry;
use crate::progress::JobProgress;

/// Chunks being uploaded at the same time, per job. Once compressed an upload holds only its
/// compressed body (a few hundred KB for a 4 MiB chunk), so this is cheap; with the control plane
/// 50 ms away a 50,000-topic job (53 chunks) spent about 18 round trips waiting with 3.
pub const UPLOADS_IN_FLIGHT: usize = 8;

/// Chunking and retry settings (from `[agent]`).
#[derive(Debug, Clone)]
pub struct UploadSettings {
    pub max_records: usize,
    pub max_bytes: usize,
    /// How long one chunk is retried before the job fails.
    pub retry_for: Duration,
    /// First and largest delay between retries.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl Default for UploadSettings {
    fn default() -> Self {
        Self::from(&AgentSection::default())
    }
}

impl From<&AgentSection> for UploadSettings {
    fn from(a: &AgentSection) -> Self {
        Self {
            max_records: a.chunk_max_records.max(1),
            max_bytes: a.chunk_max_bytes.max(1),
            retry_for: Duration::from_secs(a.upload_retry_secs),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
        }
    }
}

/// Why an upload stopped.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UploadError {
    #[error("upload cancelled")]
    Cancelled,
    #[error("chunk {seq}: {message}")]
    LeaseLost { seq: u32, message: String },
    #[error("chunk {seq} was not accepted after retrying for {}s: {last_error}", retried_for.as_secs())]
    GaveUp {
        seq: u32,
        retried_for: Duration,
        last_error: String,
    },
    #[error("chunk {seq} was refused: {error}")]
    Refused { seq: u32, error: String },
    #[error("cannot encode a record or chunk: {0}")]
    Encode(String),
    #[error("chunk {seq}: the upload task stopped: {message}")]
    Task { seq: u32, message: String },
}

/// Totals of an uploaded stream, for `complete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSummary {
    pub chunks: u32,
    pub records: u64,
    pub sha256: String,
    /// Compressed bytes acknowledged.
    pub bytes: u64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct ChunkUploader {
    client: Arc<ControlPlaneClient>,
    job_id: String,
    attempt: u32,
    settings: UploadSettings,
    cancel: CancellationToken,
    progress: Arc<JobProgress>,
    telemetry: Arc<Telemetry>,
    cutter: ChunkCutter,
    next_seq: u32,
    records: u64,
    bytes: u64,
    hash: StreamHash,
    failure: Option<UploadError>,
    /// The next chunk's seq (`next_seq` counts the acknowledged ones).
    next_to_send: u32,
    /// Chunks being uploaded while the next one fills, oldest first (aborted on drop).
    in_flight:
        std::collections::VecDeque<(u32, tokio::task::JoinHandle<Result<Sent, UploadError>>)>,
}

impl Drop for ChunkUploader {
    fn drop(&mut self) {
        for (_, task) in self.in_flight.drain(..) {
            task.abort();
        }
    }
}

/// An acknowledged chunk, for the totals.
#[derive(Debug)]
struct Sent {
    records: u64,
    compressed: u64,
}

/// What one chunk's upload task needs.
struct ChunkPut {
    client: Arc<ControlPlaneClient>,
    job_id: String,
    attempt: u32,
    seq: u32,
    settings: UploadSettings,
    cancel: CancellationToken,
}

/// The pure part: NDJSON lines into chunks.
#[derive(Debug)]
pub struct ChunkCutter {
    max_records: usize,
    max_bytes: usize,
    buf: Vec<u8>,
    records: u64,
}

impl ChunkCutter {
    pub fn new(max_records: usize, max_bytes: usize) -> Self {
        Self {
            max_records: max_records.max(1),
            max_bytes: max_bytes.max(1),
            buf: Vec::new(),
            records: 0,
        }
    }

    /// Appends one record as a line; `true` when the chunk is full and should be cut.
    /// A record that fails to serialise leaves the chunk as it was (no partial line).
    pub fn push(&mut self, record: Record) -> Result<bool, serde_json::Error> {
        if self.buf.capacity() == 0 {
            // A chunk's buffer is sized for the chunk once: grown by doubling it ended at up
            // to twice `max_bytes` (8 MiB for a 4 MiB chunk), for each chunk in flight.
            self.buf
                .reserve_exact(self.max_bytes.saturating_add(self.max_bytes / 16 + 4096));
        }
        let len = self.buf.len();
        if let Err(e) = serde_json::to_writer(&mut self.buf, &Envelope::new(record)) {
            self.buf.truncate(len);
            return Err(e);
        }
        self.buf.push(b'\n');
        self.records += 1;
        Ok(self.is_full())
    }

    pub fn is_full(&self) -> bool {
        self.records >= self.max_records as u64 || self.buf.len() >= self.max_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Takes the buffered NDJSON bytes and their record count out; the cutter starts empty (with
    /// no allocation: the chunk's buffer leaves with it).
    pub fn take(&mut self) -> (Vec<u8>, u64) {
        let records = std::mem::take(&mut self.records);
        (std::mem::take(&mut self.buf), records)
    }
}

impl ChunkUploader {
    pub fn new(
        client: Arc<ControlPlaneClient>,
        job_id: impl Into<String>,
        attempt: u32,
        settings: UploadSettings,
        cancel: CancellationToken,
        progress: Arc<JobProgress>,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        let cutter = ChunkCutter::new(settings.max_records, settings.max_bytes);
        Self {
            client,
            job_id: job_id.into(),
            attempt,
            settings,
            cancel,
            progress,
            telemetry,
            cutter,
            next_seq: 0,
            records: 0,
            bytes: 0,
            hash: StreamHash::default(),
            failure: None,
            next_to_send: 0,
            in_flight: std::collections::VecDeque::new(),
        }
    }

    /// Why the upload stopped, when it did (the executor sees only an `ExtractError`).
    pub fn failure(&self) -> Option<&UploadError> {
        self.failure.as_ref()
    }

    /// What has been acknowledged so far (buffered records excluded).
    pub fn summary(&self) -> UploadSummary {
        UploadSummary {
            chunks: self.next_seq,
            records: self.records,
            sha256: self.hash.hex(),
            bytes: self.bytes,
        }
    }

    /// Uploads the last partial chunk, waits for every chunk to be acknowledged and returns the
    /// totals for `complete`.
    pub async fn finish(&mut self) -> Result<UploadSummary, UploadError> {
        if let Some(f) = &self.failure {
            return Err(f.clone());
        }
        self.flush().await?;
        self.settle_to(0).await?;
        Ok(self.summary())
    }

    async fn push(&mut self, record: Record) -> Result<(), UploadError> {
        if let Some(f) = &self.failure {
            return Err(f.clone());
        }
        let full = self
            .cutter
            .push(record)
            .map_err(|e| UploadError::Encode(e.to_string()))?;
        self.progress.add_records(1);
        if full {
            self.flush().await?;
        }
        Ok(())
    }

    /// Keeps the first failure: every later call returns it.
    fn record(&mut self, result: Result<(), UploadError>) -> Result<(), UploadError> {
        if let Err(e) = &result {
            self.failure.get_or_insert_with(|| e.clone());
        }
        result
    }

    /// Starts the upload of the buffered chunk, if any, once fewer than [`UPLOADS_IN_FLIGHT`]
    /// are in flight (waiting for the oldest).
    async fn flush(&mut self) -> Result<(), UploadError> {
        if self.cutter.is_empty() {
            return Ok(());
        }
        self.settle_to(UPLOADS_IN_FLIGHT - 1).await?;
        self.start_upload();
        Ok(())
    }

    /// Waits, oldest first, until at most `n` chunks are in flight; the first failure is kept.
    async fn settle_to(&mut self, n: usize) -> Result<(), UploadError> {
        while self.in_flight.len() > n {
            let Some((seq, task)) = self.in_flight.pop_front() else {
                break;
            };
            let acked = self.acknowledged(seq, task).await;
            self.record(acked)?;
        }
        Ok(())
    }

    /// Waits for the upload of chunk `seq` and counts it.
    async fn acknowledged(
        &mut self,
        seq: u32,
        task: tokio::task::JoinHandle<Result<Sent, UploadError>>,
    ) -> Result<(), UploadError> {
        let sent = match task.await {
            Ok(result) => result?,
            Err(e) => {
                return Err(UploadError::Task {
                    seq,
                    message: e.to_string(),
                })
            }
        };
        self.records += sent.records;
        self.bytes += sent.compressed;
        self.next_seq += 1;
        self.progress.add_chunk();
        let m = &self.telemetry.metrics;
        m.records_uploaded.inc_by(sent.records);
        m.bytes_uploaded.inc_by(sent.compressed);
        m.chunks_uploaded.inc();
        tracing::debug!(
            seq,
            records = sent.records,
            bytes = sent.compressed,
            "chunk uploaded"
        );
        Ok(())
    }

    /// Hands the buffered chunk to its own task (compression and `PUT` until acknowledged).
    fn start_upload(&mut self) {
        let seq = self.next_to_send;
        self.next_to_send += 1;
        let (ndjson, records) = self.cutter.take();
        // The stream hash is of the chunks in seq order, which is the order they are cut in; an
        // upload that fails fails the attempt, so hashing here equals hashing on acknowledgement
        // and the upload task can drop the NDJSON once it is compressed.
        self.hash.update(&ndjson);
        let put = ChunkPut {
            client: self.client.clone(),
            job_id: self.job_id.clone(),
            attempt: self.attempt,
            seq,
            settings: self.settings.clone(),
            cancel: self.cancel.clone(),
        };
        let task = tokio::spawn(
            async move { put.until_acknowledged(ndjson, records).await }.in_current_span(),
        );
        self.in_flight.push_back((seq, task));
    }
}

impl ChunkPut {
    /// Compresses the chunk and sends the same (seq, bytes) until the control plane acknowledges
    /// it, the attempt is gone, the job is cancelled or `retry_for` passes.
    async fn until_acknowledged(self, ndjson: Vec<u8>, n: u64) -> Result<Sent, UploadError> {
        let seq = self.seq;
        let sha = chunk::sha256_hex(&ndjson);
        let body = Bytes::from(
            chunk::encode(&ndjson, Encoding::Zstd)
                .map_err(|e| UploadError::Encode(e.to_string()))?,
        );
        let compressed = body.len() as u64;
        // Only the compressed body is kept while the chunk is in flight.
        drop(ndjson);
        let started = Instant::now();
        let mut backoff = Backoff::new(self.settings.backoff_base, self.settings.backoff_cap);
        loop {
            let attempt = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Err(UploadError::Cancelled),
                r = self.client.put_chunk(&self.job_id, self.attempt, seq, body.clone(), &sha, n) => r,
            };
            match attempt {
                Ok(ack) => {
                    if ack.duplicate {
                        tracing::info!(seq, "chunk was already stored (acknowledged as duplicate)");
                    }
                    break;
                }
                Err(e) if self.client.attempt_gone(&e) => {
                    let message = match e {
                        ClientError::LeaseLost { message, .. } => message,
                        other => other.to_string(),
                    };
                    return Err(UploadError::LeaseLost { seq, message });
                }
                Err(e) if e.is_retryable() => {
                    let delay = backoff.delay_after(&e);
                    if started.elapsed() + delay > self.settings.retry_for {
                        return Err(UploadError::GaveUp {
                            seq,
                            retried_for: started.elapsed(),
                            last_error: e.to_string(),
                        });
                    }
                    tracing::warn!(seq, error = %e, retry_in_ms = delay.as_millis() as u64, "chunk upload failed; retrying the same chunk");
                    tokio::select! {
                        biased;
                        _ = self.cancel.cancelled() => return Err(UploadError::Cancelled),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) => {
                    return Err(UploadError::Refused {
                        seq,
                        error: e.to_string(),
                    })
                }
            }
        }
        Ok(Sent {
            records: n,
            compressed,
        })
    }
}

impl RecordSink for ChunkUploader {
    async fn emit(&mut self, record: Record) -> Result<(), ExtractError> {
        self.push(record).await.map_err(|e| match e {
            UploadError::Cancelled => ExtractError::Cancelled,
            other => ExtractError::Output(other.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use krawl_model::WarningRecord;

    pub(crate) fn warning(i: usize) -> Record {
        Record::Warning(WarningRecord {
            code: "test".into(),
            scope: "cluster".into(),
            subject: None,
            message: format!("warning {i}"),
        })
    }

    #[test]
    fn cuts_at_the_record_limit_and_counts_lines() {
        let mut c = ChunkCutter::new(3, 1 << 20);
        assert!(!c.push(warning(0)).unwrap());
        assert!(!c.push(warning(1)).unwrap());
        assert!(c.push(warning(2)).unwrap());
        let (bytes, n) = c.take();
        assert_eq!(n, 3);
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 3);
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            let env: Envelope = serde_json::from_slice(line).unwrap();
            assert_eq!(env.schema_version, krawl_model::SCHEMA_VERSION);
        }
        assert!(c.is_empty());
        assert_eq!(c.take(), (Vec::new(), 0));
    }

    #[test]
    fn cuts_at_the_byte_limit() {
        let mut c = ChunkCutter::new(1_000_000, 200);
        let mut pushed = 0;
        while !c.push(warning(pushed)).unwrap() {
            pushed += 1;
        }
        let (bytes, n) = c.take();
        assert!(bytes.len() >= 200);
        assert_eq!(n, pushed as u64 + 1);
        // The previous line still fitted.
        let last = bytes[..bytes.len() - 1]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |p| p + 1);
        assert!(last < 200);
    }

    #[test]
    fn chunk_hashes_compose_into_the_stream_hash() {
        let mut c = ChunkCutter::new(2, 1 << 20);
        let mut stream = StreamHash::default();
        let mut all = Vec::new();
        for i in 0..5 {
            if c.push(warning(i)).unwrap() {
                let (b, _) = c.take();
                stream.update(&b);
                all.extend_from_slice(&b);
                let enc = chunk::encode(&b, Encoding::Zstd).unwrap();
                let dec = chunk::decode(&enc, Encoding::Zstd, 1 << 20).unwrap();
                chunk::verify(&dec, &chunk::sha256_hex(&b)).unwrap();
            }
        }
        let (b, n) = c.take();
        assert_eq!(n, 1);
        stream.update(&b);
        all.extend_from_slice(&b);
        assert_eq!(stream.hex(), chunk::sha256_hex(&all));
    }
}
