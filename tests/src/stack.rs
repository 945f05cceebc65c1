//! The whole system as separate processes: `krawl controlplane` (SQLite in a temp dir) and
//! `krawl run` agents, each in its own process group, killed on drop. Used by the end-to-end
//! tests in `tests/tests/agent.rs` and by nothing else: what runs here is the shipped binary.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use krawl_controlplane::admin::AdminClient;
use krawl_model::{Envelope, Record};
use krawl_protocol::{JobState, JobView, SubmitJob};

use crate::{free_port, krawl_bin, spawn_listening, ManagedProcess, PortWait, ProxiedTansu};

/// Admin token of every test control plane.
pub const ADMIN_TOKEN: &str = "test-admin-token-0b9d";
/// Bootstrap (registration) token of every test control plane.
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-token-77c1";

/// Proxy variables removed from an agent's environment unless a test sets them in
/// [`AgentOpts::env`].
pub const PROXY_ENV: &[&str] = &[
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
    "NO_PROXY",
    "no_proxy",
    "KRAWL_PROXY",
    "KRAWL_NO_PROXY",
];

/// Extra settings for [`ControlPlane::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ControlPlaneOpts {
    /// Seconds a poll is held open (the tests use short waits).
    pub poll_wait_secs: Option<u32>,
    /// Default lease TTL for submitted jobs.
    pub lease_ttl_secs: Option<u32>,
    /// `--agent-rate-limit` value (e.g. `"1/2"`: rate per second / burst).
    pub agent_rate_limit: Option<String>,
    /// Serve HTTPS with this certificate chain and key (`--tls-cert`/`--tls-key`); the URL is
    /// then `https://127.0.0.1:PORT` and [`ControlPlane::ca_file`] is the CA to trust.
    pub tls: Option<ControlPlaneTls>,
    /// Label-scoped bootstrap tokens, written to a tokens file (`--bootstrap-tokens`) next to
    /// the single [`BOOTSTRAP_TOKEN`], which grants no labels.
    pub bootstrap_tokens: Vec<ScopedToken>,
    /// `--max-attempt-chunks`.
    pub max_attempt_chunks: Option<u32>,
}

/// One `[[token]]` of the control plane's tokens file.
#[derive(Debug, Clone)]
pub struct ScopedToken {
    pub name: String,
    pub token: String,
    /// Label key and granted value (`*`: any value).
    pub labels: Vec<(String, String)>,
}

impl ScopedToken {
    pub fn new(name: &str, token: &str, labels: &[(&str, &str)]) -> Self {
        Self {
            name: name.into(),
            token: token.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

/// `{ k = "v", … }` (keys and values are test constants).
fn inline_table(pairs: &[(String, String)]) -> String {
    let body = pairs
        .iter()
        .map(|(k, v)| format!("{k:?} = {v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("{{ {body} }}")
}

/// PEM files for a TLS control plane (e.g. from [`crate::TestPki`]).
#[derive(Debug, Clone)]
pub struct ControlPlaneTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA that signed `cert` (what clients must trust).
    pub ca: PathBuf,
}

/// A `krawl controlplane` process with its database in a temp dir.
#[derive(Debug)]
pub struct ControlPlane {
    proc: Option<ManagedProcess>,
    port: u16,
    dir: tempfile::TempDir,
    opts: ControlPlaneOpts,
    starts: u32,
}

impl ControlPlane {
    pub fn start() -> Result<Self> {
        Self::start_with(ControlPlaneOpts::default())
    }

    pub fn start_with(opts: ControlPlaneOpts) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("krawl-cp-")
            .tempdir()
            .context("creating control-plane temp dir")?;
        let mut cp = Self {
            proc: None,
            port: 0,
            dir,
            opts,
            starts: 0,
        };
        cp.spawn(None)?;
        Ok(cp)
    }

    fn command(&self, port: u16) -> Result<Command> {
        let mut cmd = Command::new(krawl_bin()?);
        cmd.arg("--log-format")
            .arg("json")
            .arg("--log-level")
            .arg("info")
            .arg("controlplane")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--db")
            .arg(self.db_path())
            .env("KRAWL_CP_ADMIN_TOKEN", ADMIN_TOKEN)
            .env("KRAWL_CP_BOOTSTRAP_TOKEN", BOOTSTRAP_TOKEN);
        if let Some(w) = self.opts.poll_wait_secs {
            cmd.arg("--poll-wait-secs").arg(w.to_string());
        }
        if let Some(t) = self.opts.lease_ttl_secs {
            cmd.arg("--lease-ttl-secs").arg(t.to_string());
        }
        if let Some(r) = &self.opts.agent_rate_limit {
            cmd.arg("--agent-rate-limit").arg(r);
        }
        if let Some(tls) = &self.opts.tls {
            cmd.arg("--tls-cert")
                .arg(&tls.cert)
                .arg("--tls-key")
                .arg(&tls.key);
        }
        if !self.opts.bootstrap_tokens.is_empty() {
            cmd.arg("--bootstrap-tokens").arg(self.write_tokens_file()?);
        }
        if let Some(n) = self.opts.max_attempt_chunks {
            cmd.arg("--max-attempt-chunks").arg(n.to_string());
        }
        Ok(cmd)
    }

    /// The tokens file of [`ControlPlaneOpts::bootstrap_tokens`], each token in its own file.
    fn write_tokens_file(&self) -> Result<PathBuf> {
        let mut text = String::new();
        for t in &self.opts.bootstrap_tokens {
            let file = self.dir.path().join(format!("{}.token", t.name));
            std::fs::write(&file, format!("{}\n", t.token)).context("writing a token file")?;
            text.push_str(&format!(
                "[[token]]\nname = {:?}\ntoken_file = {:?}\nlabels = {}\n\n",
                t.name,
                file.display().to_string(),
                inline_table(&t.labels)
            ));
        }
        let path = self.dir.path().join("tokens.toml");
        std::fs::write(&path, text).context("writing the tokens file")?;
        Ok(path)
    }

    fn spawn(&mut self, port: Option<u16>) -> Result<()> {
        self.starts += 1;
        let log = self
            .dir
            .path()
            .join(format!("controlplane-{}.log", self.starts));
        let (proc, port) = match port {
            // A restart keeps its port: the agents know only that URL.
            Some(port) => {
                let mut proc =
                    ManagedProcess::spawn("krawl controlplane", self.command(port)?, log)?;
                match proc.wait_for_port(port, Duration::from_secs(30)) {
                    PortWait::Ready => (proc, port),
                    PortWait::Exited(m) | PortWait::TimedOut(m) => bail!(m),
                }
            }
            None => spawn_listening("krawl controlplane", &log, free_port, |p| self.command(p))?,
        };
        self.proc = Some(proc);
        self.port = port;
        Ok(())
    }

    /// SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill();
        }
    }

    /// Starts again on the same port and database.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn(Some(self.port))
    }

    /// Starts again on the same port with an empty database: every agent and token it knew is
    /// gone (agents must register again).
    pub fn restart_fresh(&mut self) -> Result<()> {
        self.kill();
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.db_path().into_os_string();
            path.push(suffix);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).context("removing the control-plane database"),
            }
        }
        self.spawn(Some(self.port))
    }

    /// The CA file clients must trust when the control plane serves HTTPS.
    pub fn ca_file(&self) -> Option<&Path> {
        self.opts.tls.as_ref().map(|t| t.ca.as_path())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("controlplane.db")
    }

    pub fn url(&self) -> String {
        let scheme = if self.opts.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Everything every run of this control plane logged.
    pub fn output(&self) -> String {
        let mut out = String::new();
        for i in 1..=self.starts {
            let path = self.dir.path().join(format!("controlplane-{i}.log"));
            out.push_str(&std::fs::read_to_string(path).unwrap_or_default());
        }
        out
    }

    /// `krawl jobs ARGS...` against this control plane.
    pub fn jobs_cli(&self, args: &[&str]) -> Result<std::process::Output> {
        let mut cmd = Command::new(krawl_bin()?);
        cmd.arg("jobs")
            .args(args)
            .env("KRAWL_CP_URL", self.url())
            .env("KRAWL_CP_ADMIN_TOKEN", ADMIN_TOKEN);
        if let Some(ca) = self.ca_file() {
            cmd.arg("--ca-file").arg(ca);
        }
        cmd.output().context("running krawl jobs")
    }
}

/// A `krawl run` agent with its config in a temp dir.
#[derive(Debug)]
pub struct Agent {
    proc: Option<ManagedProcess>,
    dir: tempfile::TempDir,
    health_port: u16,
}

/// Agent settings for [`Agent::start`]; `extra_toml` is appended to the generated config.
#[derive(Debug, Clone)]
pub struct AgentOpts {
    pub name: String,
    pub max_concurrent_jobs: u32,
    pub shutdown_grace_secs: u32,
    /// The bootstrap token the agent presents (a wrong one for the auth test).
    pub bootstrap_token: String,
    /// `[agent] labels`: they must be granted by `bootstrap_token` (see
    /// [`ControlPlaneOpts::bootstrap_tokens`]).
    pub labels: Vec<(String, String)>,
    /// `[agent] chunk_max_records` (small values make many chunks).
    pub chunk_max_records: Option<usize>,
    /// The `[policy]` table; by default any 127.0.0.1 broker and registry.
    pub policy_toml: String,
    pub extra_toml: String,
    /// Extra environment for the agent process (e.g. the Kafka password for `env://`).
    pub env: Vec<(String, String)>,
    /// Extra keys of `[control_plane]` (e.g. `ca_file = "..."`, `proxy = "..."`), one per line.
    pub control_plane_toml: String,
    /// Replaces the `[control_plane.auth]` table (default: the bootstrap token from
    /// `KRAWL_TEST_BOOTSTRAP_TOKEN`); e.g. `[control_plane.auth.oauth2]` with its keys.
    pub auth_toml: Option<String>,
}

impl Default for AgentOpts {
    fn default() -> Self {
        Self {
            name: "test-agent".into(),
            max_concurrent_jobs: 5,
            shutdown_grace_secs: 30,
            bootstrap_token: BOOTSTRAP_TOKEN.into(),
            labels: Vec::new(),
            chunk_max_records: None,
            policy_toml: "[policy]\nallowed_bootstrap_servers = [\"127.0.0.1:*\"]\n\
                          allowed_schema_registry_urls = [\"http://127.0.0.1:*\", \"https://127.0.0.1:*\"]\n"
                .into(),
            extra_toml: String::new(),
            env: Vec::new(),
            control_plane_toml: String::new(),
            auth_toml: None,
        }
    }
}

impl Agent {
    /// Starts an agent against `cp`.
    pub fn start(cp: &ControlPlane, opts: AgentOpts) -> Result<Self> {
        Self::start_at(&cp.url(), opts)
    }

    /// Starts an agent against the control plane at `url` (any server of the agent protocol,
    /// e.g. a [`crate::hostile_cp::HostileControlPlane`]); returns once its health port answers.
    pub fn start_at(url: &str, opts: AgentOpts) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("krawl-agent-")
            .tempdir()
            .context("creating agent temp dir")?;
        let health_port = free_port();
        let config = dir.path().join("krawl.toml");
        std::fs::write(
            &config,
            format!(
                "[agent]\nname = \"{name}\"\nmax_concurrent_jobs = {max}\nshutdown_grace_secs = {grace}\n\
                 health_listen = \"127.0.0.1:{health_port}\"\n{chunks}{labels}\n\
                 [control_plane]\nurl = \"{url}\"\n{cp_extra}\n\
                 {auth}\n\n\
                 {policy}\n{extra}\n",
                name = opts.name,
                max = opts.max_concurrent_jobs,
                grace = opts.shutdown_grace_secs,
                cp_extra = opts.control_plane_toml,
                auth = opts.auth_toml.as_deref().unwrap_or(
                    "[control_plane.auth]\nbootstrap_token = \"env://KRAWL_TEST_BOOTSTRAP_TOKEN\""
                ),
                chunks = opts
                    .chunk_max_records
                    .map(|n| format!("chunk_max_records = {n}\n"))
                    .unwrap_or_default(),
                labels = if opts.labels.is_empty() {
                    String::new()
                } else {
                    format!("labels = {}\n", inline_table(&opts.labels))
                },
                policy = opts.policy_toml,
                extra = opts.extra_toml,
            ),
        )
        .context("writing agent config")?;
        let mut cmd = Command::new(krawl_bin()?);
        cmd.arg("--log-format")
            .arg("json")
            .arg("--log-level")
            .arg("info,librdkafka=error")
            .arg("run")
            .arg("--config")
            .arg(&config)
            .env("KRAWL_TEST_BOOTSTRAP_TOKEN", &opts.bootstrap_token);
        // Proxy settings of the machine running the tests must not steer the agent; tests that
        // want a proxy pass it in `opts.env`.
        for var in PROXY_ENV {
            cmd.env_remove(var);
        }
        cmd.envs(opts.env.iter().map(|(k, v)| (k, v)));
        let proc = ManagedProcess::spawn("krawl run", cmd, dir.path().join("agent.log"))?;
        let mut agent = Self {
            proc: Some(proc),
            dir,
            health_port,
        };
        agent.wait_health()?;
        Ok(agent)
    }

    fn wait_health(&mut self) -> Result<()> {
        let port = self.health_port;
        let Some(proc) = self.proc.as_mut() else {
            bail!("agent not running");
        };
        match proc.wait_for_port(port, Duration::from_secs(30)) {
            PortWait::Ready => Ok(()),
            PortWait::Exited(m) | PortWait::TimedOut(m) => bail!(m),
        }
    }

    pub fn health_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.health_port)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("krawl.toml")
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The agent's log so far (JSON lines).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(ManagedProcess::pid)
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the agent process.
    pub fn signal(&self, signal: i32) {
        if let Some(pid) = self.pid().and_then(|p| i32::try_from(p).ok()) {
            // SAFETY: kill(2) on our own child's pid; no memory involved.
            unsafe {
                libc::kill(pid, signal);
            }
        }
    }

    /// The agent's resident set size now (`VmRSS` of `/proc/PID/status`), in bytes.
    pub fn rss_bytes(&self) -> Option<u64> {
        self.proc_status_bytes("VmRSS:")
    }

    /// The most the agent's resident set size has ever been (`VmHWM`), in bytes: memory a
    /// hostile answer made it use, even if it was freed since.
    pub fn peak_rss_bytes(&self) -> Option<u64> {
        self.proc_status_bytes("VmHWM:")
    }

    fn proc_status_bytes(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        let kb: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix(field))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// Whether the agent process is alive (not exited, not a zombie), without reaping it.
    pub fn alive(&self) -> bool {
        self.pid().is_some_and(crate::process_group_alive)
    }

    /// Whether the agent process is still running.
    pub fn is_running(&mut self) -> bool {
        self.proc
            .as_mut()
            .is_some_and(|p| matches!(p.child.try_wait(), Ok(None)))
    }

    /// Waits for the agent to exit; its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        let Some(proc) = self.proc.as_mut() else {
            bail!("agent not running");
        };
        loop {
            if let Some(status) = proc.child.try_wait().context("waiting for the agent")? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                bail!(
                    "agent still running after {timeout:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "agent log has no {needle:?} after {timeout:?}; log:\n{}",
            self.log()
        )
    }
}

// ------------------------------------------------------------------------------------------------
// The job API, as the end-to-end tests use it
// ------------------------------------------------------------------------------------------------

/// The spec of a `kafka.*` job against `bootstrap` (10 s Kafka timeout).
pub fn kafka_spec(bootstrap: &str) -> serde_json::Value {
    serde_json::json!({ "kafka": { "bootstrap_servers": [bootstrap], "timeout_secs": 10 } })
}

/// Polls `f` every 100 ms until it is true; panics naming `what` after `timeout`.
pub async fn eventually(what: &str, timeout: Duration, mut f: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

impl ControlPlane {
    /// The admin client (`krawl jobs`' own), trusting this control plane's CA when it has TLS.
    pub fn admin(&self) -> AdminClient {
        AdminClient::new(&self.url(), ADMIN_TOKEN, self.ca_file())
            .unwrap_or_else(|e| panic!("admin client for {}: {e}", self.url()))
    }

    /// Submits a job; its id.
    pub async fn submit(&self, kind: &str, spec: serde_json::Value) -> String {
        self.submit_labelled(kind, spec, &[]).await
    }

    /// Submits a job that only agents carrying all `labels` may run; its id.
    pub async fn submit_labelled(
        &self,
        kind: &str,
        spec: serde_json::Value,
        labels: &[(&str, &str)],
    ) -> String {
        let job = SubmitJob {
            kind: kind.into(),
            spec,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            max_attempts: None,
            lease_ttl_secs: None,
        };
        match self.admin().submit(&job).await {
            Ok(view) => view.id,
            Err(e) => panic!("submitting a {kind} job: {e}"),
        }
    }

    /// Waits (up to 120 s) until the job ends; on a timeout panics with both logs.
    pub async fn wait_terminal(&self, id: &str, agent: Option<&Agent>) -> JobView {
        match self.admin().wait(id, Duration::from_secs(120)).await {
            Ok(view) => view,
            Err(e) => panic!(
                "job {id} did not finish: {e:#}\nagent log:\n{}\ncontrol plane log:\n{}",
                agent.map(Agent::log).unwrap_or_default(),
                self.output()
            ),
        }
    }

    /// Waits until the job's state is `running`.
    pub async fn wait_running(&self, id: &str) {
        eventually("the job to run", Duration::from_secs(60), async || {
            self.admin()
                .get(id)
                .await
                .is_ok_and(|v| v.state == JobState::Running)
        })
        .await;
    }

    /// The job's result records.
    pub async fn records(&self, id: &str) -> Vec<Record> {
        let body = match self.admin().results(id).await {
            Ok(b) => b,
            Err(e) => panic!("results of {id}: {e}"),
        };
        String::from_utf8_lossy(&body)
            .lines()
            .map(|l| match serde_json::from_str::<Envelope>(l) {
                Ok(env) => env.record,
                Err(e) => panic!("result line is not a record ({e}): {l}"),
            })
            .collect()
    }

    /// Submits a `kafka.extract` against `broker` that hangs: three topics exist and the proxy
    /// swallows DescribeConfigs (until `broker.proxy.unswallow(32)`), with a `timeout_secs`
    /// Kafka timeout. Returns once the job is running.
    pub async fn submit_hung_extraction(&self, broker: &ProxiedTansu, timeout_secs: u64) -> String {
        if let Err(e) = crate::create_topics(&broker.bootstrap(), "t", 3, 1) {
            panic!("creating topics: {e:#}");
        }
        broker.proxy.swallow(32);
        let mut spec = kafka_spec(&broker.bootstrap());
        spec["kafka"]["timeout_secs"] = serde_json::json!(timeout_secs);
        let id = self.submit("kafka.extract", spec).await;
        self.wait_running(&id).await;
        id
    }
}
