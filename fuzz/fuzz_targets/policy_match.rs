//! The policy model: the first line is a pattern, the rest are destinations. Nothing panics; a
//! parsed host:port prints to a string that parses back to it and holds nothing a Kafka client
//! could read as a second host, a scheme or credentials; a parsed URL carries no credentials.
#![no_main]

use krawl_policy::{DestUrl, HostPort, HostPortPattern, UrlPattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let pattern = lines.next().unwrap_or("");
    let hp_pattern = HostPortPattern::parse("fuzz", pattern).ok();
    let url_pattern = UrlPattern::parse("fuzz", pattern).ok();
    for entry in lines {
        if let Ok(hp) = HostPort::parse(entry) {
            let shown = hp.to_string();
            assert!(
                !shown.contains([',', ' ', '/', '@', '\t', '\n', ';']),
                "{shown}"
            );
            assert_eq!(HostPort::parse(&shown).as_ref(), Ok(&hp), "{shown}");
            if let Some(p) = &hp_pattern {
                let _ = p.matches(&hp);
            }
        }
        if let Ok(url) = DestUrl::parse("fuzz", entry) {
            assert!(matches!(url.scheme(), "http" | "https"));
            assert!(!url.as_str().contains('@') || !url.host().is_empty());
            if let Some(p) = &url_pattern {
                let _ = p.matches(&url);
            }
        }
        let _ = krawl_policy::canonical_pattern_path(entry);
    }
});
