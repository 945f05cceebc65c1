//! Bearer tokens: generation, hashing and constant-time comparison.
//!
//! Three kinds of token: the bootstrap token (registration only), one agent token per agent
//! (issued by registration; the database keeps only its sha256) and the admin token (job API).
//! Tokens are never logged nor echoed in error messages.

use axum::http::{header, HeaderMap};
use rand::RngCore;

/// A fresh agent token: 32 random bytes, lower-case hex.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 (hex) of a token: what the database stores and what comparisons use.
pub fn token_hash(token: &str) -> String {
    krawl_protocol::chunk::sha256_hex(token.as_bytes())
}

/// Compares two token hashes in constant time (for equal lengths; hex sha256 always is).
pub fn hashes_equal(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// Checks a presented token against a stored hash.
pub fn token_matches(presented: &str, stored_hash: &str) -> bool {
    hashes_equal(&token_hash(presented), stored_hash)
}

/// The token of an `Authorization: Bearer …` header, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_hex_and_compare_by_hash() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert!(token_matches(&a, &token_hash(&a)));
        assert!(!token_matches(&b, &token_hash(&a)));
        assert!(!hashes_equal("ab", "abc"));
    }

    #[test]
    fn bearer_header_is_parsed() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_static("Bearer  xyz "),
        );
        assert_eq!(bearer(&h), Some("xyz"));
        h.insert(
            header::AUTHORIZATION,
            header::HeaderValue::from_static("Basic xyz"),
        );
        assert_eq!(bearer(&h), None);
    }
}
