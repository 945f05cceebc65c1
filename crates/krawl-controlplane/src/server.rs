//! Starting and stopping: the database, the listener (plain or TLS), one hyper connection task
//! per client serving the axum router, and the lease reaper.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api::{self, AppState, Grant};
use crate::auth;
use crate::ratelimit::RateLimiter;
use crate::store::{self, JobDefaults, Store};
use crate::{ServerConfig, TlsFiles};

/// How often expired leases are looked for.
const REAP_INTERVAL: Duration = Duration::from_secs(1);
/// How often finished jobs past their retention are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// A client has this long to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`RunningServer::shutdown`] waits for open requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A control plane serving in the background; [`RunningServer::shutdown`] stops it.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    tls: bool,
    shutdown: CancellationToken,
    accept: JoinHandle<()>,
    reaper: JoinHandle<()>,
    connections: TaskTracker,
}

impl RunningServer {
    /// The bound address (the real port when listening on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT` or `https://IP:PORT`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Stops accepting, answers open polls with 204, lets open requests finish (up to 10 s),
    /// and stops the reaper. The database stays consistent at every point, so dropping the
    /// process instead (or SIGKILL) loses nothing that was acknowledged.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.accept.await;
        let _ = self.reaper.await;
        self.connections.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the shutdown grace period");
        }
        tracing::info!(addr = %self.addr, "control plane stopped");
    }
}

/// Opens (and migrates) the database, binds the listener, and spawns the server and the lease
/// reaper.
pub async fn start(cfg: ServerConfig) -> anyhow::Result<RunningServer> {
    if cfg.admin_token.trim().is_empty() {
        anyhow::bail!("the admin token must be set and non-empty");
    }
    crate::tokens::check_set(&cfg.bootstrap_tokens, &cfg.admin_token)
        .map_err(anyhow::Error::msg)?;
    let grants: Arc<[Grant]> = cfg.bootstrap_tokens.iter().map(Grant::new).collect();
    let db_path = cfg.db_path.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&db_path))
        .await
        .context("opening the database")??;
    // Agents registered under tokens (or grants) that are no longer configured lose their
    // registration: the labels they hold must still be granted.
    let tokens: Vec<_> = grants.iter().map(|g| g.token.clone()).collect();
    let revoked = store
        .call(move |c| store::revoke_ungranted(c, &tokens))
        .await
        .map_err(|e| {
            anyhow::anyhow!("checking registered agents against the bootstrap tokens: {e}")
        })?;
    for r in &revoked {
        tracing::warn!(
            agent_id = %r.agent_id,
            name = %r.name,
            reason = %r.reason,
            "agent registration revoked: it must register again"
        );
    }
    let tls = cfg.tls.as_ref().map(load_tls).transpose()?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let addr = listener.local_addr()?;

    let shutdown = CancellationToken::new();
    let state = AppState {
        store,
        admin_token_sha256: auth::token_hash(&cfg.admin_token).into(),
        bootstrap: grants,
        poll_wait: cfg.poll_wait,
        defaults: JobDefaults {
            max_attempts: cfg.default_max_attempts.max(1),
            lease_ttl_secs: u32::try_from(cfg.default_lease_ttl.as_secs())
                .unwrap_or(u32::MAX)
                .max(1),
        },
        max_body_bytes: cfg.max_body_bytes,
        quota: store::Quota {
            max_chunks: cfg.max_attempt_chunks.max(1),
            max_bytes: cfg.max_attempt_bytes.max(1),
        },
        limiter: cfg.agent_rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
        queue_changed: Arc::new(Notify::new()),
        shutdown: shutdown.clone(),
        verify_hook: cfg.verify_hook.clone(),
        running: crate::running_hash::RunningHashes::new(cfg.running_hashes),
    };
    let router = api::router(state.clone());
    let connections = TaskTracker::new();
    let accept = tokio::spawn(accept_loop(
        listener,
        tls.clone(),
        router,
        shutdown.clone(),
        connections.clone(),
    ));
    let reaper = tokio::spawn(housekeeping(state, cfg.retention, shutdown.clone()));
    tracing::info!(
        %addr,
        tls = tls.is_some(),
        db = %cfg.db_path.display(),
        "control plane listening"
    );
    Ok(RunningServer {
        addr,
        tls: tls.is_some(),
        shutdown,
        accept,
        reaper,
        connections,
    })
}

/// Server TLS with rustls' ring provider (the one the workspace's rustls is built with).
fn load_tls(files: &TlsFiles) -> anyhow::Result<TlsAcceptor> {
    let certs = CertificateDer::pem_file_iter(&files.cert_pem)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading certificates from {}", files.cert_pem.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no PEM certificate", files.cert_pem.display());
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_pem)
        .with_context(|| format!("reading the private key from {}", files.key_pem.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .with_context(|| {
            format!(
                "the key {} does not fit the certificate {}",
                files.key_pem.display(),
                files.cert_pem.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: CancellationToken,
    connections: TaskTracker,
) {
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (router, shutdown) = (router.clone(), shutdown.clone());
        match tls.clone() {
            None => {
                connections.spawn(serve_connection(tcp, router, shutdown));
            }
            Some(acceptor) => {
                connections.spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => serve_connection(stream, router, shutdown).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

/// HTTP/1.1 on one connection; on shutdown, finishes the request in flight and closes.
async fn serve_connection<IO>(io: IO, router: Router, shutdown: CancellationToken)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

/// Every [`REAP_INTERVAL`]: expire running attempts whose lease ran out, and wake polls when
/// that put jobs back in the queue. At start and every [`PRUNE_INTERVAL`]: delete finished jobs
/// older than `retention`.
async fn housekeeping(state: AppState, retention: Option<Duration>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(REAP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match state
            .store
            .call(|c| store::reap_expired(c, store::now_ms()))
            .await
        {
            Ok(0) => {}
            Ok(_) => state.queue_changed.notify_waiters(),
            Err(e) => tracing::warn!(error = %e, "lease reaper failed"),
        }
        if let Some(retention) = retention {
            if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_INTERVAL) {
                last_prune = Some(tokio::time::Instant::now());
                prune(&state, retention, &shutdown).await;
            }
        }
    }
}

/// Deletes finished jobs last updated more than `retention` ago, in batches of
/// [`store::PRUNE_BATCH`] so that requests are served in between.
async fn prune(state: &AppState, retention: Duration, shutdown: &CancellationToken) {
    let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
    let cutoff = store::now_ms().saturating_sub(retention_ms);
    let (mut jobs, mut chunks) = (0, 0);
    while !shutdown.is_cancelled() {
        match state
            .store
            .call(move |c| store::prune_finished(c, cutoff))
            .await
        {
            Ok((j, c)) => {
                jobs += j;
                chunks += c;
                if j < store::PRUNE_BATCH {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "pruning finished jobs failed");
                break;
            }
        }
    }
    if jobs > 0 {
        tracing::info!(
            jobs,
            chunks,
            retention_secs = retention.as_secs(),
            "deleted finished jobs past their retention"
        );
    }
}
