//! A job spec as a (possibly compromised) control plane sends it, and as an admin submits it:
//! the structure check of both sides, the fallback for unknown kinds and the value-free
//! deserializer never panic, and no message they produce quotes a string value of the spec.
#![no_main]

use krawl_protocol::spec::{self, Checker};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Every string value (not key) of `v` that is long and distinctive enough that finding it in
/// a message means the message quotes it, and every key (messages may name keys).
fn values(v: &Value, out: &mut Vec<String>, keys: &mut Vec<String>) {
    match v {
        Value::String(s) if s.len() >= 12 && s.chars().all(|c| c.is_ascii_alphanumeric()) => {
            out.push(s.clone())
        }
        Value::Array(a) => a.iter().for_each(|x| values(x, out, keys)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            keys.push(k.clone());
            values(x, out, keys)
        }),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let mut quoted = Vec::new();
    let mut keys = Vec::new();
    values(&v, &mut quoted, &mut keys);
    // A value that is part of a key is found in a message that names the key (the fuzzer found
    // {"rrrrrrrrrrrrrrrrrrootu": "rrrrrrrrrrrrrr"}); such a value proves nothing.
    quoted.retain(|q| !keys.iter().any(|k| k.contains(q.as_str())));
    let mut messages = Vec::new();
    for checker in [Checker::ControlPlane, Checker::Agent] {
        if let Err(problems) = spec::check(&v, checker) {
            assert!(!problems.is_empty());
            messages.extend(problems);
        }
    }
    if let Err(m) = spec::check_unknown_kind(&v) {
        messages.push(m);
    }
    if let Err(m) = krawl_protocol::body::from_value::<krawl_protocol::JobSpec>(&v, "job spec") {
        messages.push(m);
    }
    for m in &messages {
        for q in &quoted {
            assert!(!m.contains(q.as_str()), "a message quotes a value: {m}");
        }
    }
});
