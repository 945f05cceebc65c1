//! SASL SCRAM-SHA-256 / SCRAM-SHA-512 (RFC 5802, RFC 7677), client side, without channel
//! binding: the messages a Kafka client sends in SaslAuthenticate requests, and the checks of
//! what the broker answers.
//!
//! ```text
//! client-first  n,,n=<user>,r=<client nonce>
//! server-first  r=<client nonce + server nonce>,s=<salt>,i=<iterations>   (checked)
//! client-final  c=biws,r=<nonce>,p=<proof>
//! server-final  v=<server signature>                                       (verified)
//! ```
//!
//! A hostile broker controls the server messages: the iteration count is bounded (below
//! [`MIN_ITERATIONS`] is a downgrade, as Kafka's own client says; above [`MAX_ITERATIONS`]
//! would let the broker burn our CPU), its nonce must extend ours, and the server signature is
//! checked in constant time, so a broker that does not know the password is not believed.
//! Errors quote at most a short, sanitized piece of what the server sent ([`crate::shown`]) and
//! never the password. The salted password, the client key, the proof and the server key live
//! in [`Zeroizing`] buffers, wiped on drop.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use zeroize::Zeroizing;

/// Fewest PBKDF2 iterations accepted from a server (Kafka's minimum for SCRAM credentials).
pub const MIN_ITERATIONS: u32 = 4096;
/// Most PBKDF2 iterations accepted from a server.
pub const MAX_ITERATIONS: u32 = 100_000;

/// The SCRAM hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    fn hmac(self) -> ring::hmac::Algorithm {
        match self {
            Self::Sha256 => ring::hmac::HMAC_SHA256,
            Self::Sha512 => ring::hmac::HMAC_SHA512,
        }
    }
    fn pbkdf2(self) -> ring::pbkdf2::Algorithm {
        match self {
            Self::Sha256 => ring::pbkdf2::PBKDF2_HMAC_SHA256,
            Self::Sha512 => ring::pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
    fn digest(self) -> &'static ring::digest::Algorithm {
        match self {
            Self::Sha256 => &ring::digest::SHA256,
            Self::Sha512 => &ring::digest::SHA512,
        }
    }
}

/// Why a SCRAM exchange was refused. Never contains the password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramError {
    #[error("server-first message is not UTF-8")]
    ServerFirstNotUtf8,
    #[error("server requires an unsupported SCRAM extension")]
    Extension,
    /// The server's `e=` attribute, shortened and sanitized.
    #[error("server error: {0}")]
    Server(String),
    #[error("server-first message ({0} bytes) lacks r=, s= or i=; the broker did not run SCRAM")]
    Incomplete(usize),
    #[error("server nonce does not extend the client nonce")]
    Nonce,
    #[error("server salt is not base64")]
    SaltNotBase64,
    #[error("server salt is empty")]
    EmptySalt,
    #[error("server iteration count is not a number")]
    IterationsNotANumber,
    #[error("server iteration count {0} is outside {MIN_ITERATIONS}..={MAX_ITERATIONS}")]
    Iterations(u32),
    #[error("server-final message is not UTF-8")]
    ServerFinalNotUtf8,
    #[error("server signature is not base64")]
    SignatureNotBase64,
    #[error("server signature does not match (wrong server?)")]
    SignatureMismatch,
    #[error("server-final message lacks v=")]
    NoSignature,
    #[error("no randomness for the SCRAM nonce")]
    NoRandomness,
}

/// A 24-byte random nonce, base64 (printable, no `,`).
pub fn random_nonce() -> Result<String, ScramError> {
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ScramError::NoRandomness)?;
    Ok(B64.encode(bytes))
}

/// The client's state after client-first.
#[derive(Debug, Clone)]
pub struct ScramClient {
    hash: ScramHash,
    client_nonce: String,
    /// `n=<user>,r=<nonce>`
    client_first_bare: String,
}

/// The client-final message, and what the server must answer to it.
pub struct ScramFinal {
    message: String,
    hash: ScramHash,
    server_key: Zeroizing<Vec<u8>>,
    auth_message: String,
}

impl std::fmt::Debug for ScramFinal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramFinal")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

impl ScramClient {
    /// A client for `username` with the given nonce (printable ASCII without `,`; tests pass a
    /// fixed one, real use [`random_nonce`] or [`ScramClient::with_random_nonce`]).
    pub fn new(hash: ScramHash, username: &str, client_nonce: String) -> Self {
        let user = username.replace('=', "=3D").replace(',', "=2C");
        let client_first_bare = format!("n={user},r={client_nonce}");
        Self {
            hash,
            client_nonce,
            client_first_bare,
        }
    }

    pub fn with_random_nonce(hash: ScramHash, username: &str) -> Result<Self, ScramError> {
        Ok(Self::new(hash, username, random_nonce()?))
    }

    /// `n,,` (no channel binding, no authzid) + the bare message.
    pub fn client_first(&self) -> String {
        format!("n,,{}", self.client_first_bare)
    }

    /// Checks the server-first message and computes the client proof.
    pub fn client_final(
        &self,
        password: &str,
        server_first: &[u8],
    ) -> Result<ScramFinal, ScramError> {
        let server_first =
            std::str::from_utf8(server_first).map_err(|_| ScramError::ServerFirstNotUtf8)?;
        let (mut nonce, mut salt, mut iterations) = (None, None, None);
        for (i, attr) in server_first.split(',').enumerate() {
            match attr.split_once('=') {
                Some(("m", _)) if i == 0 => return Err(ScramError::Extension),
                Some(("e", e)) => return Err(ScramError::Server(crate::shown(e))),
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(ScramError::Incomplete(server_first.len()));
        };
        if !nonce.starts_with(&self.client_nonce) || nonce.len() <= self.client_nonce.len() {
            return Err(ScramError::Nonce);
        }
        let salt = B64.decode(salt).map_err(|_| ScramError::SaltNotBase64)?;
        if salt.is_empty() {
            return Err(ScramError::EmptySalt);
        }
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| ScramError::IterationsNotANumber)?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(ScramError::Iterations(iterations));
        }
        let Some(iterations) = std::num::NonZeroU32::new(iterations) else {
            return Err(ScramError::Iterations(0));
        };

        let len = self.hash.digest().output_len();
        let mut salted = Zeroizing::new(vec![0u8; len]);
        ring::pbkdf2::derive(
            self.hash.pbkdf2(),
            iterations,
            &salt,
            password.as_bytes(),
            &mut salted,
        );
        let salted_key = ring::hmac::Key::new(self.hash.hmac(), &salted);
        let client_key = Zeroizing::new(
            ring::hmac::sign(&salted_key, b"Client Key")
                .as_ref()
                .to_vec(),
        );
        let server_key = Zeroizing::new(
            ring::hmac::sign(&salted_key, b"Server Key")
                .as_ref()
                .to_vec(),
        );
        let stored_key = ring::digest::digest(self.hash.digest(), &client_key);

        // c=biws is base64("n,,"): the GS2 header of client_first.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.client_first_bare);
        let client_signature = ring::hmac::sign(
            &ring::hmac::Key::new(self.hash.hmac(), stored_key.as_ref()),
            auth_message.as_bytes(),
        );
        let proof: Zeroizing<Vec<u8>> = Zeroizing::new(
            client_key
                .iter()
                .zip(client_signature.as_ref())
                .map(|(a, b)| a ^ b)
                .collect(),
        );
        Ok(ScramFinal {
            message: format!("{without_proof},p={}", B64.encode(&*proof)),
            hash: self.hash,
            server_key,
            auth_message,
        })
    }
}

impl ScramFinal {
    /// The client-final message to send.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Checks `v=ServerSignature` (constant time): the server knew the password.
    pub fn verify_server_final(&self, server_final: &[u8]) -> Result<(), ScramError> {
        let server_final =
            std::str::from_utf8(server_final).map_err(|_| ScramError::ServerFinalNotUtf8)?;
        let first = server_final.split(',').next().unwrap_or_default();
        match first.split_once('=') {
            Some(("e", e)) => Err(ScramError::Server(crate::shown(e))),
            Some(("v", v)) => {
                let sig = B64.decode(v).map_err(|_| ScramError::SignatureNotBase64)?;
                let key = ring::hmac::Key::new(self.hash.hmac(), &self.server_key);
                ring::hmac::verify(&key, self.auth_message.as_bytes(), &sig)
                    .map_err(|_| ScramError::SignatureMismatch)
            }
            _ => Err(ScramError::NoSignature),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: SCRAM-SHA-256, user "user", password "pencil".
    #[test]
    fn scram_sha256_matches_rfc7677() {
        let c = ScramClient::new(
            ScramHash::Sha256,
            "user",
            "rOprNGfwEbeRWgbNEkqO".to_string(),
        );
        assert_eq!(c.client_first(), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first = b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let fin = c.client_final("pencil", server_first).unwrap();
        assert_eq!(
            fin.message(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        fin.verify_server_final(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap();
        // A server that does not know the password cannot produce the signature.
        assert_eq!(
            fin.verify_server_final(b"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            Err(ScramError::SignatureMismatch)
        );
        assert!(fin
            .verify_server_final(b"e=invalid-proof")
            .unwrap_err()
            .to_string()
            .contains("invalid-proof"));
        for (msg, want) in [
            (&b"x=1"[..], ScramError::NoSignature),
            (b"v=***", ScramError::SignatureNotBase64),
            (b"\xff", ScramError::ServerFinalNotUtf8),
            (b"", ScramError::NoSignature),
        ] {
            assert_eq!(fin.verify_server_final(msg), Err(want));
        }
        // The derived keys do not show in Debug.
        assert_eq!(format!("{fin:?}"), "ScramFinal { hash: Sha256, .. }");
    }

    #[test]
    fn scram_refuses_bad_server_first() {
        let c = ScramClient::new(ScramHash::Sha512, "a=b,c", "abc".to_string());
        assert_eq!(c.client_first(), "n,,n=a=3Db=2Cc,r=abc");
        for (msg, why) in [
            ("r=xyz123,s=c2FsdA==,i=4096", "nonce"),
            ("r=abc,s=c2FsdA==,i=4096", "nonce"),
            ("r=abcdef,s=c2FsdA==,i=1024", "iteration"),
            ("r=abcdef,s=c2FsdA==,i=99999999", "iteration"),
            ("r=abcdef,s=c2FsdA==,i=0", "iteration"),
            ("r=abcdef,s=c2FsdA==,i=-1", "iteration"),
            ("r=abcdef,s=c2FsdA==,i=99999999999999999999", "iteration"),
            ("r=abcdef,s=,i=4096", "salt is empty"),
            ("r=abcdef,s=!!,i=4096", "base64"),
            ("r=abcdef,i=4096", "lacks"),
            ("", "lacks"),
            ("m=ext,r=abcdef,s=c2FsdA==,i=4096", "extension"),
            ("e=other-error", "other-error"),
        ] {
            let e = c
                .client_final("pw", msg.as_bytes())
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{msg}: {e}");
            assert!(!e.contains("pw"), "{e}");
        }
        assert_eq!(
            c.client_final("pw", b"r=abc\xff").unwrap_err(),
            ScramError::ServerFirstNotUtf8
        );
    }

    /// A server error is quoted short and without control characters, whatever its size.
    #[test]
    fn server_errors_are_quoted_short() {
        let c = ScramClient::new(ScramHash::Sha256, "u", "n".to_string());
        let long = format!("e=bad\n{}", "x".repeat(100_000));
        let e = c
            .client_final("pw", long.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(e.len() < 200, "{}", e.len());
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn random_nonces_differ() {
        let (a, b) = (random_nonce().unwrap(), random_nonce().unwrap());
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(!a.contains(','));
        let c = ScramClient::with_random_nonce(ScramHash::Sha256, "u").unwrap();
        assert!(c.client_first().starts_with("n,,n=u,r="));
    }
}
