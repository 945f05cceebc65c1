//! AWS Secrets Manager provider (`aws-sm://`).
//!
//! Reads one secret value with `GetSecretValue` and returns it whole (the
//! resolver applies `#key`): the `SecretString`, or the `SecretBinary` when
//! it is UTF-8 text (binary that is not UTF-8 is refused with a clear error).
//!
//! Reference syntax:
//! `aws-sm://<name-or-arn>[?version-stage=S | ?version-id=V][#key]`, e.g.
//! `aws-sm://kafka/prod#password`,
//! `aws-sm://arn:aws:secretsmanager:eu-west-1:123456789012:secret:kafka-AbCdEf?version-stage=AWSPREVIOUS#password`.
//! Without a version the service answers with the `AWSCURRENT` version.
//!
//! Region: a full ARN carries its region and is always asked there (a secret
//! can only be read in its own region); a name is asked in
//! `secrets.aws.region`, else in the region of the standard AWS chain
//! (`AWS_REGION`, the profile, EC2 metadata). One client per region, built on
//! first use and kept.
//!
//! Auth: the standard AWS credential chain
//! (`aws_config::defaults(BehaviorVersion::latest())`): environment
//! (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`), the shared profile
//! (`secrets.aws.profile` or `AWS_PROFILE`; SSO and `credential_process`
//! included), web identity (IRSA on EKS), EKS Pod Identity and ECS container
//! credentials, EC2 instance metadata. krawl holds no AWS key itself. The
//! identity needs `secretsmanager:GetSecretValue` on the secret and, for a
//! secret encrypted with a customer-managed KMS key, `kms:Decrypt` on that key.
//!
//! [`AwsProvider::new`] only checks the settings; the AWS configuration is
//! loaded at the first `aws-sm://` reference, so a krawl that uses none never
//! probes the chain (no EC2 metadata lookups at startup).
//!
//! Timeouts and retries are the SDK's own: `timeout_secs` bounds the connect
//! and each attempt; `retries` extra attempts (standard mode: only transient
//! errors, throttling, 5xx and timeouts, exponential backoff with jitter).
//!
//! Errors: not found → `NotFound` (check name/ARN and region), access denied
//! → `PermissionDenied` (the IAM/KMS grant to add), credential-chain failures
//! and rejected signatures/keys → `AuthFailed`, connection failures and
//! timeouts → `Unreachable` naming the endpoint, anything else → `Backend`
//! with the service's error code and message. No error carries a value.
//!
//! Tested (`tests/aws.rs`) against a real moto server (PyPI `moto[server]`
//! 5.2.x, started on a free loopback port): string and JSON secrets with
//! `#key`, a UTF-8 `SecretBinary`, `AWSCURRENT`/`AWSPREVIOUS`/custom staging
//! labels, version ids, ARNs in another region than the configured one or
//! with no region configured at all, the profile's region, a missing secret,
//! a missing `#key`, an unknown profile (the credential chain fails), the
//! server stopped, and an endpoint that never answers (timeout). moto checks
//! neither SigV4 nor IAM, so access denied and rejected keys are covered by
//! unit tests of the error mapping below, with errors built as the SDK
//! builds them.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_secretsmanager::config::retry::RetryConfig;
use aws_sdk_secretsmanager::config::timeout::TimeoutConfig;
use aws_sdk_secretsmanager::config::Region;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::Client;
use serde::Deserialize;
use zeroize::Zeroize;

use crate::{SecretError, SecretProvider, SecretRef, SecretString};

const BACKEND: &str = "aws-sm";

/// `[secrets.aws]` settings. Every key is optional: without the section krawl
/// uses the standard AWS region and credential chain.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AwsConfig {
    /// AWS region for secrets named by name (e.g. `eu-west-1`). Default: the
    /// standard chain (`AWS_REGION`, the profile's `region`, EC2 metadata).
    /// A reference by full ARN is always asked in the ARN's own region.
    pub region: Option<String>,
    /// Secrets Manager endpoint to call instead of the public one, e.g. a VPC
    /// interface endpoint (`https://vpce-0abc-xyz.secretsmanager.eu-west-1.vpce.amazonaws.com`)
    /// or a local emulator. Applies to Secrets Manager only, not to STS.
    pub endpoint_url: Option<String>,
    /// Named profile of the shared AWS config/credentials files to use
    /// (default: `AWS_PROFILE`, else `default`).
    pub profile: Option<String>,
    /// Timeout in seconds for connecting and for each attempt of a call
    /// (default 10).
    pub timeout_secs: u64,
    /// Extra attempts after a transient failure (connection error, timeout,
    /// throttling, 5xx), with exponential backoff (default 2; 0 disables).
    pub retries: u32,
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: None,
            endpoint_url: None,
            profile: None,
            timeout_secs: 10,
            retries: 2,
        }
    }
}

/// Reads `aws-sm://` references from AWS Secrets Manager.
pub struct AwsProvider {
    cfg: AwsConfig,
    /// The AWS configuration, loaded at the first `aws-sm://` reference: a
    /// krawl that uses none never probes the AWS chain (EC2 metadata, ...).
    loaded: tokio::sync::OnceCell<Loaded>,
    /// One client per region, built on first use.
    clients: Mutex<HashMap<String, Client>>,
}

struct Loaded {
    sdk: aws_config::SdkConfig,
    /// The region for references by name: config, else the chain's.
    default_region: Option<String>,
}

impl fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the SdkConfig: it holds the credentials provider.
        let regions: Vec<String> = self
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        f.debug_struct("AwsProvider")
            .field("cfg", &self.cfg)
            .field(
                "default_region",
                &self.loaded.get().map(|l| l.default_region.as_deref()),
            )
            .field("client_regions", &regions)
            .finish()
    }
}

fn config_error(key: &str, reason: impl Into<String>) -> SecretError {
    SecretError::Malformed {
        reference: format!("secrets.aws.{key}"),
        reason: reason.into(),
    }
}

impl AwsProvider {
    /// Check the settings. The AWS configuration (region, profile,
    /// credential chain) is loaded at the first secret, credentials at the
    /// first call.
    pub async fn new(cfg: AwsConfig) -> Result<Self, SecretError> {
        if cfg.timeout_secs == 0 {
            return Err(config_error("timeout_secs", "must be at least 1 (seconds)"));
        }
        if let Some(url) = &cfg.endpoint_url {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(config_error(
                    "endpoint_url",
                    format!("`{url}` must start with https:// (or http:// for a local emulator)"),
                ));
            }
        }
        if cfg.region.as_deref() == Some("") {
            return Err(config_error("region", "must not be empty, e.g. eu-west-1"));
        }
        Ok(Self {
            cfg,
            loaded: tokio::sync::OnceCell::new(),
            clients: Mutex::new(HashMap::new()),
        })
    }

    async fn loaded(&self) -> &Loaded {
        self.loaded.get_or_init(|| load(&self.cfg)).await
    }

    fn client(&self, loaded: &Loaded, region: &str) -> Client {
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        clients
            .entry(region.to_string())
            .or_insert_with(|| {
                let mut b = aws_sdk_secretsmanager::config::Builder::from(&loaded.sdk)
                    .region(Region::new(region.to_string()));
                if let Some(url) = &self.cfg.endpoint_url {
                    b = b.endpoint_url(url);
                }
                Client::from_conf(b.build())
            })
            .clone()
    }

    /// The endpoint a call in `region` goes to, for messages.
    fn endpoint(&self, loaded: &Loaded, region: &str) -> String {
        if let Some(url) = self
            .cfg
            .endpoint_url
            .as_deref()
            .or(loaded.sdk.endpoint_url())
        {
            return url.to_string();
        }
        let suffix = if region.starts_with("cn-") {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        };
        format!("https://secretsmanager.{region}.{suffix}")
    }
}

/// Load the AWS configuration the standard way, with krawl's overrides.
async fn load(cfg: &AwsConfig) -> Loaded {
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(timeout)
                .operation_attempt_timeout(timeout)
                .build(),
        )
        .retry_config(RetryConfig::standard().with_max_attempts(cfg.retries.saturating_add(1)));
    if let Some(region) = &cfg.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(profile) = &cfg.profile {
        loader = loader.profile_name(profile);
    }
    let sdk = loader.load().await;
    let default_region = sdk.region().map(|r| r.as_ref().to_string());
    tracing::debug!(
        region = ?default_region,
        endpoint_url = ?cfg.endpoint_url,
        profile = ?cfg.profile,
        "aws-sm: configuration loaded"
    );
    Loaded {
        sdk,
        default_region,
    }
}

/// The region of a Secrets Manager ARN
/// (`arn:<partition>:secretsmanager:<region>:<account>:secret:<name>`).
fn arn_region(id: &str) -> Option<&str> {
    let mut parts = id.strip_prefix("arn:")?.splitn(5, ':');
    let _partition = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    (service == "secretsmanager" && !region.is_empty()).then_some(region)
}

/// What a failed call was: for messages.
#[derive(Debug, Clone)]
struct CallContext {
    region: String,
    endpoint: String,
    timeout_secs: u64,
    attempts: u32,
    profile: Option<String>,
}

#[async_trait::async_trait]
impl SecretProvider for AwsProvider {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn fetch(&self, reference: &SecretRef) -> Result<SecretString, SecretError> {
        let SecretRef::AwsSm {
            id,
            version_stage,
            version_id,
            ..
        } = reference
        else {
            return Err(SecretError::Backend {
                reference: reference.to_string(),
                backend: BACKEND,
                message: "not an aws-sm:// reference".into(),
            });
        };
        let loaded = self.loaded().await;
        let region = match (arn_region(id), &loaded.default_region) {
            (Some(r), _) => r.to_string(),
            (None, Some(r)) => r.clone(),
            (None, None) => {
                return Err(SecretError::NotConfigured {
                    reference: reference.to_string(),
                    backend: BACKEND,
                    hint: "; no AWS region is known: set secrets.aws.region or AWS_REGION, \
                           or name the secret by its full ARN (which carries its region)"
                        .into(),
                })
            }
        };
        let ctx = CallContext {
            endpoint: self.endpoint(loaded, &region),
            region,
            timeout_secs: self.cfg.timeout_secs,
            attempts: self.cfg.retries.saturating_add(1),
            profile: self.cfg.profile.clone(),
        };
        tracing::debug!(endpoint = %ctx.endpoint, region = %ctx.region, reference = %reference, "aws-sm: GetSecretValue");
        let result = self
            .client(loaded, &ctx.region)
            .get_secret_value()
            .secret_id(id)
            .set_version_stage(version_stage.clone())
            .set_version_id(version_id.clone())
            .send()
            .await;
        match result {
            Ok(out) => value_of(reference, out),
            Err(err) => {
                let status = match &err {
                    SdkError::ServiceError(e) => Some(e.raw().status().as_u16()),
                    SdkError::ResponseError(e) => Some(e.raw().status().as_u16()),
                    _ => None,
                };
                tracing::debug!(endpoint = %ctx.endpoint, status = ?status, "aws-sm: GetSecretValue failed");
                Err(map_error(reference, &ctx, &err, status))
            }
        }
    }
}

/// The value of a `GetSecretValue` answer, moved out (not copied).
fn value_of(
    reference: &SecretRef,
    mut out: GetSecretValueOutput,
) -> Result<SecretString, SecretError> {
    if let Some(s) = out.secret_string.take() {
        return Ok(SecretString::new(s));
    }
    if let Some(blob) = out.secret_binary.take() {
        return match String::from_utf8(blob.into_inner()) {
            Ok(s) => Ok(SecretString::new(s)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(SecretError::Backend {
                    reference: reference.to_string(),
                    backend: BACKEND,
                    message: "the secret is binary (SecretBinary) and not UTF-8 text; \
                              store the value as SecretString (or as UTF-8 bytes)"
                        .into(),
                })
            }
        };
    }
    Err(SecretError::Backend {
        reference: reference.to_string(),
        backend: BACKEND,
        message: "the secret version has neither SecretString nor SecretBinary".into(),
    })
}

/// The credential-chain failure behind an error, if that is what it is.
fn credentials_error<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a CredentialsError> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        cur = e.source();
    }
    None
}

/// An error and its sources, `: `-separated (each once), without the
/// `Debug` dump that the SDK's `DisplayErrorContext` appends.
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let s = e.to_string();
        if !s.is_empty() && !out.contains(&s) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}

/// Error codes that mean the caller's credentials or signature were refused.
const AUTH_CODES: &[&str] = &[
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignature",
    "MissingAuthenticationToken",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
    "SignatureDoesNotMatch",
];

const ACCESS_DENIED_CODES: &[&str] = &["AccessDeniedException", "AccessDenied"];

fn auth_hint(ctx: &CallContext, what: &str) -> String {
    let profile = ctx
        .profile
        .as_deref()
        .map(|p| format!(" (secrets.aws.profile = `{p}`)"))
        .unwrap_or_default();
    format!(
        "{what}; krawl uses the standard AWS credential chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, \
         the shared profile{profile}, web identity (on EKS with IRSA: the service account's \
         `eks.amazonaws.com/role-arn` annotation and the role's trust policy), EKS Pod Identity, \
         ECS or EC2 instance metadata; check that one of them gives valid credentials for region {}",
        ctx.region
    )
}

/// Map an SDK error to a [`SecretError`]. `status` is the HTTP status when
/// the service answered. Never includes a secret value or a credential.
fn map_error<R: fmt::Debug + 'static>(
    reference: &SecretRef,
    ctx: &CallContext,
    err: &SdkError<GetSecretValueError, R>,
    status: Option<u16>,
) -> SecretError {
    let r = reference.to_string();
    if let Some(cred) = credentials_error(err) {
        return SecretError::AuthFailed {
            reference: r,
            backend: BACKEND,
            hint: auth_hint(
                ctx,
                &format!("no usable AWS credentials: {}", error_chain(cred)),
            ),
        };
    }
    let unreachable = |what: String| SecretError::Unreachable {
        reference: r.clone(),
        backend: BACKEND,
        hint: format!(
            "{what} (region {}, {} attempt(s)); check network access from krawl to {} \
             (proxy, security group, VPC endpoint) or set secrets.aws.endpoint_url",
            ctx.region, ctx.attempts, ctx.endpoint
        ),
    };
    let timed_out = || {
        unreachable(format!(
            "no answer from {} within {} s",
            ctx.endpoint, ctx.timeout_secs
        ))
    };
    match err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code = e.code().unwrap_or("unknown error");
            let message = e.message().unwrap_or("no message");
            let version = match reference {
                SecretRef::AwsSm {
                    version_stage: Some(s),
                    ..
                } => format!(", or no version of it with staging label `{s}`,"),
                SecretRef::AwsSm {
                    version_id: Some(v),
                    ..
                } => format!(", or no version of it with version id `{v}`,"),
                _ => String::new(),
            };
            match e {
                GetSecretValueError::ResourceNotFoundException(_) => SecretError::NotFound {
                    reference: r,
                    backend: BACKEND,
                    hint: format!(
                        "no such secret{version} in region {} ({}): check the secret name or ARN{}, and the region \
                         (secrets.aws.region or AWS_REGION; a full ARN carries its own region); AWS said: {message}",
                        ctx.region,
                        ctx.endpoint,
                        if version.is_empty() { "" } else { " and the version" },
                    ),
                },
                GetSecretValueError::DecryptionFailure(_) => SecretError::PermissionDenied {
                    reference: r,
                    backend: BACKEND,
                    hint: format!(
                        "Secrets Manager could not decrypt the secret with its KMS key: grant `kms:Decrypt` \
                         on that key to the AWS identity krawl runs as (key policy or IAM policy); AWS said: {message}"
                    ),
                },
                _ if ACCESS_DENIED_CODES.contains(&code) => SecretError::PermissionDenied {
                    reference: r,
                    backend: BACKEND,
                    hint: format!(
                        "grant `secretsmanager:GetSecretValue` on the secret's ARN to the AWS identity krawl \
                         runs as, and `kms:Decrypt` on its KMS key if it is encrypted with a customer-managed key; \
                         AWS said: {message}"
                    ),
                },
                _ if AUTH_CODES.contains(&code) => SecretError::AuthFailed {
                    reference: r,
                    backend: BACKEND,
                    hint: auth_hint(ctx, &format!("AWS refused the credentials ({code}: {message})")),
                },
                _ => SecretError::Backend {
                    reference: r,
                    backend: BACKEND,
                    message: format!(
                        "{code}: {message}{} from {}",
                        status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(),
                        ctx.endpoint
                    ),
                },
            }
        }
        SdkError::TimeoutError(_) => timed_out(),
        SdkError::DispatchFailure(df) if df.is_timeout() => timed_out(),
        SdkError::DispatchFailure(_) => unreachable(format!(
            "cannot connect to {}: {}",
            ctx.endpoint,
            error_chain(err)
        )),
        // The body of an unexpected answer is not echoed: it could hold anything.
        SdkError::ResponseError(_) => SecretError::Backend {
            reference: r,
            backend: BACKEND,
            message: format!(
                "unexpected answer from {}{}: is it a Secrets Manager endpoint? (check secrets.aws.endpoint_url)",
                ctx.endpoint,
                status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(),
            ),
        },
        _ => SecretError::Backend {
            reference: r,
            backend: BACKEND,
            message: format!("request to {} failed: {}", ctx.endpoint, error_chain(err)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_secretsmanager::error::{ConnectorError, ErrorMetadata};
    use aws_sdk_secretsmanager::types::error::{DecryptionFailure, ResourceNotFoundException};

    fn ctx() -> CallContext {
        CallContext {
            region: "eu-west-1".into(),
            endpoint: "https://secretsmanager.eu-west-1.amazonaws.com".into(),
            timeout_secs: 10,
            attempts: 3,
            profile: None,
        }
    }

    fn reference() -> SecretRef {
        SecretRef::parse("aws-sm://kafka/prod?version-stage=AWSPREVIOUS#password").unwrap()
    }

    fn service(e: GetSecretValueError) -> SdkError<GetSecretValueError, ()> {
        SdkError::service_error(e, ())
    }

    fn generic(code: &str, message: &str) -> SdkError<GetSecretValueError, ()> {
        service(GetSecretValueError::generic(
            ErrorMetadata::builder().code(code).message(message).build(),
        ))
    }

    fn map(err: &SdkError<GetSecretValueError, ()>) -> SecretError {
        map_error(&reference(), &ctx(), err, Some(400))
    }

    #[test]
    fn arn_regions() {
        assert_eq!(
            arn_region("arn:aws:secretsmanager:eu-west-1:123456789012:secret:kafka-AbCdEf"),
            Some("eu-west-1")
        );
        assert_eq!(
            arn_region("arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:a:b"),
            Some("cn-north-1")
        );
        assert_eq!(arn_region("kafka/prod"), None);
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
        assert_eq!(arn_region("arn:aws:secretsmanager::1:secret:x"), None);
    }

    #[test]
    fn config_defaults_and_validation() {
        let d = AwsConfig::default();
        assert_eq!((d.timeout_secs, d.retries), (10, 2));
        let c: AwsConfig = serde_json::from_str(r#"{"region":"eu-west-1"}"#).unwrap();
        assert_eq!((c.timeout_secs, c.retries), (10, 2));
        assert!(serde_json::from_str::<AwsConfig>(r#"{"regoin":"x"}"#).is_err());
    }

    #[test]
    fn not_found_names_region_and_version() {
        let e = map(&service(GetSecretValueError::ResourceNotFoundException(
            ResourceNotFoundException::builder()
                .message("Secrets Manager can't find the specified secret.")
                .build(),
        )));
        let s = e.to_string();
        assert!(matches!(e, SecretError::NotFound { .. }), "{s}");
        assert!(s.contains("region eu-west-1"), "{s}");
        assert!(s.contains("staging label `AWSPREVIOUS`"), "{s}");
        assert!(
            s.contains("aws-sm://kafka/prod?version-stage=AWSPREVIOUS#password"),
            "{s}"
        );
    }

    #[test]
    fn access_denied_is_permission_denied_with_the_grant_to_add() {
        let e = map(&generic(
            "AccessDeniedException",
            "User: arn:aws:sts::1:assumed-role/krawl/x is not authorized to perform: secretsmanager:GetSecretValue",
        ));
        let s = e.to_string();
        assert!(matches!(e, SecretError::PermissionDenied { .. }), "{s}");
        assert!(s.contains("secretsmanager:GetSecretValue"), "{s}");
        assert!(s.contains("kms:Decrypt"), "{s}");

        let e = map(&service(GetSecretValueError::DecryptionFailure(
            DecryptionFailure::builder()
                .message("denied by KMS")
                .build(),
        )));
        assert!(matches!(e, SecretError::PermissionDenied { .. }), "{e}");
        assert!(e.to_string().contains("kms:Decrypt"), "{e}");
    }

    #[test]
    fn refused_credentials_are_auth_failures() {
        for code in [
            "UnrecognizedClientException",
            "InvalidSignatureException",
            "ExpiredTokenException",
        ] {
            let e = map(&generic(
                code,
                "The security token included in the request is invalid.",
            ));
            assert!(matches!(e, SecretError::AuthFailed { .. }), "{code}: {e}");
            assert!(e.to_string().contains("credential chain"), "{e}");
            assert!(e.to_string().contains("IRSA"), "{e}");
        }
        // The credential chain itself failing surfaces as a dispatch failure.
        let e = map(&SdkError::dispatch_failure(ConnectorError::other(
            Box::new(CredentialsError::not_loaded(
                "no providers in chain provided credentials",
            )),
            None,
        )));
        assert!(matches!(e, SecretError::AuthFailed { .. }), "{e}");
        assert!(e.to_string().contains("no providers in chain"), "{e}");
    }

    #[test]
    fn transport_failures_are_unreachable_naming_the_endpoint() {
        let e = map(&SdkError::timeout_error("attempt timeout"));
        assert!(matches!(e, SecretError::Unreachable { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("https://secretsmanager.eu-west-1.amazonaws.com"),
            "{e}"
        );
        assert!(e.to_string().contains("within 10 s"), "{e}");

        let e = map(&SdkError::dispatch_failure(ConnectorError::io(
            std::io::Error::from(std::io::ErrorKind::ConnectionRefused).into(),
        )));
        assert!(matches!(e, SecretError::Unreachable { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("https://secretsmanager.eu-west-1.amazonaws.com"),
            "{e}"
        );
    }

    #[test]
    fn other_service_errors_keep_code_and_message() {
        let e = map(&generic(
            "InvalidRequestException",
            "secret is scheduled for deletion",
        ));
        assert!(matches!(e, SecretError::Backend { .. }), "{e}");
        let s = e.to_string();
        assert!(
            s.contains("InvalidRequestException: secret is scheduled for deletion (HTTP 400)"),
            "{s}"
        );
    }

    #[test]
    fn non_utf8_binary_is_refused_without_the_bytes() {
        let out = GetSecretValueOutput::builder()
            .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(vec![
                0xff, 0xfe, 0x00,
            ]))
            .build();
        let e = value_of(&reference(), out).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        let out = GetSecretValueOutput::builder()
            .secret_binary(aws_sdk_secretsmanager::primitives::Blob::new(
                b"text".to_vec(),
            ))
            .build();
        assert_eq!(value_of(&reference(), out).unwrap().expose(), "text");
    }
}
