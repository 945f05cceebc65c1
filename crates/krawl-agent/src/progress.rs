//! A running job's progress: written by its executor (phase) and uploader (records, chunks),
//! read by its heartbeat.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use krawl_protocol::JobHeartbeat;

#[derive(Debug, Default)]
pub struct JobProgress {
    phase: Mutex<String>,
    records: AtomicU64,
    chunks: AtomicU32,
}

impl JobProgress {
    pub fn set_phase(&self, phase: &str) {
        if let Ok(mut p) = self.phase.lock() {
            phase.clone_into(&mut p);
        }
    }

    pub fn add_records(&self, n: u64) {
        self.records.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_chunk(&self) {
        self.chunks.fetch_add(1, Ordering::Relaxed);
    }

    pub fn records(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> JobHeartbeat {
        JobHeartbeat {
            phase: self.phase.lock().map(|p| p.clone()).unwrap_or_default(),
            records: self.records.load(Ordering::Relaxed),
            chunks: self.chunks.load(Ordering::Relaxed),
        }
    }
}

/// Lets the extraction engine report its phases into a [`JobProgress`].
impl krawl_kafka::Progress for JobProgress {
    fn phase(&self, name: &str, _total: Option<u64>) {
        self.set_phase(name);
    }
}
