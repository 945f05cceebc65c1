//! Request bodies of the control-plane API (from agents, which may be rogue, and from admins):
//! every protocol type parses or is refused without a panic (through the server's value-free
//! deserializer, `krawl_protocol::body`), and a parsed submission's spec goes through the check.
#![no_main]

use krawl_protocol::{
    spec, AgentHeartbeat, CompleteRequest, JobHeartbeat, PollRequest, RegisterRequest, SubmitJob,
};
use libfuzzer_sys::fuzz_target;

/// The control plane's own entry point: value-free errors.
fn parse<T: serde::de::DeserializeOwned>(data: &[u8]) -> Option<T> {
    krawl_protocol::body::parse_json::<T>(data, "request").ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 6 {
        0 => {
            let _ = parse::<RegisterRequest>(body);
        }
        1 => {
            let _ = parse::<PollRequest>(body);
        }
        2 => {
            let _ = parse::<JobHeartbeat>(body);
        }
        3 => {
            let _ = parse::<AgentHeartbeat>(body);
        }
        4 => {
            let _ = parse::<CompleteRequest>(body);
        }
        _ => {
            if let Some(job) = parse::<SubmitJob>(body) {
                if job.kind.parse::<krawl_protocol::JobKind>().is_ok() {
                    let _ = spec::check(&job.spec, spec::Checker::ControlPlane);
                } else {
                    let _ = spec::check_unknown_kind(&job.spec);
                }
            }
        }
    }
});
