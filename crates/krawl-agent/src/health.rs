//! `/healthz`, `/readyz` and `/metrics` on a local port (`agent.health_listen`).
//!
//! - `/healthz`: 200 while the process runs.
//! - `/readyz`: 200 once registered and while the last successful control-plane exchange is
//!   younger than about two poll periods; otherwise 503 with `{"ready":false,"reason":...}`.
//! - `/metrics`: Prometheus text. Labels are job kinds, outcomes and error kinds only: never a
//!   secret, a token or a job's spec.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub kind: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn duration_histogram() -> Histogram {
    // 0.25 s .. ~2.3 h
    Histogram::new(exponential_buckets(0.25, 2.0, 16))
}

/// The agent's metrics (prefix `krawl_`).
#[derive(Debug)]
pub struct Metrics {
    pub jobs: Family<JobLabels, Counter>,
    pub job_duration: HistogramFamily<KindLabels>,
    pub records_uploaded: Counter,
    pub bytes_uploaded: Counter,
    pub chunks_uploaded: Counter,
    pub control_plane_errors: Family<KindLabels, Counter>,
    pub poll_latency: Histogram,
    pub running_jobs: Gauge,
    pub agent_info: Family<VersionLabels, Gauge>,
}

/// Shared by the loop, the client, the uploaders and the health server.
#[derive(Debug)]
pub struct Telemetry {
    pub metrics: Metrics,
    registry: Registry,
    started: Instant,
    registered: AtomicBool,
    draining: AtomicBool,
    /// Milliseconds since `started` of the last successful control-plane exchange (+1; 0 = never).
    last_ok_ms: AtomicU64,
    /// Readiness window: about two poll periods.
    stale_after: Mutex<Duration>,
    last_error: Mutex<Option<String>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    pub fn new() -> Self {
        let metrics = Metrics {
            jobs: Family::default(),
            job_duration: Family::new_with_constructor(duration_histogram),
            records_uploaded: Counter::default(),
            bytes_uploaded: Counter::default(),
            chunks_uploaded: Counter::default(),
            control_plane_errors: Family::default(),
            poll_latency: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            running_jobs: Gauge::default(),
            agent_info: Family::default(),
        };
        let mut registry = Registry::with_prefix("krawl");
        registry.register(
            "jobs",
            "Jobs finished, by kind and outcome",
            metrics.jobs.clone(),
        );
        registry.register(
            "job_duration_seconds",
            "Wall time of finished jobs",
            metrics.job_duration.clone(),
        );
        registry.register(
            "records_uploaded",
            "Records acknowledged by the control plane",
            metrics.records_uploaded.clone(),
        );
        registry.register(
            "bytes_uploaded",
            "Compressed chunk bytes acknowledged by the control plane",
            metrics.bytes_uploaded.clone(),
        );
        registry.register(
            "chunks_uploaded",
            "Chunks acknowledged by the control plane",
            metrics.chunks_uploaded.clone(),
        );
        registry.register(
            "control_plane_errors",
            "Failed control-plane exchanges, by error kind",
            metrics.control_plane_errors.clone(),
        );
        registry.register(
            "poll_latency_seconds",
            "Duration of long polls (including the server's wait)",
            metrics.poll_latency.clone(),
        );
        registry.register(
            "running_jobs",
            "Jobs running now",
            metrics.running_jobs.clone(),
        );
        registry.register(
            "agent_info",
            "Agent build information",
            metrics.agent_info.clone(),
        );
        metrics
            .agent_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION").to_string(),
            })
            .set(1);
        Self {
            metrics,
            registry,
            started: Instant::now(),
            registered: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            last_ok_ms: AtomicU64::new(0),
            stale_after: Mutex::new(Duration::from_secs(
                2 * u64::from(krawl_protocol::DEFAULT_POLL_WAIT_SECS) + 15,
            )),
            last_error: Mutex::new(None),
        }
    }

    /// A control-plane exchange succeeded.
    pub fn exchange_ok(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last_ok_ms.store(ms + 1, Ordering::Relaxed);
    }

    /// A control-plane exchange failed (`kind`: a stable error kind, no secret).
    pub fn exchange_failed(&self, kind: &str, message: &str) {
        self.metrics
            .control_plane_errors
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .inc();
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(message.to_string());
    }

    pub fn set_registered(&self, registered: bool, poll_wait: Duration) {
        self.registered.store(registered, Ordering::Relaxed);
        *self
            .stale_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = poll_wait * 2 + Duration::from_secs(15);
    }

    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    pub fn job_finished(&self, kind: &str, outcome: &str, took: Duration) {
        // The kind comes from the control plane: only known kinds become label values, so a
        // misbehaving server cannot grow the number of series without bound.
        let kind = kind
            .parse::<krawl_protocol::JobKind>()
            .map_or("unknown", krawl_protocol::JobKind::as_str);
        self.metrics
            .jobs
            .get_or_create(&JobLabels {
                kind: kind.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
        self.metrics
            .job_duration
            .get_or_create(&KindLabels {
                kind: kind.to_string(),
            })
            .observe(took.as_secs_f64());
    }

    /// `Ok(())` when ready, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        // A draining agent takes no new jobs: not ready (a load balancer or rollout should not
        // count it), though still alive while its running jobs finish.
        if self.draining.load(Ordering::Relaxed) {
            return Err("draining: no new jobs are taken; running jobs are finishing".to_string());
        }
        if !self.registered.load(Ordering::Relaxed) {
            return Err(match self.last_error() {
                Some(e) => format!("not registered with the control plane yet: {e}"),
                None => "not registered with the control plane yet".to_string(),
            });
        }
        let last = self.last_ok_ms.load(Ordering::Relaxed);
        let stale_after = *self
            .stale_after
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let since = self
            .started
            .elapsed()
            .saturating_sub(Duration::from_millis(last.saturating_sub(1)));
        if last == 0 || since > stale_after {
            let mut reason = format!(
                "no successful control-plane exchange for {}s (limit {}s)",
                since.as_secs(),
                stale_after.as_secs()
            );
            if let Some(e) = self.last_error() {
                reason.push_str(": ");
                reason.push_str(&e);
            }
            return Err(reason);
        }
        Ok(())
    }

    fn last_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Serves the health endpoints on `addr` until `stop` is cancelled. Returns once bound (the
/// server runs in a task), so a port conflict is reported at startup.
pub async fn serve(
    addr: SocketAddr,
    telemetry: Arc<Telemetry>,
    stop: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(telemetry);
    tokio::spawn(async move {
        let result = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %e, "health server stopped");
        }
    });
    Ok(local)
}

async fn readyz(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    match t.readiness() {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"ready": true})),
        ),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"ready": false, "reason": reason})),
        ),
    }
}

async fn metrics(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        t.encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_needs_registration_and_a_recent_exchange() {
        let t = Telemetry::new();
        assert!(t.readiness().unwrap_err().contains("not registered"));
        t.exchange_failed("transport", "cannot reach https://cp");
        assert!(t.readiness().unwrap_err().contains("cannot reach"));
        t.set_registered(true, Duration::from_secs(30));
        assert!(t.readiness().is_err(), "no exchange yet");
        t.exchange_ok();
        assert!(t.readiness().is_ok());
        t.set_draining(true);
        assert!(t.readiness().unwrap_err().contains("draining"));
        t.set_draining(false);
        assert!(t.readiness().is_ok());
        t.set_registered(true, Duration::ZERO);
        *t.stale_after.lock().unwrap() = Duration::ZERO;
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.readiness().unwrap_err().contains("no successful"));
    }

    #[test]
    fn metrics_render_with_names_and_labels() {
        let t = Telemetry::new();
        t.job_finished("kafka.extract", "succeeded", Duration::from_secs(3));
        t.job_finished("kafka.made-up-1", "failed", Duration::from_secs(1));
        t.job_finished("kafka.made-up-2", "failed", Duration::from_secs(1));
        t.metrics.records_uploaded.inc_by(10);
        t.exchange_failed("rate_limited", "x");
        let text = t.encode();
        for needle in [
            "krawl_jobs_total{kind=\"kafka.extract\",outcome=\"succeeded\"} 1",
            // Kinds the agent does not know share one series.
            "krawl_jobs_total{kind=\"unknown\",outcome=\"failed\"} 2",
            "krawl_job_duration_seconds_bucket",
            "krawl_records_uploaded_total 10",
            "krawl_bytes_uploaded_total",
            "krawl_chunks_uploaded_total",
            "krawl_control_plane_errors_total{kind=\"rate_limited\"} 1",
            "krawl_poll_latency_seconds",
            "krawl_running_jobs",
            "krawl_agent_info{version=",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
    }

    #[tokio::test]
    async fn server_answers_each_endpoint() {
        let t = Arc::new(Telemetry::new());
        let stop = CancellationToken::new();
        let addr = serve("127.0.0.1:0".parse().unwrap(), t.clone(), stop.clone())
            .await
            .unwrap();
        let http = reqwest::Client::new();
        let get = |p: &str| http.get(format!("http://{addr}{p}")).send();
        assert_eq!(get("/healthz").await.unwrap().status(), 200);
        let r = get("/readyz").await.unwrap();
        assert_eq!(r.status(), 503);
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["ready"], false);
        t.set_registered(true, Duration::from_secs(30));
        t.exchange_ok();
        assert_eq!(get("/readyz").await.unwrap().status(), 200);
        let m = get("/metrics").await.unwrap().text().await.unwrap();
        assert!(m.contains("krawl_agent_info"));
        stop.cancel();
    }
}
