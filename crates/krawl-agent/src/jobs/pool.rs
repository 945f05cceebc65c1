//! One shared admin client per cluster connection, reused across concurrent and later jobs.
//!
//! # Key
//!
//! A client is keyed by its connection settings (bootstrap servers, security protocol, SASL
//! mechanism and username, OAuth endpoint/client id/scope/extensions, TLS files and host name
//! check, client id, timeout, extra properties) PLUS a fingerprint of the credentials resolved
//! for the job asking: HMAC-SHA256 under a key drawn at random when the pool is made, so the key
//! never holds a secret and a fingerprint means nothing outside this process. Secrets are
//! resolved for every job (call time, through the job's [`JobSecrets`]); a rotated password
//! gives a new fingerprint, hence a new client, and the old one ages out.
//!
//! # Trade-off
//!
//! A pooled client keeps the credential it was built with inside librdkafka (and, for the
//! DescribeLogDirs client, in the `Connection`) for as long as it lives, not just for one job.
//! That is the price of not re-authenticating every job; the idle TTL bounds it: a client no job
//! has used for `idle_ttl` is closed (by a background sweeper, and on every access), and
//! [`ConnectionPool::close_all`] closes everything at shutdown. Set a short TTL to hold
//! credentials briefly, a long one to save connections.
//!
//! Concurrent jobs asking for the same key wait for one connect instead of racing two clients.
//! A failed connect is not cached. A job that loses its cluster (a connection-class error)
//! evicts the client ([`PooledConnection::evict`]) so the next job connects afresh.

use std::collections::HashMap;
use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use krawl_kafka::config::KafkaSecrets;
use krawl_kafka::{Connection, ExtractError, KafkaConfig};
use krawl_secrets::JobSecrets;
use ring::hmac;

/// Pool counters, for tests and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Clients open now.
    pub open: usize,
    /// Requests served by an open client.
    pub hits: u64,
    /// Requests that connected a new client (successfully or not).
    pub misses: u64,
    /// Clients closed (idle, evicted or at shutdown).
    pub closed: u64,
}

/// See the module documentation.
#[derive(Clone)]
pub struct ConnectionPool {
    inner: Arc<Inner>,
}

struct Inner {
    idle_ttl: Duration,
    hmac_key: hmac::Key,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
    hits: AtomicU64,
    misses: AtomicU64,
    closed: AtomicU64,
}

/// One key's client. `conn` is async-locked only while connecting.
struct Slot {
    conn: tokio::sync::Mutex<Option<Connection>>,
    /// Jobs holding a lease now.
    leases: AtomicUsize,
    last_used: Mutex<Instant>,
}

impl fmt::Debug for ConnectionPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionPool")
            .field("idle_ttl", &self.inner.idle_ttl)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl ConnectionPool {
    /// A pool closing clients idle for `idle_ttl`. Inside a tokio runtime a background sweeper
    /// checks every `idle_ttl / 2` (between 100 ms and 30 s); it stops when the pool is dropped.
    pub fn new(idle_ttl: Duration) -> Self {
        let rng = ring::rand::SystemRandom::new();
        let hmac_key = hmac::Key::generate(hmac::HMAC_SHA256, &rng).unwrap_or_else(|_| {
            // The system RNG failing is not expected; fall back to a key from time and address,
            // still per process, still never the secret itself.
            let seed = format!("{:?}{:p}", Instant::now(), &rng);
            hmac::Key::new(hmac::HMAC_SHA256, seed.as_bytes())
        });
        let inner = Arc::new(Inner {
            idle_ttl,
            hmac_key,
            slots: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak: Weak<Inner> = Arc::downgrade(&inner);
            let every = (idle_ttl / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
            handle.spawn(async move {
                loop {
                    tokio::time::sleep(every).await;
                    let Some(inner) = weak.upgrade() else { return };
                    inner.sweep();
                }
            });
        }
        Self { inner }
    }

    pub fn idle_ttl(&self) -> Duration {
        self.inner.idle_ttl
    }

    pub fn stats(&self) -> PoolStats {
        let open = self
            .inner
            .lock_slots()
            .values()
            .filter(|s| s.conn.try_lock().map(|c| c.is_some()).unwrap_or(false))
            .count();
        PoolStats {
            open,
            hits: self.inner.hits.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
            closed: self.inner.closed.load(Ordering::Relaxed),
        }
    }

    /// The client for `cfg` with the credentials `job` resolves now: the pooled one when the
    /// settings and credentials match, else a new one (connected and probed, see
    /// [`Connection::connect_with`]). The secrets are resolved once, here (one audit line per
    /// reference). The lease keeps the client from being swept while held.
    pub async fn get(
        &self,
        cfg: &KafkaConfig,
        job: &JobSecrets,
    ) -> Result<PooledConnection, ExtractError> {
        self.inner.sweep();
        cfg.validate()?;
        // Resolved once per request (one audit line per reference): fingerprinted for the key,
        // then, on a miss, handed to the new client as they are.
        let secrets = cfg.resolve_secrets(job).await?;
        let key = self.inner.key(cfg, &secrets);
        let slot = {
            let mut slots = self.inner.lock_slots();
            let slot = slots.entry(key.clone()).or_insert_with(|| {
                Arc::new(Slot {
                    conn: tokio::sync::Mutex::new(None),
                    leases: AtomicUsize::new(0),
                    last_used: Mutex::new(Instant::now()),
                })
            });
            // Counted before the connect so the sweeper leaves a connecting slot alone.
            slot.leases.fetch_add(1, Ordering::AcqRel);
            Arc::clone(slot)
        };
        let lease = Lease {
            slot: Arc::clone(&slot),
        };
        let mut guard = slot.conn.lock().await;
        let conn = match guard.as_ref() {
            Some(c) => {
                self.inner.hits.fetch_add(1, Ordering::Relaxed);
                drop(secrets);
                c.clone()
            }
            None => {
                self.inner.misses.fetch_add(1, Ordering::Relaxed);
                // The values resolved above: no second resolution, no second audit line.
                match Connection::connect_with(cfg, secrets).await {
                    Ok(c) => {
                        *guard = Some(c.clone());
                        c
                    }
                    Err(e) => {
                        drop(guard);
                        drop(lease);
                        self.inner.remove_if_empty(&key, &slot);
                        return Err(e);
                    }
                }
            }
        };
        drop(guard);
        Ok(PooledConnection {
            conn,
            key,
            pool: Arc::downgrade(&self.inner),
            lease,
        })
    }

    /// Close clients idle for the TTL now (the sweeper does this on its own).
    pub fn sweep(&self) {
        self.inner.sweep();
    }

    /// Close every client no job holds (shutdown). Held ones close when their jobs end.
    pub fn close_all(&self) {
        self.inner.sweep_older_than(Duration::ZERO);
    }
}

impl Inner {
    fn lock_slots(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn key(&self, cfg: &KafkaConfig, secrets: &KafkaSecrets) -> String {
        let mut ctx = hmac::Context::with_key(&self.hmac_key);
        for (label, v) in secrets.values() {
            // Length-prefixed so that no two tuples of values share an input.
            ctx.update(&(label.len() as u64).to_be_bytes());
            ctx.update(label.as_bytes());
            match v {
                Some(s) => {
                    ctx.update(&[1]);
                    ctx.update(&(s.expose().len() as u64).to_be_bytes());
                    ctx.update(s.expose().as_bytes());
                }
                None => ctx.update(&[0]),
            }
        }
        let tag = ctx.sign();
        let fingerprint: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        let mut servers = cfg.bootstrap_servers.clone();
        servers.sort();
        let sasl = cfg
            .sasl
            .as_ref()
            .filter(|_| cfg.security_protocol.uses_sasl());
        let oauth = sasl.and_then(|s| s.oauthbearer.as_ref());
        let tls = cfg
            .tls
            .as_ref()
            .filter(|_| cfg.security_protocol.uses_tls());
        // Debug of plain settings only: no secret value is in any of these.
        format!(
            "{servers:?}|{}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{:?}|{}|{}|{:?}|{fingerprint}",
            cfg.security_protocol.as_str(),
            sasl.map(|s| s.mechanism.as_str()),
            sasl.and_then(|s| s.username.as_deref()),
            // Extension values are in the fingerprint (they may be secrets); keys here.
            oauth.map(|o| (
                &o.token_endpoint_url,
                &o.client_id,
                &o.scope,
                o.extensions.keys().collect::<Vec<_>>()
            )),
            tls.map(|t| &t.ca_file),
            tls.map(|t| &t.client_cert_file),
            tls.map(|t| t.verify_hostname),
            tls.map(|t| t.client_key.is_some()),
            tls.map(|t| t.client_key_password.is_some()),
            cfg.client_id,
            cfg.timeout_secs,
            cfg.properties,
        )
    }

    fn sweep(&self) {
        self.sweep_older_than(self.idle_ttl);
    }

    fn sweep_older_than(&self, ttl: Duration) {
        let mut closing = Vec::new();
        {
            let mut slots = self.lock_slots();
            slots.retain(|_, slot| {
                let idle = slot.leases.load(Ordering::Acquire) == 0
                    && slot
                        .last_used
                        .lock()
                        .map(|t| t.elapsed() >= ttl)
                        .unwrap_or(true);
                if !idle {
                    return true;
                }
                // Not connecting (a lease would be held) so the lock is free.
                if let Ok(mut c) = slot.conn.try_lock() {
                    if let Some(conn) = c.take() {
                        closing.push(conn);
                    }
                    false
                } else {
                    true
                }
            });
        }
        for conn in closing {
            self.closed.fetch_add(1, Ordering::Relaxed);
            close(conn);
        }
    }

    fn remove_if_empty(&self, key: &str, slot: &Arc<Slot>) {
        let mut slots = self.lock_slots();
        if let Some(s) = slots.get(key) {
            if Arc::ptr_eq(s, slot)
                && s.leases.load(Ordering::Acquire) == 0
                && s.conn.try_lock().map(|c| c.is_none()).unwrap_or(false)
            {
                slots.remove(key);
            }
        }
    }

    /// Removes `slot` (the one a job leased) from the pool. A newer slot under the same key
    /// (connected after an earlier eviction) is left alone: it is not the client that failed.
    fn evict(&self, key: &str, slot: &Arc<Slot>) {
        let conn = {
            let mut slots = self.lock_slots();
            if !slots.get(key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
                return;
            }
            slots.remove(key);
            let taken = slot.conn.try_lock().ok().and_then(|mut c| c.take());
            taken
        };
        if let Some(conn) = conn {
            self.closed.fetch_add(1, Ordering::Relaxed);
            close(conn);
        }
    }
}

/// Drop a client off the async workers: closing joins librdkafka's threads.
fn close(conn: Connection) {
    tracing::debug!(hosts = conn.hosts(), "closing pooled Kafka client");
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(move || drop(conn));
        }
        Err(_) => drop(conn),
    }
}

/// Marks a slot in use; on drop, records the time of last use.
struct Lease {
    slot: Arc<Slot>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut t) = self.slot.last_used.lock() {
            *t = Instant::now();
        }
        self.slot.leases.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A pooled client, leased to one job. Derefs to [`Connection`].
pub struct PooledConnection {
    conn: Connection,
    key: String,
    pool: Weak<Inner>,
    lease: Lease,
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection")
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl PooledConnection {
    /// Take this client out of the pool (it lost its cluster): the next job connects anew.
    /// This lease keeps working until dropped.
    pub fn evict(&self) {
        if let Some(pool) = self.pool.upgrade() {
            pool.evict(&self.key, &self.lease.slot);
        }
    }
}

impl Deref for PooledConnection {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.conn
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use krawl_secrets::{Resolver, SecretsConfig};

    use super::*;

    /// Records the `reference` field of every `krawl::audit` event on this thread.
    struct AuditLines(Arc<Mutex<Vec<String>>>);

    struct Reference<'a>(&'a mut Option<String>);

    impl tracing::field::Visit for Reference<'_> {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
            if field.name() == "reference" {
                *self.0 = Some(format!("{value:?}"));
            }
        }
    }

    impl tracing::Subscriber for AuditLines {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            if event.metadata().target() == "krawl::audit" {
                let mut reference = None;
                event.record(&mut Reference(&mut reference));
                self.0
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(reference.unwrap_or_default());
            }
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    fn empty_slot() -> Arc<Slot> {
        Arc::new(Slot {
            conn: tokio::sync::Mutex::new(None),
            leases: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
        })
    }

    /// A job evicting the client it failed with must not evict the newer client another job
    /// connected under the same key since.
    #[tokio::test]
    async fn eviction_removes_only_the_evicting_jobs_slot() {
        let pool = ConnectionPool::new(Duration::from_secs(60));
        let (old, new) = (empty_slot(), empty_slot());
        pool.inner
            .lock_slots()
            .insert("k".to_string(), Arc::clone(&new));
        pool.inner.evict("k", &old);
        assert!(pool
            .inner
            .lock_slots()
            .get("k")
            .is_some_and(|s| Arc::ptr_eq(s, &new)));
        pool.inner.evict("k", &new);
        assert!(pool.inner.lock_slots().is_empty());
    }

    /// The pool resolves a job's Kafka secrets once: one audit line per reference, although
    /// the secrets serve both the pool key and the new client. (Nothing listens on the
    /// bootstrap port, so the connect fails after the resolution; the count is the same.)
    #[tokio::test]
    async fn one_audit_line_per_secret_reference() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("kafka-password");
        std::fs::write(&password, "pw\n").unwrap();
        let reference = format!("file://{}", password.display());
        let cfg: KafkaConfig = toml::from_str(&format!(
            r#"
            bootstrap_servers = ["127.0.0.1:1"]
            security_protocol = "SASL_PLAINTEXT"
            timeout_secs = 2
            [sasl]
            mechanism = "PLAIN"
            username = "krawl"
            password = "{reference}"
            "#
        ))
        .unwrap();
        let resolver = Resolver::new(&SecretsConfig::default()).await.unwrap();
        let job = resolver.job("job-audit");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let _guard = tracing::subscriber::set_default(AuditLines(Arc::clone(&lines)));

        let pool = ConnectionPool::new(Duration::from_secs(60));
        let result = pool.get(&cfg, &job).await;
        assert!(result.is_err(), "nothing listens on 127.0.0.1:1");
        let lines = lines.lock().unwrap().clone();
        assert_eq!(lines, vec![reference], "one audit line per reference");
    }
}
