//! Secret references as a job spec carries them: any string parses to a reference, a literal or
//! an error, never a panic; a parsed reference prints to a string that parses back to itself.
#![no_main]

use krawl_secrets::SecretRef;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = SecretRef::parse(s) {
        if !matches!(r, SecretRef::Literal(_)) {
            let shown = r.to_string();
            let again = SecretRef::parse(&shown).expect("a printed reference parses");
            assert_eq!(again, r, "{shown}");
        }
    }
});
