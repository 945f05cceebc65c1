//! The stream hash of each attempt, kept as its chunks arrive, so that a completion does not
//! read back and hash every stored chunk while the job waits.
//!
//! # Why
//!
//! A `succeeded` completion claims the sha256 of the whole result stream (the decoded chunks in
//! sequence order, docs/protocol.md). Checking it at completion means reading, decoding and
//! hashing every chunk: 0.15 to 0.2 s for a 50,000-topic result, on the job's critical path
//! after its last upload. Each chunk is decoded anyway when it is uploaded (its own sha256 is
//! checked then), so the stream hash can be fed at that point, in sequence order.
//!
//! # How
//!
//! Per attempt: the next sequence number to hash and the hash state so far. A chunk stored with
//! that number is fed and the number moves on, and then any chunks already stored after it (an
//! upload that overtook an earlier one) are read back and fed too. Every advance holds the
//! attempt's lock and every chunk is stored before its advance, so each chunk is fed exactly
//! once, in order. A completion takes a copy of the state and hashes only the chunks after it
//! ([`crate::store::verify_stream`]); `store::complete` still re-checks that the chunk set did not
//! change meanwhile.
//!
//! # Bounds
//!
//! Memory only, never persisted: after a restart a completion hashes from the start, as before.
//! At most `capacity` attempts are tracked (a few hundred bytes each); an attempt that starts
//! when all are taken is hashed at completion instead. An entry ends with its completion, or
//! when it has not moved for [`IDLE`] and room is needed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use krawl_protocol::chunk::StreamHash;

use crate::error::ApiError;
use crate::store::{self, Store};

/// An entry not advanced for this long may be dropped to make room (its attempt's lease has
/// long expired by then: leases are minutes).
pub const IDLE: Duration = Duration::from_secs(3600);

/// The hash of chunks `0..next` of one attempt.
#[derive(Debug, Clone, Default)]
pub struct Prefix {
    pub next: u32,
    pub hash: StreamHash,
}

#[derive(Debug)]
struct Entry {
    prefix: Prefix,
    touched: Instant,
}

type Key = (String, u32);

/// The running stream hashes of the attempts being uploaded.
#[derive(Debug, Clone)]
pub struct RunningHashes {
    capacity: usize,
    entries: Arc<Mutex<HashMap<Key, Arc<Mutex<Entry>>>>>,
}

impl RunningHashes {
    /// Tracks at most `capacity` attempts (0: none, every completion hashes all its chunks).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Arc::default(),
        }
    }

    /// After chunk `seq` of the attempt was stored (not a repeat): feeds it if it is the next
    /// one, then the stored chunks that follow it. `decoded` is the chunk as verified. Runs on a
    /// blocking thread (it may read and decode stored chunks).
    pub fn stored(
        &self,
        store: &Store,
        job_id: &str,
        attempt: u32,
        seq: u32,
        decoded: &[u8],
    ) -> Result<(), ApiError> {
        let Some(entry) = self.entry(job_id, attempt, seq) else {
            return Ok(());
        };
        let mut e = entry.lock().unwrap_or_else(|p| p.into_inner());
        if e.prefix.next != seq {
            return Ok(());
        }
        e.prefix.hash.update(decoded);
        e.prefix.next += 1;
        e.touched = Instant::now();
        // Uploads that overtook this one: stored already, fed now.
        let e = &mut *e;
        while store::hash_stored_chunk(store, job_id, attempt, e.prefix.next, &mut e.prefix.hash)?
            .is_some()
        {
            e.prefix.next += 1;
        }
        Ok(())
    }

    /// The attempt's entry, created for its first chunk when there is room; `None` when it is
    /// not tracked.
    fn entry(&self, job_id: &str, attempt: u32, seq: u32) -> Option<Arc<Mutex<Entry>>> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = (job_id.to_string(), attempt);
        if let Some(e) = entries.get(&key) {
            return Some(Arc::clone(e));
        }
        if seq != 0 || self.capacity == 0 {
            // An attempt is tracked from its first chunk only: an entry started later could not
            // know what came before.
            return None;
        }
        if entries.len() >= self.capacity {
            entries.retain(|_, e| e.try_lock().map_or(true, |e| e.touched.elapsed() < IDLE));
            if entries.len() >= self.capacity {
                return None;
            }
        }
        let e = Arc::new(Mutex::new(Entry {
            prefix: Prefix::default(),
            touched: Instant::now(),
        }));
        entries.insert(key, Arc::clone(&e));
        Some(e)
    }

    /// The hash of the attempt's first chunks as fed so far (chunk 0 onwards), if tracked.
    pub fn prefix(&self, job_id: &str, attempt: u32) -> Option<Prefix> {
        let entry = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(job_id.to_string(), attempt))
            .cloned()?;
        let e = entry.lock().unwrap_or_else(|p| p.into_inner());
        Some(e.prefix.clone())
    }

    /// Forgets the attempt (it completed).
    pub fn forget(&self, job_id: &str, attempt: u32) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&(job_id.to_string(), attempt));
    }
}
