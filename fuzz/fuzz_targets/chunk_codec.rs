//! Result chunk bodies as an agent uploads them (or a rogue one does): decoding under each
//! encoding never panics and never returns more than the cap (the control plane relies on it to
//! bound memory per request); what decodes verifies against its own sha256.
#![no_main]

use krawl_protocol::chunk::{self, Encoding};
use libfuzzer_sys::fuzz_target;

const CAP: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let encoding = match selector % 3 {
        0 => Encoding::Zstd,
        1 => Encoding::Gzip,
        _ => Encoding::Identity,
    };
    match chunk::decode(body, encoding, CAP) {
        Ok(decoded) => {
            assert!(decoded.len() <= CAP);
            let sha = chunk::sha256_hex(&decoded);
            assert!(chunk::verify(&decoded, &sha).is_ok());
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = Encoding::from_header(std::str::from_utf8(body).ok());
});
