//! GCP Secret Manager (`gcp-sm://`).
//!
//! Reads one secret version through the Secret Manager REST/JSON API
//! (`projects/P/secrets/S/versions/V:access`, crate
//! `google-cloud-secretmanager-v1`), and returns its payload as UTF-8 text
//! (a payload that is not UTF-8 is an error, not a lossy string). The
//! resolver then applies `#key` when the payload is a JSON object.
//!
//! Reference syntax:
//! `gcp-sm://projects/<project>/secrets/<secret>[/versions/<version>][#key]`,
//! e.g. `gcp-sm://projects/acme-prod/secrets/kafka/versions/3#password`.
//! Without `/versions/...` the version is `latest`. `<project>` is the
//! project id or number. Only project-level (global) secrets are supported,
//! not regional ones (`projects/P/locations/L/secrets/S`).
//!
//! Authentication (`[secrets.gcp]`, all keys optional):
//! - default: Application Default Credentials, in this order:
//!   `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key file, or any
//!   other credential file gcloud writes), the gcloud user credentials of
//!   `gcloud auth application-default login`, then the metadata server
//!   (GCE, Cloud Run, and GKE with Workload Identity: bind the pod's
//!   Kubernetes service account to a Google service account that has
//!   `roles/secretmanager.secretAccessor`).
//! - `credentials_file = "/path/key.json"`: that credential file instead of
//!   ADC (`service_account`, `authorized_user` or `external_account`, i.e.
//!   Workload Identity Federation).
//! - `anonymous = true`: send no credentials at all. Only for a local
//!   Secret Manager emulator in tests; Google's API refuses such calls.
//!
//! The client (and with it the credentials) is built on the first fetch, not
//! in [`GcpProvider::new`]: the resolver always builds this provider, and a
//! machine without any GCP configuration must still start. Credential
//! problems surface as [`SecretError::AuthFailed`] on first use, with a hint
//! about ADC and Workload Identity.
//!
//! Every call has a timeout (`timeout_secs`, default 10 s) and is retried
//! (`retries`, default 2, exponential backoff from 200 ms) only on transient
//! failures: connection errors, timeouts, `UNAVAILABLE`, `INTERNAL`,
//! `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED` and HTTP 5xx/429. The SDK's own
//! retry loop is disabled so that the two do not multiply.
//!
//! Error mapping: `NOT_FOUND` → [`SecretError::NotFound`];
//! `PERMISSION_DENIED` → [`SecretError::PermissionDenied`] (grant
//! `roles/secretmanager.secretAccessor`); `UNAUTHENTICATED` and credential
//! errors → [`SecretError::AuthFailed`]; connection errors and timeouts →
//! [`SecretError::Unreachable`] naming the endpoint; `FAILED_PRECONDITION`
//! (a disabled or destroyed version) and everything else →
//! [`SecretError::Backend`].
//!
//! Secret hygiene: the payload is moved (not copied where the SDK allows it)
//! into the [`SecretString`], and the SDK's buffer is zeroized when it is not
//! shared. Buffers inside the HTTP stack and the SDK's JSON decoder are
//! outside our reach. The response is never `Debug`-printed (the SDK's
//! `Debug` would print the payload), and error messages from a response that
//! cannot be decoded are not passed on. Do not set
//! `GOOGLE_CLOUD_RUST_LOGGING=true` in production: it turns on the SDK's own
//! request tracing.
//!
//! Tested (`tests/gcp.rs`) against the Secret Manager emulator `drongo`
//! 0.8.0 (PyPI, REST v1, no authentication): latest and pinned versions,
//! JSON secrets with `#key`, missing secret / version / key, disabled and
//! destroyed versions, non-UTF-8 payloads, anonymous, service-account-key
//! and ADC (`GOOGLE_APPLICATION_CREDENTIALS`) credentials, broken credential
//! files, the emulator stopped, and a socket that never answers. The
//! metadata-server path (GCE, GKE Workload Identity) is tested against a
//! small in-test stub of the metadata server's token and universe-domain
//! endpoints, and "no GCP at all" against a closed metadata port. `PERMISSION_DENIED` and `UNAUTHENTICATED` cannot
//! be produced by drongo (it checks no credentials); their mapping is
//! unit-tested below.

use std::path::PathBuf;
use std::time::Duration;

use google_cloud_auth::credentials::{
    anonymous, external_account, service_account, user_account, Builder as AdcBuilder, Credentials,
};
use google_cloud_gax::error::rpc::Code;
use google_cloud_gax::error::Error as GaxError;
use google_cloud_gax::retry_policy::NeverRetry;
use google_cloud_secretmanager_v1::client::SecretManagerService;
use google_cloud_secretmanager_v1::model::AccessSecretVersionResponse;
use serde::Deserialize;
use zeroize::Zeroize;

use crate::{SecretError, SecretProvider, SecretRef, SecretString};

const BACKEND: &str = "gcp-sm";
const DEFAULT_ENDPOINT: &str = "https://secretmanager.googleapis.com";
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// `[secrets.gcp]` settings. All optional: without the section, krawl uses
/// Google's endpoint and Application Default Credentials.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct GcpConfig {
    /// Secret Manager API endpoint. Default `https://secretmanager.googleapis.com`.
    /// Set it for a regional or Private Service Connect endpoint, or for an
    /// emulator (`http://127.0.0.1:9090`).
    pub endpoint: Option<String>,
    /// Credential file to use instead of Application Default Credentials: a
    /// service-account key (`"type": "service_account"`), gcloud user
    /// credentials (`authorized_user`) or a Workload Identity Federation
    /// config (`external_account`). Unset: ADC (`GOOGLE_APPLICATION_CREDENTIALS`,
    /// gcloud's application-default credentials, then the metadata server,
    /// which is how GKE Workload Identity and GCE service accounts work).
    pub credentials_file: Option<PathBuf>,
    /// Send no credentials. Only for a local Secret Manager emulator in tests:
    /// Google's API rejects anonymous calls. Cannot be combined with
    /// `credentials_file`. Default false.
    pub anonymous: bool,
    /// Timeout of one API call, in seconds (default 10, at least 1).
    pub timeout_secs: u64,
    /// How many times to retry a call that failed transiently (connection
    /// error, timeout, HTTP 5xx/429, UNAVAILABLE), with exponential backoff
    /// from 200 ms. Not-found, permission and authentication errors are never
    /// retried. Default 2.
    pub retries: u32,
}

impl Default for GcpConfig {
    fn default() -> Self {
        Self {
            endpoint: None,
            credentials_file: None,
            anonymous: false,
            timeout_secs: 10,
            retries: 2,
        }
    }
}

/// Reads `gcp-sm://` references from GCP Secret Manager.
pub struct GcpProvider {
    cfg: GcpConfig,
    endpoint: String,
    timeout: Duration,
    client: tokio::sync::OnceCell<SecretManagerService>,
}

impl std::fmt::Debug for GcpProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpProvider")
            .field("endpoint", &self.endpoint)
            .field("auth", &self.auth_mode())
            .field("timeout", &self.timeout)
            .field("retries", &self.cfg.retries)
            .field("client_built", &self.client.initialized())
            .finish()
    }
}

fn config_error(key: &str, hint: String) -> SecretError {
    SecretError::NotConfigured {
        reference: format!("secrets.gcp.{key}"),
        backend: BACKEND,
        hint: format!(": {hint}"),
    }
}

impl GcpProvider {
    /// Checks the settings; builds no client and reads no credentials (that
    /// happens on the first fetch), so it succeeds on a machine without GCP.
    pub async fn new(cfg: GcpConfig) -> Result<Self, SecretError> {
        let endpoint = match &cfg.endpoint {
            Some(e) => {
                let e = e.trim_end_matches('/').to_string();
                if !(e.starts_with("https://") || e.starts_with("http://"))
                    || e.contains(char::is_whitespace)
                {
                    return Err(config_error(
                        "endpoint",
                        format!(
                            "`{e}` is not a URL; expected e.g. https://secretmanager.googleapis.com \
                             (or http://127.0.0.1:PORT for an emulator)"
                        ),
                    ));
                }
                e
            }
            None => DEFAULT_ENDPOINT.to_string(),
        };
        if cfg.timeout_secs == 0 {
            return Err(config_error(
                "timeout_secs",
                "must be at least 1 (seconds per API call; default 10)".into(),
            ));
        }
        if cfg.anonymous && cfg.credentials_file.is_some() {
            return Err(config_error(
                "anonymous",
                "set either `anonymous = true` (emulators only) or `credentials_file`, not both"
                    .into(),
            ));
        }
        Ok(Self {
            timeout: Duration::from_secs(cfg.timeout_secs),
            endpoint,
            cfg,
            client: tokio::sync::OnceCell::new(),
        })
    }

    fn auth_mode(&self) -> String {
        if self.cfg.anonymous {
            "anonymous".into()
        } else if let Some(p) = &self.cfg.credentials_file {
            format!("credentials_file {}", p.display())
        } else {
            "application default credentials".into()
        }
    }

    fn auth_failed(&self, reference: &str, what: String) -> SecretError {
        SecretError::AuthFailed {
            reference: reference.to_string(),
            backend: BACKEND,
            hint: format!("{what}; {}", adc_hint(self.cfg.credentials_file.is_some())),
        }
    }

    /// The credentials the config asks for. Never puts key material in an error.
    fn credentials(&self, reference: &str) -> Result<Credentials, SecretError> {
        if self.cfg.anonymous {
            return Ok(anonymous::Builder::new().build());
        }
        let Some(path) = &self.cfg.credentials_file else {
            return AdcBuilder::default().build().map_err(|e| {
                self.auth_failed(
                    reference,
                    format!("cannot load Application Default Credentials: {e}"),
                )
            });
        };
        let shown = path.display();
        let mut text = std::fs::read_to_string(path).map_err(|e| {
            self.auth_failed(
                reference,
                format!("cannot read secrets.gcp.credentials_file {shown}: {e}"),
            )
        })?;
        let parsed = serde_json::from_str::<serde_json::Value>(&text);
        text.zeroize();
        // Only the position: a serde_json message could quote the file.
        let json = parsed.map_err(|e| {
            self.auth_failed(
                reference,
                format!(
                    "secrets.gcp.credentials_file {shown} is not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let kind = json
            .get("type")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("")
            .to_string();
        let built = match kind.as_str() {
            "service_account" => service_account::Builder::new(json).build(),
            "authorized_user" => user_account::Builder::new(json).build(),
            "external_account" => external_account::Builder::new(json).build(),
            other => {
                let other = if other.is_empty() { "(none)" } else { other };
                return Err(self.auth_failed(
                    reference,
                    format!(
                        "secrets.gcp.credentials_file {shown} has `type` {other}; supported: \
                         service_account, authorized_user, external_account"
                    ),
                ));
            }
        };
        built.map_err(|e| {
            self.auth_failed(
                reference,
                format!(
                    "secrets.gcp.credentials_file {shown} is not a usable {kind} credential: {e}"
                ),
            )
        })
    }

    async fn client(&self, reference: &str) -> Result<&SecretManagerService, SecretError> {
        self.client
            .get_or_try_init(|| async {
                let creds = self.credentials(reference)?;
                tracing::debug!(endpoint = %self.endpoint, auth = %self.auth_mode(), "building GCP Secret Manager client");
                SecretManagerService::builder()
                    .with_endpoint(self.endpoint.clone())
                    .with_credentials(creds)
                    .with_retry_policy(NeverRetry)
                    .build()
                    .await
                    .map_err(|e| {
                        if e.is_universe_domain_mismatch() {
                            // The SDK's message quotes what the metadata
                            // server answered, which may be a token: not shown.
                            SecretError::AuthFailed {
                                reference: reference.to_string(),
                                backend: BACKEND,
                                hint: format!(
                                    "the credentials belong to another universe domain than {} \
                                     (or the metadata server answered something unexpected); use \
                                     credentials for googleapis.com or set secrets.gcp.endpoint",
                                    self.endpoint
                                ),
                            }
                        } else if e.is_default_credentials() {
                            self.auth_failed(reference, format!("cannot load credentials: {e}"))
                        } else {
                            SecretError::Backend {
                                reference: reference.to_string(),
                                backend: BACKEND,
                                message: format!(
                                    "cannot build the Secret Manager client for {}: {e}",
                                    self.endpoint
                                ),
                            }
                        }
                    })
            })
            .await
    }

    fn decode(
        &self,
        reference: &str,
        name: &str,
        resp: AccessSecretVersionResponse,
    ) -> Result<SecretString, SecretError> {
        let Some(payload) = resp.payload else {
            return Err(SecretError::Backend {
                reference: reference.to_string(),
                backend: BACKEND,
                message: format!(
                    "the answer for {name} from {} has no payload",
                    self.endpoint
                ),
            });
        };
        // Take the SDK's buffer without a copy when it is not shared.
        let bytes: Vec<u8> = match payload.data.try_into_mut() {
            Ok(owned) => owned.into(),
            Err(shared) => shared.to_vec(),
        };
        match String::from_utf8(bytes) {
            Ok(text) => Ok(SecretString::new(text)),
            Err(e) => {
                let len = e.as_bytes().len();
                e.into_bytes().zeroize();
                Err(SecretError::Backend {
                    reference: reference.to_string(),
                    backend: BACKEND,
                    message: format!(
                        "the payload of {name} ({len} bytes) is not UTF-8 text; krawl needs \
                         text secrets: store binary values base64-encoded, or as a field of a JSON object"
                    ),
                })
            }
        }
    }
}

/// What to tell a user whose credentials did not work.
fn adc_hint(explicit_file: bool) -> String {
    let base = "krawl authenticates with Application Default Credentials unless \
                secrets.gcp.credentials_file is set: set GOOGLE_APPLICATION_CREDENTIALS to a \
                service-account key file, run `gcloud auth application-default login`, or on GKE \
                enable Workload Identity and bind the pod's Kubernetes service account to a Google \
                service account (iam.gke.io/gcp-service-account annotation); on GCE/Cloud Run the \
                attached service account is used through the metadata server";
    if explicit_file {
        "check secrets.gcp.credentials_file: a service-account key JSON (`gcloud iam \
         service-accounts keys create`), gcloud user credentials, or a Workload Identity \
         Federation config; or remove it to use Application Default Credentials \
         (GOOGLE_APPLICATION_CREDENTIALS, gcloud, the metadata server / GKE Workload Identity)"
            .to_string()
    } else {
        base.to_string()
    }
}

/// How one failed attempt is reported, and whether it is worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    NotFound,
    PermissionDenied,
    /// The server refused the credentials (UNAUTHENTICATED, HTTP 401).
    Unauthenticated,
    /// No credentials could be obtained on our side (token fetch, signing).
    NoCredentials,
    Unreachable,
    Precondition,
    Other,
}

#[derive(Debug)]
struct Failure {
    kind: Kind,
    transient: bool,
    /// Safe to show: a server status message or a transport error, never a
    /// response body that could hold a value.
    detail: String,
}

/// The error, its sources, without repeating text a parent already shows.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

fn classify(e: &GaxError) -> Failure {
    if let Some(status) = e.status() {
        let (kind, transient) = match status.code {
            Code::NotFound => (Kind::NotFound, false),
            Code::PermissionDenied => (Kind::PermissionDenied, false),
            Code::Unauthenticated => (Kind::Unauthenticated, false),
            Code::FailedPrecondition => (Kind::Precondition, false),
            Code::Unavailable | Code::DeadlineExceeded => (Kind::Unreachable, true),
            Code::Internal | Code::ResourceExhausted | Code::Aborted => (Kind::Other, true),
            _ => (Kind::Other, e.http_status_code().is_some_and(|c| c >= 500)),
        };
        return Failure {
            kind,
            transient,
            detail: format!("{} ({})", status.message, status.code.name()),
        };
    }
    if e.is_authentication() {
        // Transient: e.g. the metadata server answered 5xx; the credential
        // library already retried token fetches itself.
        return Failure {
            kind: Kind::NoCredentials,
            transient: e.is_transient_and_before_rpc(),
            detail: error_chain(e),
        };
    }
    if e.is_deserialization() {
        // The message could quote the response: leave it out.
        return Failure {
            kind: Kind::Other,
            transient: false,
            detail: "the answer is not a Secret Manager API response; check secrets.gcp.endpoint"
                .into(),
        };
    }
    if let Some(code) = e.http_status_code() {
        // An HTTP error without a Google status body (a proxy, a wrong
        // endpoint). The body is not shown.
        let kind = match code {
            401 => Kind::Unauthenticated,
            403 => Kind::PermissionDenied,
            404 => Kind::NotFound,
            _ => Kind::Other,
        };
        return Failure {
            kind,
            transient: code >= 500 || code == 429,
            detail: format!("HTTP {code} without a Secret Manager error body"),
        };
    }
    if e.is_timeout()
        || e.is_connect()
        || e.is_io()
        || e.is_transport()
        || e.is_transient_and_before_rpc()
    {
        return Failure {
            kind: Kind::Unreachable,
            transient: true,
            detail: error_chain(e),
        };
    }
    Failure {
        kind: Kind::Other,
        transient: false,
        detail: error_chain(e),
    }
}

/// Builds the user-facing error for a failure of `name` (the full version name).
fn to_secret_error(
    f: Failure,
    reference: &str,
    name: &str,
    endpoint: &str,
    attempts: u32,
    explicit_creds: bool,
) -> SecretError {
    let reference = reference.to_string();
    let detail = f.detail;
    // projects/P/secrets/S/versions/V
    let parts: Vec<&str> = name.split('/').collect();
    let (project, secret, version) = match parts.as_slice() {
        [_, p, _, s, _, v] => (*p, *s, *v),
        _ => ("PROJECT", "SECRET", "VERSION"),
    };
    match f.kind {
        Kind::NotFound => SecretError::NotFound {
            reference,
            backend: BACKEND,
            hint: format!(
                "{endpoint} has no {name} ({detail}); check the project id, the secret name and \
                 the version (`latest` or a number): `gcloud secrets versions list {secret} --project {project}`"
            ),
        },
        Kind::PermissionDenied => SecretError::PermissionDenied {
            reference,
            backend: BACKEND,
            hint: format!(
                "{detail}; grant the caller's service account roles/secretmanager.secretAccessor on the secret: \
                 `gcloud secrets add-iam-policy-binding {secret} --project {project} \
                 --member serviceAccount:SA_EMAIL --role roles/secretmanager.secretAccessor`, \
                 and check that the Secret Manager API is enabled in project {project}"
            ),
        },
        Kind::Unauthenticated => SecretError::AuthFailed {
            reference,
            backend: BACKEND,
            hint: format!("{endpoint} rejected the credentials ({detail}); {}", adc_hint(explicit_creds)),
        },
        Kind::NoCredentials => SecretError::AuthFailed {
            reference,
            backend: BACKEND,
            hint: format!("cannot obtain credentials for {endpoint}: {detail}; {}", adc_hint(explicit_creds)),
        },
        Kind::Unreachable => SecretError::Unreachable {
            reference,
            backend: BACKEND,
            hint: format!(
                "no answer from {endpoint} after {attempts} attempt(s): {detail}; check network access \
                 (proxy, firewall, DNS) to it and secrets.gcp.endpoint / timeout_secs"
            ),
        },
        Kind::Precondition => SecretError::Backend {
            reference,
            backend: BACKEND,
            message: format!(
                "{name} cannot be read: {detail}; the version is probably disabled or destroyed: \
                 enable it (`gcloud secrets versions enable {version} --secret {secret} --project {project}`) \
                 or point the reference at an enabled version"
            ),
        },
        Kind::Other => SecretError::Backend {
            reference,
            backend: BACKEND,
            message: format!("reading {name} from {endpoint} failed after {attempts} attempt(s): {detail}"),
        },
    }
}

fn backoff(attempt: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(MAX_BACKOFF)
}

#[async_trait::async_trait]
impl SecretProvider for GcpProvider {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        let canonical = reference.to_string();
        let SecretRef::GcpSm {
            project,
            secret,
            version,
            ..
        } = reference
        else {
            return Err(SecretError::Backend {
                reference: canonical,
                backend: BACKEND,
                message: "not a gcp-sm:// reference".into(),
            });
        };
        let name = format!("projects/{project}/secrets/{secret}/versions/{version}");
        let client = self.client(&canonical).await?;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            tracing::debug!(endpoint = %self.endpoint, %name, attempt, "gcp-sm: access secret version");
            let call = client.access_secret_version().set_name(name.clone()).send();
            let failure = match tokio::time::timeout(self.timeout, call).await {
                Ok(Ok(resp)) => return self.decode(&canonical, &name, resp),
                Ok(Err(e)) => classify(&e),
                Err(_) => Failure {
                    kind: Kind::Unreachable,
                    transient: true,
                    detail: format!(
                        "no answer within {} s (secrets.gcp.timeout_secs)",
                        self.timeout.as_secs()
                    ),
                },
            };
            tracing::debug!(endpoint = %self.endpoint, %name, attempt, kind = ?failure.kind, transient = failure.transient, "gcp-sm: call failed");
            if failure.transient && attempt <= self.cfg.retries {
                tokio::time::sleep(backoff(attempt - 1)).await;
                continue;
            }
            return Err(to_secret_error(
                failure,
                &canonical,
                &name,
                &self.endpoint,
                attempt,
                self.cfg.credentials_file.is_some(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use google_cloud_gax::error::rpc::Status;
    use google_cloud_gax::error::CredentialsError;

    const NAME: &str = "projects/p1/secrets/kafka/versions/latest";
    const REF: &str = "gcp-sm://projects/p1/secrets/kafka/versions/latest";

    fn service(code: Code, msg: &str) -> GaxError {
        GaxError::service(Status::default().set_code(code).set_message(msg))
    }

    fn mapped(e: GaxError) -> (bool, SecretError) {
        let f = classify(&e);
        let transient = f.transient;
        (
            transient,
            to_secret_error(f, REF, NAME, "https://sm.example", 1, false),
        )
    }

    #[test]
    fn status_codes_map_to_secret_errors() {
        let (t, e) = mapped(service(
            Code::PermissionDenied,
            "Permission 'secretmanager.versions.access' denied",
        ));
        assert!(!t);
        assert!(matches!(e, SecretError::PermissionDenied { .. }), "{e:?}");
        let s = e.to_string();
        assert!(s.contains("roles/secretmanager.secretAccessor"), "{s}");
        assert!(
            s.contains("gcloud secrets add-iam-policy-binding kafka --project p1"),
            "{s}"
        );
        assert!(s.contains(REF), "{s}");

        let (t, e) = mapped(service(
            Code::NotFound,
            "Secret [projects/p1/secrets/kafka] not found.",
        ));
        assert!(!t);
        assert!(matches!(e, SecretError::NotFound { .. }), "{e:?}");
        assert!(e
            .to_string()
            .contains("gcloud secrets versions list kafka --project p1"));

        let (t, e) = mapped(service(
            Code::Unauthenticated,
            "Request had invalid authentication credentials.",
        ));
        assert!(!t);
        assert!(matches!(e, SecretError::AuthFailed { .. }), "{e:?}");
        assert!(e.to_string().contains("Workload Identity"), "{e}");

        let (t, e) = mapped(service(
            Code::FailedPrecondition,
            "Secret Version is in DESTROYED state.",
        ));
        assert!(!t);
        assert!(matches!(e, SecretError::Backend { .. }), "{e:?}");
        assert!(e.to_string().contains("disabled or destroyed"), "{e}");

        let (t, e) = mapped(service(Code::Unavailable, "try again"));
        assert!(t);
        assert!(matches!(e, SecretError::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains("https://sm.example"), "{e}");

        let (t, e) = mapped(service(Code::Internal, "boom"));
        assert!(t);
        assert!(matches!(e, SecretError::Backend { .. }), "{e:?}");

        let (t, e) = mapped(service(Code::InvalidArgument, "bad name"));
        assert!(!t);
        assert!(matches!(e, SecretError::Backend { .. }), "{e:?}");
    }

    #[test]
    fn transport_and_credential_errors_map() {
        let (t, e) = mapped(GaxError::http(503, Default::default(), Default::default()));
        assert!(t);
        assert!(matches!(e, SecretError::Backend { .. }), "{e:?}");
        let (t, e) = mapped(GaxError::http(
            403,
            Default::default(),
            "<html>denied</html>".into(),
        ));
        assert!(!t);
        assert!(matches!(e, SecretError::PermissionDenied { .. }), "{e:?}");
        assert!(!e.to_string().contains("<html>"), "{e}");
        let (t, e) = mapped(GaxError::http(401, Default::default(), Default::default()));
        assert!(!t);
        assert!(matches!(e, SecretError::AuthFailed { .. }), "{e:?}");

        let (t, e) = mapped(GaxError::connect("connection refused"));
        assert!(t);
        assert!(matches!(e, SecretError::Unreachable { .. }), "{e:?}");
        let (t, e) = mapped(GaxError::io("reset by peer"));
        assert!(t);
        assert!(matches!(e, SecretError::Unreachable { .. }), "{e:?}");
        let (t, e) = mapped(GaxError::timeout("deadline"));
        assert!(t);
        assert!(matches!(e, SecretError::Unreachable { .. }), "{e:?}");

        let (t, e) = mapped(GaxError::authentication(CredentialsError::from_msg(
            false,
            "metadata server unreachable",
        )));
        assert!(!t);
        assert!(matches!(e, SecretError::AuthFailed { .. }), "{e:?}");
        assert!(
            e.to_string().contains("GOOGLE_APPLICATION_CREDENTIALS"),
            "{e}"
        );

        // A decoding error never passes the SDK's message on (it could quote the body).
        let (t, e) = mapped(GaxError::deser("invalid type: string \"canary-value\""));
        assert!(!t);
        assert!(!e.to_string().contains("canary-value"), "{e}");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(10), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[tokio::test]
    async fn new_needs_no_gcp_configuration() {
        let p = GcpProvider::new(GcpConfig::default()).await.unwrap();
        assert_eq!(p.endpoint, DEFAULT_ENDPOINT);
        assert!(!p.client.initialized());
        let cfg: GcpConfig =
            serde_json::from_str(r#"{"endpoint":"http://127.0.0.1:1/","anonymous":true}"#).unwrap();
        assert_eq!(cfg.timeout_secs, 10);
        assert_eq!(cfg.retries, 2);
        let p = GcpProvider::new(cfg).await.unwrap();
        assert_eq!(p.endpoint, "http://127.0.0.1:1");

        for (cfg, needle) in [
            (
                r#"{"endpoint":"secretmanager.googleapis.com"}"#,
                "secrets.gcp.endpoint",
            ),
            (r#"{"timeout_secs":0}"#, "secrets.gcp.timeout_secs"),
            (
                r#"{"anonymous":true,"credentials_file":"/k.json"}"#,
                "not both",
            ),
        ] {
            let cfg: GcpConfig = serde_json::from_str(cfg).unwrap();
            let e = GcpProvider::new(cfg).await.unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        }
        assert!(serde_json::from_str::<GcpConfig>(r#"{"token":"x"}"#).is_err());
    }
}
