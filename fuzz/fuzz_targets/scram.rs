//! The SCRAM client (krawl-wire) against server messages a hostile broker chooses, from a fixed
//! client state (RFC 7677's user and nonce): the input is `server-first NUL server-final`. The
//! client answers or refuses, never panics; its errors stay short (the server's own text is
//! quoted at most 100 characters, escaped) and a proof is computed only for a nonce that extends
//! ours and an iteration count within bounds.
#![no_main]

use krawl_wire::scram::{ScramClient, ScramHash, MAX_ITERATIONS, MIN_ITERATIONS};
use libfuzzer_sys::fuzz_target;

const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";

fuzz_target!(|data: &[u8]| {
    let (first, last) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let client = ScramClient::new(ScramHash::Sha256, "user", NONCE.to_string());
    match client.client_final("pencil", first) {
        Ok(fin) => {
            // Only a well-formed server-first gets this far.
            let text = std::str::from_utf8(first).expect("accepted means UTF-8");
            let iterations: u32 = text
                .split(',')
                .filter_map(|a| a.strip_prefix("i="))
                .last() // the client, too, takes the last one
                .and_then(|i| i.parse().ok())
                .expect("accepted means an iteration count");
            assert!((MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations));
            let nonce = fin
                .message()
                .strip_prefix("c=biws,r=")
                .and_then(|m| m.split(",p=").next())
                .expect("client-final shape");
            assert!(nonce.starts_with(NONCE) && nonce.len() > NONCE.len());
            if let Err(e) = fin.verify_server_final(last) {
                assert!(e.to_string().len() < 1024, "{e}");
            }
        }
        Err(e) => assert!(e.to_string().len() < 1024, "{e}"),
    }
});
