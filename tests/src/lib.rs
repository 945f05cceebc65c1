//! End-to-end test harness for krawl.
//!
//! Starts real Kafka-compatible brokers on loopback (noida-db and Tansu, installed by
//! `scripts/testbed-install.sh`), puts TLS (stunnel) or a recording proxy in front of them, seeds
//! a known data set and keeps consumer groups alive, so that tests can run the `krawl` binary
//! against them and compare its output with [`SeededDataset`].
//!
//! Every started process runs in its own process group and the whole group is killed on `Drop`,
//! so nothing outlives a test (noida-db is a Python wrapper that spawns a native child).
//!
//! What the two brokers accept and report differs; [`BrokerKind`] documents the differences that
//! the smoke tests in `tests/harness.rs` check.
pub mod forge;
pub mod hostile_cp;
pub mod http_server;
pub mod oauth;
pub mod proxy;
pub mod schema_registry;
pub mod sink;
pub mod stack;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

/// How long a broker, stunnel or the recording proxy may take to listen on its port.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Timeout used for single client calls (metadata, watermarks, commits) made by the harness.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Extra librdkafka client properties (e.g. `security.protocol=ssl`), as `(key, value)` pairs.
pub type ClientProps = Vec<(String, String)>;

// ------------------------------------------------------------------------------------------------
// Paths and ports
// ------------------------------------------------------------------------------------------------

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server a test starts.
///
/// A port found by bind(0) and released races with everything else that binds port 0 or
/// connects out (both draw from the kernel's ephemeral range) and with the other tests of the
/// binary doing the same: a server that loses its port exits, and its test then talks to
/// someone else's listener (seen in CI as a connection reset). So the port comes from *below*
/// the ephemeral range (`/proc/sys/net/ipv4/ip_local_port_range`), where the kernel never
/// allocates on its own, and is never handed out twice in one process. Ports are
/// [`PORT_STRIDE`] apart, because some servers also bind the ports just above theirs (an
/// OpenBao dev server listens on its port + 1 for cluster traffic).
pub fn free_port() -> u16 {
    const SPAN: u16 = 10_000; // a multiple of PORT_STRIDE
    static NEXT: Mutex<Option<(u16, u16)>> = Mutex::new(None); // (low, offset of the next)
    let mut state = NEXT.lock().unwrap_or_else(|e| e.into_inner());
    let (low, offset) = state.get_or_insert_with(|| {
        let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
            .ok()
            .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
            .unwrap_or(32768);
        // Start somewhere different in each process (test binaries run one after another,
        // but a port can linger in TIME_WAIT or in a server that has not exited yet).
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let slots = u32::from(SPAN / PORT_STRIDE);
        let start = ((std::process::id() ^ nanos) % slots) as u16 * PORT_STRIDE;
        (ephemeral_low.max(SPAN + 2_000) - SPAN, start)
    });
    for _ in 0..SPAN / PORT_STRIDE {
        let port = *low + *offset;
        *offset = (*offset + PORT_STRIDE) % SPAN;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {}..{}", *low, *low + SPAN);
}

/// A listener of our own on a [`free_port`] (a few tries: another process may take a port
/// between the check and the bind), for servers that live in the test process.
pub fn bind_free_port(what: &str) -> Result<(TcpListener, u16)> {
    (0..10)
        .find_map(|_| {
            let port = free_port();
            TcpListener::bind(("127.0.0.1", port))
                .ok()
                .map(|l| (l, port))
        })
        .with_context(|| format!("{what}: no free port to bind"))
}

/// Distance between two ports [`free_port`] hands out.
const PORT_STRIDE: u16 = 8;

/// The Cargo workspace root (parent of this package's manifest directory).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| manifest.join(".."))
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root when relative),
/// else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// The built `krawl` binary: `KRAWL_BIN` if set, else `<target-dir>/debug/krawl`.
///
/// `CARGO_BIN_EXE_krawl` only exists inside the `krawl-cli` package, so the path is derived from
/// the target directory; the binary must have been built with `cargo build -p krawl-cli`.
pub fn krawl_bin() -> Result<PathBuf> {
    let path = match std::env::var_os("KRAWL_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => target_dir().join("debug").join("krawl"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        bail!(
            "krawl binary not found at {}: run `cargo build -p krawl-cli` first \
             (or set KRAWL_BIN)",
            path.display()
        )
    }
}

/// Looks `name` up in `PATH`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// Resolves a binary from an env override, else the first of `candidates` found on PATH (or an
/// existing absolute path among them).
fn resolve_bin(env_var: &str, candidates: &[&str], hint: &str) -> Result<PathBuf> {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        if p.is_file() {
            return Ok(p);
        }
        bail!("{env_var}={} does not name a file; {hint}", p.display());
    }
    for c in candidates {
        let p = Path::new(c);
        if p.is_absolute() {
            if p.is_file() {
                return Ok(p.to_path_buf());
            }
        } else if let Some(found) = find_in_path(c) {
            return Ok(found);
        }
    }
    bail!(
        "none of {candidates:?} found (set {env_var} to override); {hint}",
        candidates = candidates
    )
}

/// A test server's binary: `$env_var`, else `<repo>/.testbed/bin/<name>` (where
/// `scripts/testbed-install.sh` puts it), else `name` on `PATH`.
pub fn testbed_bin(env_var: &str, name: &str, install_hint: &str) -> Result<PathBuf> {
    let local = workspace_root().join(".testbed").join("bin").join(name);
    let local = local.to_string_lossy().into_owned();
    resolve_bin(env_var, &[&local, name], install_hint)
}

/// `true` while any non-zombie process is in process group `pgid` (Linux: scans `/proc`).
pub fn process_group_alive(pgid: u32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|entry| {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            return false;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // "pid (comm) state ppid pgrp ..."; comm may contain spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<u32>().ok());
        pgrp == Some(pgid) && state != Some("Z") && state != Some("X")
    })
}

/// Waits until no live process remains in group `pgid`, up to `timeout`.
pub fn wait_process_group_gone(pgid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !process_group_alive(pgid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until the HTTP server `child` runs answers on 127.0.0.1:`port` with a `Server:` header
/// starting with `server` (case-insensitive). An open port is not enough: if `child` lost the
/// port to another test's listener it exits, but connections to that listener still succeed.
/// Panics, with `log()`, when `child` exits or `within` passes.
pub fn wait_for_http_server(
    child: &mut Child,
    port: u16,
    server: &str,
    within: Duration,
    log: impl Fn() -> String,
) {
    let deadline = Instant::now() + within;
    let want = server.to_ascii_lowercase();
    loop {
        if let Some(status) = child.try_wait().ok().flatten() {
            panic!(
                "{server} server exited ({status}) before answering on {port}: {}",
                log()
            );
        }
        if http_server_header(port).is_some_and(|names| names.iter().any(|n| n.starts_with(&want)))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no {server} server answered on 127.0.0.1:{port} within {within:?}: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The lower-cased `Server:` header values of `GET /` on 127.0.0.1:`port`, if anything answers.
fn http_server_header(port: u16) -> Option<Vec<String>> {
    use std::io::Write;
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_ascii_lowercase();
    let head = text.split("\r\n\r\n").next()?;
    Some(
        head.lines()
            .filter_map(|l| l.strip_prefix("server:"))
            .map(|v| v.trim().to_string())
            .collect(),
    )
}

/// Kills `child` and everything in its process group, then reaps it.
///
/// The group is signalled only while `child` still leads its own group (it was spawned with
/// `process_group(0)` and is not yet reaped, so its pid cannot have been reused) and that group
/// is not the caller's own: a stale or shared group id can never take the test run with it.
pub fn kill_process_group(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: getpgid/getpgrp/kill are plain syscalls on integers; no memory is involved.
        unsafe {
            let pgid = libc::getpgid(pid);
            if pid > 1 && pgid == pid && pgid != libc::getpgrp() {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

// ------------------------------------------------------------------------------------------------
// Managed child processes
// ------------------------------------------------------------------------------------------------

/// A child process in its own process group, output in a log file, group killed on drop.
#[derive(Debug)]
struct ManagedProcess {
    name: String,
    child: Child,
    log_path: PathBuf,
}

enum PortWait {
    Ready,
    Exited(String),
    TimedOut(String),
}

impl ManagedProcess {
    fn spawn(name: &str, mut cmd: Command, log_path: PathBuf) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        let log = File::create(&log_path)
            .with_context(|| format!("creating log file {}", log_path.display()))?;
        let log_err = log.try_clone().context("cloning log file handle")?;
        cmd.stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0);
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {name}: {cmd:?}"))?;
        Ok(Self {
            name: name.to_string(),
            child,
            log_path,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn output(&self) -> String {
        let mut buf = Vec::new();
        if let Ok(mut f) = File::open(&self.log_path) {
            let _ = f.read_to_end(&mut buf);
        }
        let text = String::from_utf8_lossy(&buf);
        // Keep error messages readable: the last 8 KiB is what matters.
        let start = text.len().saturating_sub(8192);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    fn wait_for_port(&mut self, port: u16, timeout: Duration) -> PortWait {
        let deadline = Instant::now() + timeout;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    return PortWait::Exited(format!(
                        "{} exited ({status}) before listening on {addr}; output:\n{}",
                        self.name,
                        self.output()
                    ))
                }
                Ok(None) => {}
                Err(e) => {
                    return PortWait::Exited(format!("waiting for {}: {e}", self.name));
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(250)).is_ok() {
                return PortWait::Ready;
            }
            if Instant::now() >= deadline {
                return PortWait::TimedOut(format!(
                    "{} did not listen on {addr} within {timeout:?}; output:\n{}",
                    self.name,
                    self.output()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        kill_process_group(&mut self.child);
    }
}

impl Drop for ManagedProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Spawns a server whose port is picked by `make_cmd(port)`; retries with a new port when the
/// process exits before listening (another process took the port in the meantime).
fn spawn_listening(
    name: &str,
    log_path: &Path,
    ports: impl Fn() -> u16,
    make_cmd: impl Fn(u16) -> Result<Command>,
) -> Result<(ManagedProcess, u16)> {
    let mut last = String::new();
    for _ in 0..3 {
        let port = ports();
        let mut proc = ManagedProcess::spawn(name, make_cmd(port)?, log_path.to_path_buf())?;
        match proc.wait_for_port(port, START_TIMEOUT) {
            PortWait::Ready => return Ok((proc, port)),
            PortWait::Exited(msg) => last = msg,
            PortWait::TimedOut(msg) => bail!(msg),
        }
    }
    bail!(last)
}

// ------------------------------------------------------------------------------------------------
// noida-db
// ------------------------------------------------------------------------------------------------

/// A noida-db broker (Kafka API only) on a free port with a fresh data directory.
#[derive(Debug)]
pub struct Noida {
    proc: ManagedProcess,
    port: u16,
    dir: tempfile::TempDir,
}

impl Noida {
    /// Starts `noida-db start --only kafka` (binary: `KRAWL_NOIDA_BIN`, else `noida-db` on PATH)
    /// and waits until its port accepts connections.
    pub fn start() -> Result<Noida> {
        let bin = resolve_bin(
            "KRAWL_NOIDA_BIN",
            &["noida-db"],
            "run scripts/testbed-install.sh (pip install noida-db==0.2.3)",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("krawl-noida-")
            .tempdir()
            .context("creating noida temp dir")?;
        let log = dir.path().join("noida.log");
        let base = dir.path().to_path_buf();
        let (proc, port) = spawn_listening("noida-db", &log, free_port, |port| {
            // A fresh data dir per attempt: noida persists state in it.
            let data = base.join(format!("data-{port}"));
            std::fs::create_dir_all(&data)
                .with_context(|| format!("creating {}", data.display()))?;
            let mut cmd = Command::new(&bin);
            cmd.arg("start")
                .arg("--only")
                .arg("kafka")
                .arg("--kafka-port")
                .arg(port.to_string())
                .arg("--data-dir")
                .arg(&data);
            Ok(cmd)
        })?;
        Ok(Noida { proc, port, dir })
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Process group id of the noida processes (the Python wrapper and its native child).
    pub fn pgid(&self) -> u32 {
        self.proc.pid()
    }

    /// The broker's stdout/stderr so far (last 8 KiB).
    pub fn output(&self) -> String {
        self.proc.output()
    }

    pub fn data_root(&self) -> &Path {
        self.dir.path()
    }
}

// ------------------------------------------------------------------------------------------------
// Tansu
// ------------------------------------------------------------------------------------------------

/// Options for [`Tansu::start`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TansuOpts {
    /// Port put in `--advertised-listener-url` (so a proxy or stunnel can sit in front);
    /// defaults to the listen port.
    pub advertised_port: Option<u16>,
    /// Port to listen on; defaults to a free port.
    pub listen_port: Option<u16>,
}

/// A Tansu broker with in-memory storage.
#[derive(Debug)]
pub struct Tansu {
    proc: ManagedProcess,
    listen_port: u16,
    advertised_port: u16,
    _dir: tempfile::TempDir,
}

/// The Tansu binary: `KRAWL_TANSU_BIN`, else `<workspace>/.testbed/bin/tansu`.
pub fn tansu_bin() -> Result<PathBuf> {
    let default = workspace_root().join(".testbed").join("bin").join("tansu");
    let default = default.to_string_lossy().into_owned();
    resolve_bin(
        "KRAWL_TANSU_BIN",
        &[default.as_str()],
        "run scripts/testbed-install.sh",
    )
}

impl Tansu {
    /// Starts `tansu broker --storage-engine memory://tansu/` on 127.0.0.1 and waits for its port.
    pub fn start(opts: TansuOpts) -> Result<Tansu> {
        let bin = tansu_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("krawl-tansu-")
            .tempdir()
            .context("creating tansu temp dir")?;
        let log = dir.path().join("tansu.log");
        let fixed_listen = opts.listen_port;
        let ports = || fixed_listen.unwrap_or_else(free_port);
        let (proc, listen_port) = spawn_listening("tansu", &log, ports, |port| {
            let advertised = opts.advertised_port.unwrap_or(port);
            let mut cmd = Command::new(&bin);
            cmd.arg("broker")
                .arg("--listener-url")
                .arg(format!("tcp://127.0.0.1:{port}"))
                .arg("--advertised-listener-url")
                .arg(format!("tcp://127.0.0.1:{advertised}"))
                .arg("--storage-engine")
                .arg("memory://tansu/")
                .current_dir(dir.path());
            Ok(cmd)
        })?;
        Ok(Tansu {
            proc,
            listen_port,
            advertised_port: opts.advertised_port.unwrap_or(listen_port),
            _dir: dir,
        })
    }

    /// `127.0.0.1:ADVERTISED_PORT`: the address clients should bootstrap from (the listen port
    /// unless something sits in front).
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.advertised_port)
    }

    /// `127.0.0.1:LISTEN_PORT`: tansu itself, bypassing whatever sits in front.
    pub fn listen_bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.listen_port)
    }

    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.listen_port))
    }

    pub fn advertised_port(&self) -> u16 {
        self.advertised_port
    }

    pub fn pgid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn output(&self) -> String {
        self.proc.output()
    }
}

// ------------------------------------------------------------------------------------------------
// Test PKI
// ------------------------------------------------------------------------------------------------

/// Certificates for TLS tests, as PEM files in a temp dir (ECDSA P-256 keys, PKCS#8).
#[derive(Debug)]
pub struct TestPki {
    dir: tempfile::TempDir,
    /// The CA that signed the server and client certificates.
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    /// Server certificate, SAN `DNS:localhost, IP:127.0.0.1`, signed by the CA.
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Client certificate (CN `krawl-test-client`), signed by the CA.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// An unrelated CA: trusting only it must fail against the server.
    pub wrong_ca_cert: PathBuf,
    pub wrong_ca_key: PathBuf,
    /// A client certificate signed by the wrong CA: an mTLS server must reject it.
    pub wrong_client_cert: PathBuf,
    pub wrong_client_key: PathBuf,
}

impl TestPki {
    /// Generates the CA, server, client and wrong-CA material and writes the PEM files.
    pub fn generate() -> Result<TestPki> {
        use rcgen::{
            BasicConstraints, CertificateParams, DistinguishedName, DnType,
            ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
        };

        fn params(cn: &str, sans: &[&str]) -> Result<CertificateParams> {
            let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
            let mut p = CertificateParams::new(sans).context("certificate params")?;
            let mut dn = DistinguishedName::new();
            dn.push(DnType::CommonName, cn);
            dn.push(DnType::OrganizationName, "krawl tests");
            p.distinguished_name = dn;
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2099, 12, 31);
            Ok(p)
        }
        fn ca(cn: &str) -> Result<(rcgen::Certificate, KeyPair)> {
            let mut p = params(cn, &[])?;
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.key_usages = vec![
                KeyUsagePurpose::KeyCertSign,
                KeyUsagePurpose::CrlSign,
                KeyUsagePurpose::DigitalSignature,
            ];
            let key = KeyPair::generate().context("CA key")?;
            let cert = p.self_signed(&key).context("self-signing CA")?;
            Ok((cert, key))
        }
        fn leaf(
            cn: &str,
            sans: &[&str],
            eku: ExtendedKeyUsagePurpose,
            issuer: &rcgen::Certificate,
            issuer_key: &KeyPair,
        ) -> Result<(rcgen::Certificate, KeyPair)> {
            let mut p = params(cn, sans)?;
            p.is_ca = IsCa::ExplicitNoCa;
            p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
            p.extended_key_usages = vec![eku];
            p.use_authority_key_identifier_extension = true;
            let key = KeyPair::generate().context("leaf key")?;
            let cert = p
                .signed_by(&key, issuer, issuer_key)
                .with_context(|| format!("signing {cn}"))?;
            Ok((cert, key))
        }

        let dir = tempfile::Builder::new()
            .prefix("krawl-pki-")
            .tempdir()
            .context("creating PKI temp dir")?;
        let write = |name: &str, pem: String| -> Result<PathBuf> {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).with_context(|| format!("writing {}", path.display()))?;
            Ok(path)
        };

        let (ca_cert, ca_key) = ca("krawl test CA")?;
        let (srv, srv_key) = leaf(
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca_cert,
            &ca_key,
        )?;
        let (cli, cli_key) = leaf(
            "krawl-test-client",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            &ca_cert,
            &ca_key,
        )?;
        let (wrong_ca, wrong_ca_key) = ca("krawl wrong CA")?;
        let (wrong_cli, wrong_cli_key) = leaf(
            "krawl-wrong-client",
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
            &wrong_ca,
            &wrong_ca_key,
        )?;

        Ok(TestPki {
            ca_cert: write("ca.pem", ca_cert.pem())?,
            ca_key: write("ca.key", ca_key.serialize_pem())?,
            server_cert: write("server.pem", srv.pem())?,
            server_key: write("server.key", srv_key.serialize_pem())?,
            client_cert: write("client.pem", cli.pem())?,
            client_key: write("client.key", cli_key.serialize_pem())?,
            wrong_ca_cert: write("wrong-ca.pem", wrong_ca.pem())?,
            wrong_ca_key: write("wrong-ca.key", wrong_ca_key.serialize_pem())?,
            wrong_client_cert: write("wrong-client.pem", wrong_cli.pem())?,
            wrong_client_key: write("wrong-client.key", wrong_cli_key.serialize_pem())?,
            dir,
        })
    }

    /// The directory holding the PEM files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Reads one of the PEM files (e.g. `pki.pem(&pki.ca_cert)`), for inline-PEM settings.
    pub fn pem(&self, path: &Path) -> Result<String> {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }

    /// librdkafka properties for TLS trusting the test CA, plus the client certificate when
    /// `client_cert` is set.
    pub fn rdkafka_tls_props(&self, client_cert: bool) -> ClientProps {
        let mut props = vec![
            ("security.protocol".to_string(), "ssl".to_string()),
            (
                "ssl.ca.location".to_string(),
                self.ca_cert.display().to_string(),
            ),
        ];
        if client_cert {
            props.push((
                "ssl.certificate.location".to_string(),
                self.client_cert.display().to_string(),
            ));
            props.push((
                "ssl.key.location".to_string(),
                self.client_key.display().to_string(),
            ));
        }
        props
    }
}

// ------------------------------------------------------------------------------------------------
// stunnel
// ------------------------------------------------------------------------------------------------

/// stunnel terminating TLS on `accept_port` and forwarding plaintext to `connect_port`.
#[derive(Debug)]
pub struct Stunnel {
    proc: ManagedProcess,
    accept_port: u16,
    _dir: tempfile::TempDir,
}

impl Stunnel {
    /// Starts stunnel (`KRAWL_STUNNEL_BIN`, else `stunnel4` or `stunnel` on PATH) with the test
    /// server certificate; with `require_client_cert`, clients must present a certificate signed
    /// by the test CA (`CAfile` + `verify = 2`).
    pub fn start(
        accept_port: u16,
        connect_port: u16,
        pki: &TestPki,
        require_client_cert: bool,
    ) -> Result<Stunnel> {
        let bin = resolve_bin(
            "KRAWL_STUNNEL_BIN",
            &["stunnel4", "stunnel"],
            "run scripts/testbed-install.sh (apt-get install stunnel4)",
        )?;
        let dir = tempfile::Builder::new()
            .prefix("krawl-stunnel-")
            .tempdir()
            .context("creating stunnel temp dir")?;
        let mut conf = format!(
            "foreground = yes\n\
             pid =\n\
             [kafka-tls]\n\
             accept = 127.0.0.1:{accept_port}\n\
             connect = 127.0.0.1:{connect_port}\n\
             cert = {}\n\
             key = {}\n",
            pki.server_cert.display(),
            pki.server_key.display()
        );
        if require_client_cert {
            conf.push_str(&format!("CAfile = {}\nverify = 2\n", pki.ca_cert.display()));
        }
        let conf_path = dir.path().join("stunnel.conf");
        std::fs::write(&conf_path, conf)
            .with_context(|| format!("writing {}", conf_path.display()))?;
        let mut cmd = Command::new(&bin);
        cmd.arg(&conf_path).current_dir(dir.path());
        let mut proc = ManagedProcess::spawn("stunnel", cmd, dir.path().join("stunnel.log"))?;
        match proc.wait_for_port(accept_port, START_TIMEOUT) {
            PortWait::Ready => {}
            PortWait::Exited(msg) | PortWait::TimedOut(msg) => bail!(msg),
        }
        Ok(Stunnel {
            proc,
            accept_port,
            _dir: dir,
        })
    }

    pub fn accept_port(&self) -> u16 {
        self.accept_port
    }

    pub fn pgid(&self) -> u32 {
        self.proc.pid()
    }

    pub fn output(&self) -> String {
        self.proc.output()
    }
}

/// Tansu listening on a plaintext port and advertising the TLS port of a stunnel in front of it,
/// so every client connection (bootstrap and broker) goes through TLS.
#[derive(Debug)]
pub struct TlsTansu {
    // Field order = drop order: stunnel first.
    pub stunnel: Stunnel,
    pub tansu: Tansu,
    pub mtls: bool,
}

impl TlsTansu {
    pub fn start(pki: &TestPki, require_client_cert: bool) -> Result<TlsTansu> {
        let tls_port = free_port();
        let tansu = Tansu::start(TansuOpts {
            advertised_port: Some(tls_port),
            listen_port: None,
        })?;
        let stunnel = Stunnel::start(tls_port, tansu.listen_port(), pki, require_client_cert)?;
        Ok(TlsTansu {
            stunnel,
            tansu,
            mtls: require_client_cert,
        })
    }

    /// `127.0.0.1:TLS_PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.stunnel.accept_port())
    }

    /// librdkafka properties that reach this broker (client certificate included for mTLS).
    pub fn client_props(&self, pki: &TestPki) -> ClientProps {
        pki.rdkafka_tls_props(self.mtls)
    }
}

// ------------------------------------------------------------------------------------------------
// Recording proxy
// ------------------------------------------------------------------------------------------------

/// One client→broker request seen by the [`RecordingProxy`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// Sequence number of the proxied connection (0-based, in accept order).
    pub connection: u64,
    pub api_key: i16,
    pub api_version: i16,
    pub correlation_id: i32,
    /// Request header client id (`None` when null or not decodable).
    pub client_id: Option<String>,
}

impl RecordedRequest {
    pub fn api_name(&self) -> &'static str {
        api_name(self.api_key)
    }
}

/// A TCP proxy that forwards Kafka frames both ways and records the header of every request
/// frame sent by clients. Runs on its own thread and Tokio runtime (usable from sync and async
/// tests). Put it in front of Tansu with `advertised_port` = the proxy's port so that all client
/// connections go through it (noida always advertises its own listen port, so behind a proxy
/// only the bootstrap connection would be seen).
///
/// It can play a broker that does not answer one API ([`RecordingProxy::swallow`]) or a hostile
/// one ([`RecordingProxy::forge`]: a request matched by a predicate is answered by the test,
/// not forwarded).
#[derive(Debug)]
pub struct RecordingProxy {
    port: u16,
    upstream: SocketAddr,
    records: Arc<Mutex<Vec<RecordedRequest>>>,
    connections: Arc<AtomicU64>,
    swallowed: Arc<Mutex<BTreeSet<i16>>>,
    forgeries: Forgeries,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// Which requests a forgery answers.
pub type ForgeMatcher = Arc<dyn Fn(&forge::KafkaRequest<'_>) -> bool + Send + Sync>;
/// A forgery's answer to a request: the response bytes after the correlation id (the rest of
/// the response header, then the body). The proxy adds the size and the request's correlation id.
pub type ForgeAnswer = Arc<dyn Fn(&forge::KafkaRequest<'_>) -> Vec<u8> + Send + Sync>;

struct Forgery {
    name: String,
    matches: ForgeMatcher,
    answer: ForgeAnswer,
    used: AtomicU64,
}

/// The forgeries of a proxy, tried in the order they were added.
#[derive(Clone, Default)]
struct Forgeries(Arc<Mutex<Vec<Arc<Forgery>>>>);

impl std::fmt::Debug for Forgeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self.lock().iter().map(|g| g.name.clone()).collect();
        f.debug_tuple("Forgeries").field(&names).finish()
    }
}

impl Forgeries {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<Forgery>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The answer frame (size, correlation id, bytes) of the first forgery matching `req`.
    fn answer(&self, req: &forge::KafkaRequest<'_>) -> Option<Vec<u8>> {
        let forgery = self.lock().iter().find(|g| (g.matches)(req)).cloned()?;
        forgery.used.fetch_add(1, Ordering::SeqCst);
        let rest = (forgery.answer)(req);
        let len = i32::try_from(4 + rest.len()).unwrap_or(i32::MAX);
        let mut frame = Vec::with_capacity(8 + rest.len());
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&req.header.correlation_id.to_be_bytes());
        frame.extend_from_slice(&rest);
        Some(frame)
    }
}

fn lock_records(m: &Mutex<Vec<RecordedRequest>>) -> MutexGuard<'_, Vec<RecordedRequest>> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Largest request frame the proxy decodes; anything bigger is forwarded without parsing.
const MAX_FRAME: i32 = 256 * 1024 * 1024;

fn decode_request_header(connection: u64, frame: &[u8]) -> Option<RecordedRequest> {
    if frame.len() < 8 {
        return None;
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    // Request header v1+ (every request librdkafka sends): nullable int16-length client id.
    let client_id = frame.get(8..10).and_then(|len| {
        let len = i16::from_be_bytes([len[0], len[1]]);
        let len = usize::try_from(len).ok()?;
        let bytes = frame.get(10..10 + len)?;
        String::from_utf8(bytes.to_vec()).ok()
    });
    Some(RecordedRequest {
        connection,
        api_key,
        api_version,
        correlation_id,
        client_id,
    })
}

async fn proxy_connection(
    connection: u64,
    client: tokio::net::TcpStream,
    upstream: SocketAddr,
    records: Arc<Mutex<Vec<RecordedRequest>>>,
    swallowed: Arc<Mutex<BTreeSet<i16>>>,
    forgeries: Forgeries,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut client_rd, mut client_wr) = client.into_split();
    let (mut server_rd, mut server_wr) = server.into_split();
    // Everything for the client goes through one writer, a whole frame at a time, so a forged
    // answer never lands in the middle of one of the broker's.
    let (to_client, mut for_client) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let forged = to_client.clone();

    let requests = async move {
        loop {
            let mut size = [0u8; 4];
            if client_rd.read_exact(&mut size).await.is_err() {
                break;
            }
            let len = i32::from_be_bytes(size);
            if !(0..=MAX_FRAME).contains(&len) {
                // Not Kafka framing: stop decoding, just forward the rest.
                if server_wr.write_all(&size).await.is_err() {
                    break;
                }
                let _ = tokio::io::copy(&mut client_rd, &mut server_wr).await;
                break;
            }
            let len = usize::try_from(len).unwrap_or(0);
            let mut buf = vec![0u8; 4 + len];
            buf[..4].copy_from_slice(&size);
            if client_rd.read_exact(&mut buf[4..]).await.is_err() {
                break;
            }
            if let Some(rec) = decode_request_header(connection, &buf[4..]) {
                let swallow = swallowed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .contains(&rec.api_key);
                let answer = forgeries.answer(&forge::KafkaRequest {
                    header: &rec,
                    frame: &buf[4..],
                });
                lock_records(&records).push(rec);
                if let Some(frame) = answer {
                    // Answered here, never forwarded: the broker never sees it.
                    if forged.send(frame).is_err() {
                        break;
                    }
                    continue;
                }
                if swallow {
                    // Recorded, never forwarded: the broker never answers it.
                    continue;
                }
            }
            if server_wr.write_all(&buf).await.is_err() {
                break;
            }
        }
        let _ = server_wr.shutdown().await;
    };
    let responses = async move {
        loop {
            let mut size = [0u8; 4];
            if server_rd.read_exact(&mut size).await.is_err() {
                break;
            }
            let len = i32::from_be_bytes(size);
            if !(0..=MAX_FRAME).contains(&len) {
                // Not Kafka framing: pass the rest through as it comes.
                let _ = to_client.send(size.to_vec());
                let mut piece = vec![0u8; 64 * 1024];
                while let Ok(n) = server_rd.read(&mut piece).await {
                    if n == 0 || to_client.send(piece[..n].to_vec()).is_err() {
                        break;
                    }
                }
                break;
            }
            let mut buf = vec![0u8; 4 + usize::try_from(len).unwrap_or(0)];
            buf[..4].copy_from_slice(&size);
            if server_rd.read_exact(&mut buf[4..]).await.is_err() {
                break;
            }
            if to_client.send(buf).is_err() {
                break;
            }
        }
        // The broker hung up: so does the proxy, once what came before is written.
        let _ = to_client.send(Vec::new());
    };
    let writer = async move {
        while let Some(bytes) = for_client.recv().await {
            if bytes.is_empty() || client_wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = client_wr.shutdown().await;
    };
    tokio::join!(requests, responses, writer);
}

impl RecordingProxy {
    /// Starts the proxy on a free port of 127.0.0.1, forwarding to `upstream`.
    pub fn start(upstream: SocketAddr) -> Result<RecordingProxy> {
        Self::start_on(0, upstream)
    }

    /// Starts the proxy on 127.0.0.1:`port` (0 = any free port), forwarding to `upstream`.
    /// The upstream is connected lazily, once per client connection.
    pub fn start_on(port: u16, upstream: SocketAddr) -> Result<RecordingProxy> {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .with_context(|| format!("proxy: binding 127.0.0.1:{port}"))?;
        listener
            .set_nonblocking(true)
            .context("proxy: set_nonblocking")?;
        let port = listener.local_addr().context("proxy: local_addr")?.port();
        let records = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicU64::new(0));
        let (shutdown_tx, mut shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("proxy: building tokio runtime")?;
        let swallowed = Arc::new(Mutex::new(BTreeSet::new()));
        let forgeries = Forgeries::default();
        let (rec, conns, swal, forg) = (
            records.clone(),
            connections.clone(),
            swallowed.clone(),
            forgeries.clone(),
        );
        let thread = std::thread::Builder::new()
            .name(format!("recording-proxy-{port}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("recording proxy: {e}");
                            return;
                        }
                    };
                    loop {
                        tokio::select! {
                            _ = &mut shutdown_rx => break,
                            accepted = listener.accept() => {
                                if let Ok((stream, _)) = accepted {
                                    let n = conns.fetch_add(1, Ordering::SeqCst);
                                    tokio::spawn(proxy_connection(n, stream, upstream, rec.clone(), swal.clone(), forg.clone()));
                                }
                            }
                        }
                    }
                });
                // Dropping the runtime here cancels the connection tasks and closes sockets.
            })
            .context("proxy: spawning thread")?;
        Ok(RecordingProxy {
            port,
            upstream,
            records,
            connections,
            swallowed,
            forgeries,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `127.0.0.1:PORT`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// `(api_key, api_version)` of every request so far, in arrival order.
    pub fn requests(&self) -> Vec<(i16, i16)> {
        lock_records(&self.records)
            .iter()
            .map(|r| (r.api_key, r.api_version))
            .collect()
    }

    /// Every request so far with connection, correlation id and client id.
    pub fn records(&self) -> Vec<RecordedRequest> {
        lock_records(&self.records).clone()
    }

    /// The set of API keys seen so far.
    pub fn api_keys(&self) -> BTreeSet<i16> {
        lock_records(&self.records)
            .iter()
            .map(|r| r.api_key)
            .collect()
    }

    /// The set of API names seen so far (see [`api_name`]).
    pub fn api_names(&self) -> BTreeSet<&'static str> {
        self.api_keys().into_iter().map(api_name).collect()
    }

    /// Number of requests with this API key.
    pub fn count(&self, api_key: i16) -> usize {
        lock_records(&self.records)
            .iter()
            .filter(|r| r.api_key == api_key)
            .count()
    }

    /// Number of client connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// From now on, requests with this API key are recorded but not
    /// forwarded, so the client's request times out: a broker that never
    /// answers one API.
    pub fn swallow(&self, api_key: i16) {
        self.swallowed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(api_key);
    }

    /// Forwards requests with this API key again (requests already swallowed stay unanswered).
    pub fn unswallow(&self, api_key: i16) {
        self.swallowed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&api_key);
    }

    /// Forgets the requests recorded so far.
    pub fn clear(&self) {
        lock_records(&self.records).clear();
    }

    /// From now on, a request that `matches` is answered with `answer(request)` (the bytes after
    /// the correlation id; see [`ForgeAnswer`] and the builders in [`forge`]) and never
    /// forwarded: a hostile broker. Forgeries are tried in the order they were added; `name`
    /// is for [`RecordingProxy::forged`].
    pub fn forge(
        &self,
        name: &str,
        matches: impl Fn(&forge::KafkaRequest<'_>) -> bool + Send + Sync + 'static,
        answer: impl Fn(&forge::KafkaRequest<'_>) -> Vec<u8> + Send + Sync + 'static,
    ) {
        self.forgeries.lock().push(Arc::new(Forgery {
            name: name.to_string(),
            matches: Arc::new(matches),
            answer: Arc::new(answer),
            used: AtomicU64::new(0),
        }));
    }

    /// How many requests the forgery `name` answered so far.
    pub fn forged(&self, name: &str) -> u64 {
        self.forgeries
            .lock()
            .iter()
            .filter(|g| g.name == name)
            .map(|g| g.used.load(Ordering::SeqCst))
            .sum()
    }

    /// Drops every forgery: requests reach the broker again.
    pub fn clear_forgeries(&self) {
        self.forgeries.lock().clear();
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Tansu with a [`RecordingProxy`] in front: tansu advertises the proxy's port, so every client
/// connection, not only the bootstrap one, is recorded.
#[derive(Debug)]
pub struct ProxiedTansu {
    pub proxy: RecordingProxy,
    pub tansu: Tansu,
}

impl ProxiedTansu {
    pub fn start() -> Result<ProxiedTansu> {
        let listen = free_port();
        let proxy = RecordingProxy::start(SocketAddr::from(([127, 0, 0, 1], listen)))?;
        let tansu = Tansu::start(TansuOpts {
            advertised_port: Some(proxy.port()),
            listen_port: Some(listen),
        })?;
        Ok(ProxiedTansu { proxy, tansu })
    }

    /// The proxy's address.
    pub fn bootstrap(&self) -> String {
        self.proxy.bootstrap()
    }
}

/// The Kafka API name of a key: the one table lives in krawl-kafka.
pub use krawl_kafka::api_keys::api_name;

// ------------------------------------------------------------------------------------------------
// Broker kinds and the seeded data set
// ------------------------------------------------------------------------------------------------

/// Which broker a test runs against, with what each one is known to report (checked by the
/// smoke tests in `tests/harness.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BrokerKind {
    Noida,
    Tansu,
}

impl BrokerKind {
    /// Broker (node) id in Metadata: noida 1, tansu 111.
    pub fn broker_id(self) -> i32 {
        match self {
            BrokerKind::Noida => 1,
            BrokerKind::Tansu => 111,
        }
    }

    /// Internal topics listed by Metadata (name, partitions), flagged `is_internal`; noida lists
    /// `__consumer_offsets` and `__transaction_state` with 50 partitions each; tansu none.
    pub fn internal_topics(self) -> BTreeMap<String, i32> {
        match self {
            BrokerKind::Noida => [("__consumer_offsets", 50), ("__transaction_state", 50)]
                .into_iter()
                .map(|(n, p)| (n.to_string(), p))
                .collect(),
            BrokerKind::Tansu => BTreeMap::new(),
        }
    }

    /// DescribeConfigs on a topic returns every topic config (noida: 34 of them, defaults with
    /// source DEFAULT_CONFIG) rather than only the explicitly set keys (tansu).
    pub fn describes_all_topic_configs(self) -> bool {
        matches!(self, BrokerKind::Noida)
    }

    /// Number of entries DescribeConfigs returns for a topic with `overrides` set keys.
    pub fn topic_config_count(self, overrides: usize) -> usize {
        match self {
            BrokerKind::Noida => NOIDA_TOPIC_CONFIG_COUNT,
            BrokerKind::Tansu => overrides,
        }
    }

    /// DescribeConfigs source reported for a key set at topic creation: noida
    /// DYNAMIC_TOPIC_CONFIG (1, is_default=false); tansu DEFAULT_CONFIG (5, is_default=true).
    pub fn override_source(self) -> rdkafka::admin::ConfigSource {
        match self {
            BrokerKind::Noida => rdkafka::admin::ConfigSource::DynamicTopic,
            BrokerKind::Tansu => rdkafka::admin::ConfigSource::Default,
        }
    }

    /// Broker configs via DescribeConfigs(BROKER): noida 3 (auto.create.topics.enable=true,
    /// default.replication.factor=1, num.partitions=1, all DEFAULT_CONFIG); tansu none.
    pub fn broker_configs(self) -> BTreeMap<String, String> {
        match self {
            BrokerKind::Noida => [
                ("auto.create.topics.enable", "true"),
                ("default.replication.factor", "1"),
                ("num.partitions", "1"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            BrokerKind::Tansu => BTreeMap::new(),
        }
    }

    /// Group state of a group that only has committed offsets and no member, as seen by
    /// librdkafka's list-groups (ListGroups + DescribeGroups): "Empty" on both brokers.
    /// (KIP-518 ListGroups state filter answers: noida "Empty", tansu "Unknown".)
    pub fn idle_group_state(self) -> &'static str {
        "Empty"
    }

    /// DescribeGroups reports members (member id, client id, host `/127.0.0.1`, assignment):
    /// noida yes. Tansu: classic DescribeGroups (v0–v4) lists each member with its member id
    /// only (client id, host, metadata and assignment empty; protocol empty), state Stable.
    /// librdkafka's DescribeConsumerGroups admin API first sends ConsumerGroupDescribe (API 69),
    /// which tansu advertises: from it tansu yields state Stable, no members, and the member id
    /// in the partition assignor field.
    pub fn reports_group_members(self) -> bool {
        matches!(self, BrokerKind::Noida)
    }

    /// ListGroups also returns groups that have members but no committed offsets: noida yes;
    /// tansu lists only groups with committed offsets (its ListGroups state is "Unknown"), so
    /// librdkafka's group listing does not show a group with only live members there.
    pub fn lists_groups_without_offsets(self) -> bool {
        matches!(self, BrokerKind::Noida)
    }

    /// ListOffsets with the max-timestamp spec (-3) works (noida) or drops the connection (tansu).
    pub fn supports_max_timestamp(self) -> bool {
        matches!(self, BrokerKind::Noida)
    }
}

/// Number of topic configs noida 0.2.3 reports for every topic.
pub const NOIDA_TOPIC_CONFIG_COUNT: usize = 34;

pub const TOPIC_ORDERS: &str = "orders";
pub const TOPIC_PAYMENTS: &str = "payments";
pub const TOPIC_EMPTY: &str = "empty-topic";
pub const TOPIC_AUDIT_LOG: &str = "audit-log";
pub const GROUP_BILLING: &str = "billing";
pub const GROUP_AUDIT: &str = "audit";

/// One seeded topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededTopic {
    pub name: String,
    pub partitions: i32,
    /// Messages produced per partition (index = partition); offsets run 0..count, so the
    /// earliest offset is 0 and the latest (high watermark) is the count.
    pub messages: Vec<i64>,
    /// Topic configs set at creation (both brokers accept and report these values).
    pub config_overrides: BTreeMap<String, String>,
    /// Record timestamps (CreateTime, ms) per partition, in offset order; strictly increasing.
    pub timestamps: Vec<Vec<i64>>,
}

impl SeededTopic {
    pub fn total_messages(&self) -> i64 {
        self.messages.iter().sum()
    }

    /// Latest offset (high watermark) of `partition`.
    pub fn latest_offset(&self, partition: i32) -> Option<i64> {
        usize::try_from(partition)
            .ok()
            .and_then(|p| self.messages.get(p).copied())
    }

    /// Largest record timestamp of `partition` and its offset (the answer to a max-timestamp
    /// ListOffsets), `None` for an empty partition.
    pub fn max_timestamp(&self, partition: i32) -> Option<(i64, i64)> {
        let ts = self.timestamps.get(usize::try_from(partition).ok()?)?;
        let last = *ts.last()?;
        Some((i64::try_from(ts.len()).ok()? - 1, last))
    }
}

/// One seeded consumer group (committed offsets only, no member).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededGroup {
    pub name: String,
    /// Committed offsets per (topic, partition).
    pub committed: BTreeMap<(String, i32), i64>,
}

/// The known data set created by [`seed_dataset`], with the exact values tests assert on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededDataset {
    pub broker: BrokerKind,
    pub bootstrap: String,
    pub topics: BTreeMap<String, SeededTopic>,
    pub groups: BTreeMap<String, SeededGroup>,
}

impl SeededDataset {
    /// The data set's definition, without timestamps (filled in by seeding).
    pub fn definition(broker: BrokerKind, bootstrap: &str) -> SeededDataset {
        fn topic(name: &str, messages: &[i64], overrides: &[(&str, &str)]) -> SeededTopic {
            SeededTopic {
                name: name.to_string(),
                partitions: i32::try_from(messages.len()).unwrap_or(i32::MAX),
                messages: messages.to_vec(),
                config_overrides: overrides
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                timestamps: messages.iter().map(|_| Vec::new()).collect(),
            }
        }
        fn group(name: &str, committed: &[(&str, i32, i64)]) -> SeededGroup {
            SeededGroup {
                name: name.to_string(),
                committed: committed
                    .iter()
                    .map(|(t, p, o)| ((t.to_string(), *p), *o))
                    .collect(),
            }
        }
        let topics = [
            topic(
                TOPIC_ORDERS,
                &[5, 3, 0],
                &[
                    ("retention.ms", "86400000"),
                    ("cleanup.policy", "compact"),
                    ("max.message.bytes", "2097152"),
                ],
            ),
            topic(TOPIC_PAYMENTS, &[10], &[("retention.ms", "3600000")]),
            topic(TOPIC_EMPTY, &[0, 0], &[]),
            topic(TOPIC_AUDIT_LOG, &[4], &[]),
        ];
        let groups = [
            group(
                GROUP_BILLING,
                &[
                    (TOPIC_ORDERS, 0, 2),
                    (TOPIC_ORDERS, 1, 3),
                    (TOPIC_PAYMENTS, 0, 7),
                ],
            ),
            group(GROUP_AUDIT, &[(TOPIC_AUDIT_LOG, 0, 1)]),
        ];
        SeededDataset {
            broker,
            bootstrap: bootstrap.to_string(),
            topics: topics.into_iter().map(|t| (t.name.clone(), t)).collect(),
            groups: groups.into_iter().map(|g| (g.name.clone(), g)).collect(),
        }
    }

    pub fn topic(&self, name: &str) -> Option<&SeededTopic> {
        self.topics.get(name)
    }

    pub fn group(&self, name: &str) -> Option<&SeededGroup> {
        self.groups.get(name)
    }

    /// Seeded (non-internal) topic names.
    pub fn topic_names(&self) -> BTreeSet<String> {
        self.topics.keys().cloned().collect()
    }

    /// Latest offset (high watermark) of a partition.
    pub fn latest_offset(&self, topic: &str, partition: i32) -> Option<i64> {
        self.topic(topic)?.latest_offset(partition)
    }

    /// Committed offset of `group` on a partition.
    pub fn committed(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        self.group(group)?
            .committed
            .get(&(topic.to_string(), partition))
            .copied()
    }

    /// Lag = latest − committed, for partitions the group committed on.
    pub fn lag(&self, group: &str, topic: &str, partition: i32) -> Option<i64> {
        Some(self.latest_offset(topic, partition)? - self.committed(group, topic, partition)?)
    }

    /// Lag per committed partition of `group`.
    pub fn lags(&self, group: &str) -> BTreeMap<(String, i32), i64> {
        let Some(g) = self.group(group) else {
            return BTreeMap::new();
        };
        g.committed
            .keys()
            .filter_map(|(t, p)| Some(((t.clone(), *p), self.lag(group, t, *p)?)))
            .collect()
    }

    /// Sum of the group's lags.
    pub fn total_lag(&self, group: &str) -> i64 {
        self.lags(group).values().sum()
    }

    /// Topics `group` committed on.
    pub fn group_topics(&self, group: &str) -> BTreeSet<String> {
        self.group(group)
            .map(|g| g.committed.keys().map(|(t, _)| t.clone()).collect())
            .unwrap_or_default()
    }
}

fn client_config(bootstrap: &str, props: &[(String, String)]) -> ClientConfig {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for (k, v) in props {
        cfg.set(k, v);
    }
    cfg
}

/// A plain consumer for checks in tests (no group subscription; group id `krawl-tests-probe`).
pub fn probe_consumer(bootstrap: &str, props: &[(String, String)]) -> Result<BaseConsumer> {
    let mut cfg = client_config(bootstrap, props);
    cfg.set("group.id", "krawl-tests-probe")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000");
    cfg.create().context("creating probe consumer")
}

/// Creates the known data set (see [`SeededDataset::definition`]) on a fresh broker and returns
/// the exact values to assert against.
pub fn seed_dataset(bootstrap: &str, broker: BrokerKind) -> Result<SeededDataset> {
    seed_dataset_with(bootstrap, broker, &[])
}

/// [`seed_dataset`] with extra client properties (e.g. TLS settings from
/// [`TlsTansu::client_props`]).
///
/// Runs on its own thread with its own runtime, so it can be called from sync and async tests.
pub fn seed_dataset_with(
    bootstrap: &str,
    broker: BrokerKind,
    props: &[(String, String)],
) -> Result<SeededDataset> {
    let bootstrap = bootstrap.to_string();
    let props = props.to_vec();
    std::thread::Builder::new()
        .name("seed-dataset".to_string())
        .spawn(move || seed_blocking(&bootstrap, broker, &props))
        .context("spawning seeding thread")?
        .join()
        .map_err(|_| anyhow!("seeding thread panicked"))?
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn seed_blocking(
    bootstrap: &str,
    broker: BrokerKind,
    props: &[(String, String)],
) -> Result<SeededDataset> {
    let mut ds = SeededDataset::definition(broker, bootstrap);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building seeding runtime")?;
    runtime.block_on(create_and_produce(bootstrap, props, &mut ds))?;
    wait_for_watermarks(bootstrap, props, &ds)?;
    commit_group_offsets(bootstrap, props, &ds)?;
    Ok(ds)
}

/// Creates `count` empty topics `PREFIX-NNNNN` with `partitions` partitions each (no messages),
/// in one CreateTopics request; runs on its own thread and runtime (callable from any test).
pub fn create_topics(bootstrap: &str, prefix: &str, count: usize, partitions: i32) -> Result<()> {
    let bootstrap = bootstrap.to_string();
    let prefix = prefix.to_string();
    std::thread::spawn(move || -> Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building runtime")?;
        runtime.block_on(async {
            let admin: AdminClient<DefaultClientContext> = client_config(&bootstrap, &[])
                .create()
                .context("creating admin client")?;
            let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i:05}")).collect();
            let new_topics: Vec<NewTopic<'_>> = names
                .iter()
                .map(|n| NewTopic::new(n, partitions, TopicReplication::Fixed(1)))
                .collect();
            let opts = AdminOptions::new()
                .operation_timeout(Some(CLIENT_TIMEOUT))
                .request_timeout(Some(CLIENT_TIMEOUT));
            for r in admin
                .create_topics(&new_topics, &opts)
                .await
                .with_context(|| format!("CreateTopics on {bootstrap}"))?
            {
                if let Err((topic, code)) = r {
                    bail!("creating topic {topic} on {bootstrap}: {code:?}");
                }
            }
            Ok(())
        })
    })
    .join()
    .map_err(|_| anyhow::anyhow!("topic creation thread panicked"))?
}

async fn create_and_produce(
    bootstrap: &str,
    props: &[(String, String)],
    ds: &mut SeededDataset,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap, props)
        .create()
        .context("creating admin client")?;
    let new_topics: Vec<NewTopic<'_>> = ds
        .topics
        .values()
        .map(|t| {
            t.config_overrides.iter().fold(
                NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(1)),
                |nt, (k, v)| nt.set(k, v),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(CLIENT_TIMEOUT))
        .request_timeout(Some(CLIENT_TIMEOUT));
    let results = admin
        .create_topics(&new_topics, &opts)
        .await
        .with_context(|| format!("CreateTopics on {bootstrap}"))?;
    for r in results {
        if let Err((topic, code)) = r {
            bail!("creating topic {topic} on {bootstrap}: {code:?}");
        }
    }
    drop(new_topics);
    drop(admin);

    // Wait until metadata shows every topic with its partitions (leaders assigned).
    let probe = probe_consumer(bootstrap, props)?;
    let deadline = Instant::now() + CLIENT_TIMEOUT;
    loop {
        let md = probe
            .fetch_metadata(None, CLIENT_TIMEOUT)
            .with_context(|| format!("Metadata from {bootstrap}"))?;
        let ready = ds.topics.values().all(|t| {
            md.topics().iter().any(|mt| {
                mt.name() == t.name
                    && mt.error().is_none()
                    && i32::try_from(mt.partitions().len()).ok() == Some(t.partitions)
                    && mt.partitions().iter().all(|p| p.leader() >= 0)
            })
        });
        if ready {
            break;
        }
        if Instant::now() >= deadline {
            bail!("created topics did not all appear in metadata of {bootstrap}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(probe);

    // batch.num.messages=1 / linger.ms=0: tansu reports a wrong latest offset otherwise.
    let mut pcfg = client_config(bootstrap, props);
    pcfg.set("batch.num.messages", "1")
        .set("linger.ms", "0")
        .set("message.timeout.ms", "20000")
        .set("client.id", "krawl-seed-producer");
    let producer: FutureProducer = pcfg.create().context("creating producer")?;
    // Timestamps: recent (within retention.ms of every topic), strictly increasing per partition.
    let base_ts = now_ms() - 120_000;
    for t in ds.topics.values_mut() {
        for (p, &count) in t.messages.iter().enumerate() {
            let partition = i32::try_from(p).context("partition index")?;
            let mut stamps = Vec::new();
            for i in 0..count {
                let ts = base_ts + i64::from(partition) * 10 + i * 1000;
                let key = format!("{}-{partition}-{i}", t.name);
                let payload = format!(
                    "{{\"topic\":\"{}\",\"partition\":{partition},\"seq\":{i}}}",
                    t.name
                );
                let record = FutureRecord::to(&t.name)
                    .partition(partition)
                    .key(&key)
                    .payload(&payload)
                    .timestamp(ts);
                let delivery = producer
                    .send(record, CLIENT_TIMEOUT)
                    .await
                    .map_err(|(e, _)| anyhow!("producing to {}/{partition}: {e}", t.name))?;
                if delivery.partition != partition || delivery.offset != i {
                    bail!(
                        "{}/{partition}: message {i} delivered to partition {} offset {}",
                        t.name,
                        delivery.partition,
                        delivery.offset
                    );
                }
                stamps.push(ts);
            }
            t.timestamps[p] = stamps;
        }
    }
    Ok(())
}

/// Checks that every partition's watermarks are (0, count) before returning the data set.
fn wait_for_watermarks(
    bootstrap: &str,
    props: &[(String, String)],
    ds: &SeededDataset,
) -> Result<()> {
    let probe = probe_consumer(bootstrap, props)?;
    for t in ds.topics.values() {
        for (p, &count) in t.messages.iter().enumerate() {
            let partition = i32::try_from(p).context("partition index")?;
            let deadline = Instant::now() + CLIENT_TIMEOUT;
            loop {
                let wm = probe
                    .fetch_watermarks(&t.name, partition, CLIENT_TIMEOUT)
                    .with_context(|| format!("watermarks of {}/{partition}", t.name))?;
                if wm == (0, count) {
                    break;
                }
                if Instant::now() >= deadline {
                    bail!(
                        "{}/{partition}: watermarks {wm:?}, expected (0, {count})",
                        t.name
                    );
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
    Ok(())
}

fn commit_group_offsets(
    bootstrap: &str,
    props: &[(String, String)],
    ds: &SeededDataset,
) -> Result<()> {
    for g in ds.groups.values() {
        let mut cfg = client_config(bootstrap, props);
        cfg.set("group.id", &g.name)
            .set("client.id", format!("krawl-seed-{}", g.name))
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000");
        let consumer: BaseConsumer = cfg
            .create()
            .with_context(|| format!("creating consumer for group {}", g.name))?;
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in &g.committed {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .with_context(|| format!("offset list for {}", g.name))?;
        }
        consumer
            .assign(&tpl)
            .with_context(|| format!("assigning for group {}", g.name))?;
        consumer
            .commit(&tpl, CommitMode::Sync)
            .with_context(|| format!("committing offsets of group {}", g.name))?;
        let committed = consumer
            .committed_offsets(tpl.clone(), CLIENT_TIMEOUT)
            .with_context(|| format!("reading back offsets of group {}", g.name))?;
        for e in committed.elements() {
            let want = g.committed.get(&(e.topic().to_string(), e.partition()));
            if want.map(|&o| Offset::Offset(o)) != Some(e.offset()) {
                bail!(
                    "group {}: {}/{} committed {:?}, expected {want:?}",
                    g.name,
                    e.topic(),
                    e.partition(),
                    e.offset()
                );
            }
        }
        let _ = consumer.unassign();
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// Raw DescribeGroups (plaintext)
// ------------------------------------------------------------------------------------------------

/// A group as answered by DescribeGroups v0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawGroupDescription {
    pub error_code: i16,
    pub group_id: String,
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<RawGroupMember>,
}

/// A member in [`RawGroupDescription`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawGroupMember {
    pub member_id: String,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Vec<u8>,
    pub assignment: Vec<u8>,
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).context("length overflow")?;
        let out = self
            .buf
            .get(self.pos..end)
            .context("DescribeGroups response truncated")?;
        self.pos = end;
        Ok(out)
    }
    fn i16(&mut self) -> Result<i16> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Result<i32> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn string(&mut self) -> Result<String> {
        let len = self.i16()?;
        let Ok(len) = usize::try_from(len) else {
            return Ok(String::new()); // null
        };
        Ok(String::from_utf8_lossy(self.take(len)?).into_owned())
    }
    fn bytes(&mut self) -> Result<Vec<u8>> {
        let len = self.i32()?;
        let Ok(len) = usize::try_from(len) else {
            return Ok(Vec::new()); // null
        };
        Ok(self.take(len)?.to_vec())
    }
}

/// Sends DescribeGroups v0 for `group` straight to `addr` (plaintext, the group's coordinator;
/// with one broker that is the broker), independent of librdkafka's ListGroups-first logic.
pub fn describe_group_plain(addr: SocketAddr, group: &str) -> Result<RawGroupDescription> {
    use std::io::Write;
    let client_id = b"krawl-tests";
    let group_len = i16::try_from(group.len()).context("group name too long")?;
    let mut body = Vec::new();
    body.extend_from_slice(&15i16.to_be_bytes()); // DescribeGroups
    body.extend_from_slice(&0i16.to_be_bytes()); // v0
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    body.extend_from_slice(&1i32.to_be_bytes()); // one group
    body.extend_from_slice(&group_len.to_be_bytes());
    body.extend_from_slice(group.as_bytes());
    let mut frame = i32::try_from(body.len())
        .context("request too large")?
        .to_be_bytes()
        .to_vec();
    frame.extend_from_slice(&body);

    let mut stream = TcpStream::connect_timeout(&addr, CLIENT_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.write_all(&frame).context("sending DescribeGroups")?;
    let mut size = [0u8; 4];
    stream
        .read_exact(&mut size)
        .context("reading DescribeGroups response size")?;
    let len = usize::try_from(i32::from_be_bytes(size)).context("negative response size")?;
    let mut resp = vec![0u8; len];
    stream
        .read_exact(&mut resp)
        .context("reading DescribeGroups response")?;

    let mut r = Reader { buf: &resp, pos: 0 };
    let _correlation = r.i32()?;
    let count = r.i32()?;
    if count < 1 {
        bail!("DescribeGroups returned {count} groups");
    }
    let error_code = r.i16()?;
    let group_id = r.string()?;
    let state = r.string()?;
    let protocol_type = r.string()?;
    let protocol = r.string()?;
    let n = r.i32()?;
    let mut members = Vec::new();
    for _ in 0..n.max(0) {
        members.push(RawGroupMember {
            member_id: r.string()?,
            client_id: r.string()?,
            client_host: r.string()?,
            metadata: r.bytes()?,
            assignment: r.bytes()?,
        });
    }
    Ok(RawGroupDescription {
        error_code,
        group_id,
        state,
        protocol_type,
        protocol,
        members,
    })
}

// ------------------------------------------------------------------------------------------------
// Live group member
// ------------------------------------------------------------------------------------------------

/// A consumer that subscribed to `topics` in `group` and keeps polling on a background thread,
/// so the group has a live member. It never commits. Leaves the group on drop.
#[derive(Debug)]
pub struct LiveMember {
    group: String,
    client_id: String,
    assignment: Vec<(String, i32)>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LiveMember {
    /// Joins with client id `krawl-live-<group>`; returns once the member has an assignment and
    /// the group reports state `Stable`.
    pub fn join(bootstrap: &str, group: &str, topics: &[&str]) -> Result<LiveMember> {
        Self::join_with(bootstrap, group, topics, &[])
    }

    /// [`LiveMember::join`] with extra client properties (TLS, or `client.id` to override).
    pub fn join_with(
        bootstrap: &str,
        group: &str,
        topics: &[&str],
        props: &[(String, String)],
    ) -> Result<LiveMember> {
        let mut cfg = client_config(bootstrap, &[]);
        let client_id = props
            .iter()
            .find(|(k, _)| k == "client.id")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| format!("krawl-live-{group}"));
        cfg.set("group.id", group)
            .set("client.id", &client_id)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000");
        for (k, v) in props {
            cfg.set(k, v);
        }
        let topics: Vec<String> = topics.iter().map(|t| t.to_string()).collect();
        let group_name = group.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Result<Vec<(String, i32)>>>();
        let stop_flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("live-member-{group}"))
            .spawn(move || live_member_loop(cfg, &group_name, &topics, &stop_flag, &tx))
            .context("spawning live member thread")?;
        let mut member = LiveMember {
            group: group.to_string(),
            client_id,
            assignment: Vec::new(),
            stop,
            thread: Some(thread),
        };
        match rx.recv_timeout(START_TIMEOUT + Duration::from_secs(10)) {
            Ok(Ok(assignment)) => {
                member.assignment = assignment;
                Ok(member)
            }
            Ok(Err(e)) => Err(e),
            Err(_) => bail!("live member of group {group} did not become Stable in time"),
        }
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Partitions assigned to this member, sorted.
    pub fn assignment(&self) -> &[(String, i32)] {
        &self.assignment
    }
}

fn live_member_loop(
    cfg: ClientConfig,
    group: &str,
    topics: &[String],
    stop: &AtomicBool,
    tx: &mpsc::Sender<Result<Vec<(String, i32)>>>,
) {
    let consumer: BaseConsumer = match cfg.create() {
        Ok(c) => c,
        Err(e) => {
            let _ = tx.send(Err(anyhow!("creating live member for {group}: {e}")));
            return;
        }
    };
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    if let Err(e) = consumer.subscribe(&topic_refs) {
        let _ = tx.send(Err(anyhow!("subscribing live member of {group}: {e}")));
        return;
    }
    let deadline = Instant::now() + START_TIMEOUT;
    let mut reported = false;
    let mut last_state: String;
    while !stop.load(Ordering::SeqCst) {
        // Messages are ignored: the member only needs to stay in the group.
        let _ = consumer.poll(Duration::from_millis(100));
        if reported {
            continue;
        }
        let assignment: Vec<(String, i32)> = consumer
            .assignment()
            .map(|tpl| {
                let mut v: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_string(), e.partition()))
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default();
        if assignment.is_empty() {
            last_state = "no assignment yet".to_string();
        } else {
            // librdkafka lists groups via ListGroups then DescribeGroups. Tansu's ListGroups only
            // returns groups with committed offsets, so a group it does not list is taken as
            // ready once the assignment (SyncGroup) arrived.
            match consumer.fetch_group_list(Some(group), Duration::from_secs(2)) {
                Ok(list) => match list.groups().iter().find(|g| g.name() == group) {
                    Some(info) if info.state() != "Stable" => {
                        last_state = format!("group state {}", info.state());
                    }
                    _ => {
                        reported = true;
                        let _ = tx.send(Ok(assignment));
                        continue;
                    }
                },
                Err(e) => last_state = format!("listing groups failed: {e}"),
            }
        }
        if Instant::now() >= deadline {
            let _ = tx.send(Err(anyhow!(
                "live member of {group}: no assignment or group not Stable after {:?} \
                 ({last_state})",
                START_TIMEOUT
            )));
            return;
        }
    }
    consumer.unsubscribe();
    // Dropping the consumer closes it (LeaveGroup).
}

impl Drop for LiveMember {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_request_header() {
        let mut frame = vec![0, 3, 0, 12, 0, 0, 0, 7, 0, 5];
        frame.extend_from_slice(b"krawl");
        frame.extend_from_slice(&[0, 0]);
        let rec = decode_request_header(2, &frame).expect("header");
        assert_eq!(rec.api_key, 3);
        assert_eq!(rec.api_version, 12);
        assert_eq!(rec.correlation_id, 7);
        assert_eq!(rec.client_id.as_deref(), Some("krawl"));
        assert_eq!(rec.connection, 2);
        assert!(decode_request_header(0, &[0, 1, 2]).is_none());
    }

    #[test]
    fn dataset_lags() {
        let ds = SeededDataset::definition(BrokerKind::Noida, "x");
        assert_eq!(ds.lag(GROUP_BILLING, TOPIC_ORDERS, 0), Some(3));
        assert_eq!(ds.lag(GROUP_BILLING, TOPIC_ORDERS, 1), Some(0));
        assert_eq!(ds.lag(GROUP_BILLING, TOPIC_ORDERS, 2), None);
        assert_eq!(ds.lag(GROUP_BILLING, TOPIC_PAYMENTS, 0), Some(3));
        assert_eq!(ds.total_lag(GROUP_BILLING), 6);
        assert_eq!(ds.total_lag(GROUP_AUDIT), 3);
    }
}

// ------------------------------------------------------------------------------------------------
// krawl extract with a secret from a store
// ------------------------------------------------------------------------------------------------

/// One run of the `krawl` binary.
#[derive(Debug)]
pub struct KrawlRun {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `krawl extract` at trace log level against `broker` over SASL_PLAINTEXT/PLAIN (noida
/// accepts any password), the password being `password_ref`, with `secrets_toml` (a `[secrets…]`
/// section) in the config file. Used by the secret-store tests to prove a full extraction resolves
/// its credential from each store, and that the value is printed nowhere.
pub fn extract_with_sasl_password(
    broker: &Noida,
    password_ref: &str,
    secrets_toml: &str,
    env: &[(&str, &str)],
) -> Result<KrawlRun> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let cfg = dir.path().join("krawl.toml");
    std::fs::write(
        &cfg,
        format!(
            "[kafka]\nbootstrap_servers = [\"{}\"]\nsecurity_protocol = \"SASL_PLAINTEXT\"\ntimeout_secs = 10\n\
             [kafka.sasl]\nmechanism = \"PLAIN\"\nusername = \"krawl\"\npassword = \"{password_ref}\"\n\n{secrets_toml}\n",
            broker.bootstrap()
        ),
    )
    .context("writing config")?;
    let mut cmd = std::process::Command::new(krawl_bin()?);
    cmd.args(["extract", "--log-level", "trace", "--config"])
        .arg(&cfg)
        .env_remove("RUST_LOG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().context("running krawl")?;
    Ok(KrawlRun {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}
