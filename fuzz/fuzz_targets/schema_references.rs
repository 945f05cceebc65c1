//! Reference graphs as a hostile Schema Registry serves them (cycles, a version referenced under
//! many names, long chains), through the extraction's reference walk: never a panic, never more
//! than the bounds, each (subject, version) fetched once, and, within the bounds, the same list
//! as the plain recursive definition (dependencies first).
//!
//! Input: byte 0: number of subjects (1 to 16); byte 1: the schema size unit (64 bytes); then, per
//! subject, a reference count and that many (name, subject, version) byte triples; the root
//! references come last, the same way.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use krawl_model::SchemaReference;
use krawl_schema_registry::client::SchemaVersion;
use krawl_schema_registry::fields::{Referenced, SchemaType};
use krawl_schema_registry::guard::{MAX_REFERENCED_BYTES, MAX_REFERENCES, MAX_SCHEMA_BYTES};
use krawl_schema_registry::references::{ReferenceError, ReferenceWalk};
use libfuzzer_sys::fuzz_target;

struct Input<'a>(std::slice::Iter<'a, u8>);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        self.0.next().copied().unwrap_or(0)
    }

    /// Up to 64 references; names from a small alphabet so that they repeat.
    fn references(&mut self, subjects: u8) -> Vec<SchemaReference> {
        let n = self.byte() % 65;
        (0..n)
            .map(|_| {
                let name = self.byte();
                let subject = self.byte() % subjects;
                let version = i32::from(self.byte() % 3);
                SchemaReference {
                    name: format!("n{name}"),
                    subject: format!("s{subject}"),
                    version,
                }
            })
            .collect()
    }
}

/// The recursive definition the walk must agree with (the inputs are small enough for it).
fn spec(
    root: &[SchemaReference],
    registry: &HashMap<(String, i32), Arc<SchemaVersion>>,
) -> Vec<Referenced> {
    fn visit(
        r: &SchemaReference,
        registry: &HashMap<(String, i32), Arc<SchemaVersion>>,
        seen: &mut HashSet<(String, String, i32)>,
        out: &mut Vec<Referenced>,
    ) {
        if !seen.insert((r.name.clone(), r.subject.clone(), r.version)) {
            return;
        }
        if let Some(target) = registry.get(&(r.subject.clone(), r.version)) {
            for inner in &target.references {
                visit(inner, registry, seen, out);
            }
            out.push(Referenced {
                name: r.name.clone(),
                schema: target.schema.clone(),
            });
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for r in root {
        visit(r, registry, &mut seen, &mut out);
    }
    out
}

/// Every (subject, version) the root leads to, fetchable or not.
fn reachable(
    root: &[SchemaReference],
    registry: &HashMap<(String, i32), Arc<SchemaVersion>>,
) -> HashSet<(String, i32)> {
    let mut seen = HashSet::new();
    let mut todo: Vec<&SchemaReference> = root.iter().collect();
    while let Some(r) = todo.pop() {
        let key = (r.subject.clone(), r.version);
        if let Some(v) = registry.get(&key) {
            if !seen.contains(&key) {
                todo.extend(&v.references);
            }
        }
        seen.insert(key);
    }
    seen
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data.iter());
    let subjects = input.byte() % 16 + 1;
    // Up to 16 KiB a schema: enough for the byte bounds to be reached through many
    // entries, cheap enough for thousands of runs a second.
    let unit = usize::from(input.byte()) * 64;
    // Versions 1 and 2 of each subject exist; version 0 does not (a failed fetch).
    let mut registry: HashMap<(String, i32), Arc<SchemaVersion>> = HashMap::new();
    for s in 0..subjects {
        let references = input.references(subjects);
        for version in 1..=2 {
            let size = unit * (usize::from(s) + 1) / 2;
            registry.insert(
                (format!("s{s}"), version),
                Arc::new(SchemaVersion {
                    subject: format!("s{s}"),
                    id: 1,
                    version,
                    schema_type: "AVRO".into(),
                    schema: "x".repeat(size),
                    references: references.clone(),
                }),
            );
        }
    }
    let root = input.references(subjects);

    let mut fetched = HashSet::new();
    let result = (|| {
        let mut walk = ReferenceWalk::new(SchemaType::Avro, &root)?;
        while let Some(key) = walk.next_fetch() {
            assert!(fetched.insert(key.clone()), "{key:?} fetched twice");
            let got = registry
                .get(&key)
                .cloned()
                .ok_or_else(|| ReferenceError::Fetch(format!("{key:?} not found")))?;
            walk.add(key, got)?;
        }
        walk.finish()
    })();
    assert!(fetched.len() <= MAX_REFERENCES);
    match result {
        Ok(list) => {
            assert!(list.len() <= MAX_REFERENCES);
            let bytes: usize = list.iter().map(|r| r.schema.len()).sum();
            assert!(bytes <= MAX_REFERENCED_BYTES);
            assert_eq!(list, spec(&root, &registry));
        }
        Err(ReferenceError::Fetch(_)) => {}
        Err(e) => {
            assert!(e.is_limit());
            // Refused only past a bound: by the recursive list, or by what it takes to fetch.
            let list = spec(&root, &registry);
            let bytes: usize = list.iter().map(|r| r.schema.len()).sum();
            let reach = reachable(&root, &registry);
            let reach_bytes: usize = reach
                .iter()
                .filter_map(|k| registry.get(k))
                .map(|v| v.schema.len())
                .sum();
            let biggest = reach
                .iter()
                .filter_map(|k| registry.get(k))
                .map(|v| v.schema.len())
                .max()
                .unwrap_or(0);
            assert!(
                list.len() > MAX_REFERENCES
                    || bytes > MAX_REFERENCED_BYTES
                    || reach.len() > MAX_REFERENCES
                    || reach_bytes > MAX_REFERENCED_BYTES
                    || biggest > MAX_SCHEMA_BYTES,
                "{e}: {} entries, {bytes} bytes, {} reachable",
                list.len(),
                reach.len()
            );
        }
    }
});
