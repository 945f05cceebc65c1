//! The transitive references of one schema, resolved without recursion and
//! within bounds.
//!
//! The registry decides what references what: subjects can reference each
//! other in cycles, under any number of names. [`ReferenceWalk`] keeps the
//! work list explicit (no recursion on registry data), fetches each
//! (subject, version) once, and refuses, as soon as it is known, more than
//! [`MAX_REFERENCES`] schemas to fetch or to hand to the parser, a referenced
//! schema over [`MAX_SCHEMA_BYTES`], and more than [`MAX_REFERENCED_BYTES`]
//! of them in all.
//!
//! It does no I/O: the caller asks [`ReferenceWalk::next_fetch`] what to
//! fetch, hands each answer to [`ReferenceWalk::add`], and takes the ordered
//! list from [`ReferenceWalk::finish`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use krawl_model::SchemaReference;

use crate::client::SchemaVersion;
use crate::fields::{Referenced, SchemaType};
use crate::guard::{GuardError, MAX_REFERENCED_BYTES, MAX_REFERENCES, MAX_SCHEMA_BYTES};

/// Why the references of a schema were not resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// A referenced version could not be fetched (the message names it).
    #[error("{0}")]
    Fetch(String),
    /// A bound of [`crate::guard`] was passed by the references as a whole.
    #[error("{0}")]
    Limit(GuardError),
    /// A bound was passed by one referenced schema.
    #[error("referenced subject `{subject}` version {version}: {source}")]
    Reference {
        subject: String,
        version: i32,
        source: GuardError,
    },
}

impl ReferenceError {
    /// Whether a bound was passed (rather than a fetch failing).
    pub fn is_limit(&self) -> bool {
        !matches!(self, Self::Fetch(_))
    }
}

/// A referenced (subject, version).
pub type Key = (String, i32);

fn key(r: &SchemaReference) -> Key {
    (r.subject.clone(), r.version)
}

/// One schema's reference resolution in progress. See the module docs.
#[derive(Debug)]
pub struct ReferenceWalk {
    schema_type: SchemaType,
    root: Vec<SchemaReference>,
    /// Every distinct (subject, version) met so far, fetched or not.
    known: HashSet<Key>,
    /// Met, not yet handed out by `next_fetch`.
    queue: Vec<Key>,
    fetched: HashMap<Key, Arc<SchemaVersion>>,
    fetched_bytes: usize,
}

impl ReferenceWalk {
    /// A walk from `root`, the references of a schema of `schema_type`.
    pub fn new(schema_type: SchemaType, root: &[SchemaReference]) -> Result<Self, ReferenceError> {
        let mut walk = ReferenceWalk {
            schema_type,
            root: root.to_vec(),
            known: HashSet::new(),
            queue: Vec::new(),
            fetched: HashMap::new(),
            fetched_bytes: 0,
        };
        walk.meet(root)?;
        Ok(walk)
    }

    /// Queues the (subject, version)s of `refs` not met before. Each will be
    /// fetched, so more than [`MAX_REFERENCES`] distinct ones is refused at once.
    fn meet(&mut self, refs: &[SchemaReference]) -> Result<(), ReferenceError> {
        for r in refs {
            if self.known.contains(&(r.subject.clone(), r.version)) {
                continue;
            }
            if self.known.len() >= MAX_REFERENCES {
                return Err(ReferenceError::Limit(GuardError::TooManyReferences {
                    limit: MAX_REFERENCES,
                }));
            }
            self.known.insert(key(r));
            self.queue.push(key(r));
        }
        Ok(())
    }

    /// The next (subject, version) to fetch; `None` when all are fetched.
    pub fn next_fetch(&mut self) -> Option<Key> {
        self.queue.pop()
    }

    /// The answer for `key` (asked by [`Self::next_fetch`]).
    pub fn add(&mut self, key: Key, version: Arc<SchemaVersion>) -> Result<(), ReferenceError> {
        check_size(self.schema_type, &key, &version.schema)?;
        self.fetched_bytes = self.fetched_bytes.saturating_add(version.schema.len());
        if self.fetched_bytes > MAX_REFERENCED_BYTES {
            return Err(ReferenceError::Limit(GuardError::ReferencesTooLarge {
                limit: MAX_REFERENCED_BYTES,
            }));
        }
        self.meet(&version.references)?;
        self.fetched.insert(key, version);
        Ok(())
    }

    /// The referenced schemas, dependencies before the schemas that use
    /// them, one per distinct (name, subject, version); at most
    /// [`MAX_REFERENCES`] of them and [`MAX_REFERENCED_BYTES`] in all.
    /// Iterative: the depth of the reference graph costs heap, not stack.
    pub fn finish(self) -> Result<Vec<Referenced>, ReferenceError> {
        /// A reference being visited and the next of its target's own references.
        struct Frame<'a> {
            reference: &'a SchemaReference,
            target: &'a SchemaVersion,
            next: usize,
        }
        let mut seen: HashSet<(&str, &str, i32)> = HashSet::new();
        let mut out: Vec<Referenced> = Vec::new();
        let mut entered = 0usize;
        let mut bytes = 0usize;
        let mut stack: Vec<Frame<'_>> = Vec::new();
        let fetched = &self.fetched;
        for root in &self.root {
            if !seen.insert((&root.name, &root.subject, root.version)) {
                continue;
            }
            let Some(target) = fetched.get(&(root.subject.clone(), root.version)) else {
                continue;
            };
            entered += 1;
            if entered > MAX_REFERENCES {
                return Err(too_many());
            }
            stack.push(Frame {
                reference: root,
                target,
                next: 0,
            });
            while let Some(top) = stack.last_mut() {
                if let Some(inner) = top.target.references.get(top.next) {
                    top.next += 1;
                    if !seen.insert((&inner.name, &inner.subject, inner.version)) {
                        continue;
                    }
                    let Some(target) = fetched.get(&(inner.subject.clone(), inner.version)) else {
                        continue;
                    };
                    entered += 1;
                    if entered > MAX_REFERENCES {
                        return Err(too_many());
                    }
                    stack.push(Frame {
                        reference: inner,
                        target,
                        next: 0,
                    });
                } else {
                    bytes = bytes.saturating_add(top.target.schema.len());
                    if bytes > MAX_REFERENCED_BYTES {
                        return Err(ReferenceError::Limit(GuardError::ReferencesTooLarge {
                            limit: MAX_REFERENCED_BYTES,
                        }));
                    }
                    out.push(Referenced {
                        name: top.reference.name.clone(),
                        schema: top.target.schema.clone(),
                    });
                    stack.pop();
                }
            }
        }
        Ok(out)
    }
}

fn too_many() -> ReferenceError {
    ReferenceError::Limit(GuardError::TooManyReferences {
        limit: MAX_REFERENCES,
    })
}

/// Refuses a referenced schema over [`MAX_SCHEMA_BYTES`] (before it is kept).
pub fn check_size(schema_type: SchemaType, key: &Key, schema: &str) -> Result<(), ReferenceError> {
    if schema.len() > MAX_SCHEMA_BYTES {
        return Err(ReferenceError::Reference {
            subject: key.0.clone(),
            version: key.1,
            source: GuardError::TooLarge {
                schema_type,
                bytes: schema.len(),
                limit: MAX_SCHEMA_BYTES,
            },
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(name: &str, subject: &str, version: i32) -> SchemaReference {
        SchemaReference {
            name: name.into(),
            subject: subject.into(),
            version,
        }
    }

    fn sv(subject: &str, schema: &str, references: Vec<SchemaReference>) -> Arc<SchemaVersion> {
        Arc::new(SchemaVersion {
            subject: subject.into(),
            id: 1,
            version: 1,
            schema_type: "AVRO".into(),
            schema: schema.into(),
            references,
        })
    }

    /// Drives a walk against `registry` (subject → its version 1), as the extraction does.
    fn run(
        root: &[SchemaReference],
        registry: &HashMap<String, Arc<SchemaVersion>>,
    ) -> (Result<Vec<Referenced>, ReferenceError>, usize) {
        let mut fetches = 0;
        let result = (|| {
            let mut walk = ReferenceWalk::new(SchemaType::Avro, root)?;
            while let Some(key) = walk.next_fetch() {
                fetches += 1;
                let got = registry
                    .get(&key.0)
                    .cloned()
                    .ok_or_else(|| ReferenceError::Fetch(format!("no {}", key.0)))?;
                walk.add(key, got)?;
            }
            walk.finish()
        })();
        (result, fetches)
    }

    #[test]
    fn dependencies_come_first_and_each_version_is_fetched_once() {
        let registry = HashMap::from([
            ("b".to_string(), sv("b", "B", vec![r("d.avsc", "d", 1)])),
            ("c".to_string(), sv("c", "C", vec![r("d.avsc", "d", 1)])),
            ("d".to_string(), sv("d", "D", vec![])),
        ]);
        let (got, fetches) = run(&[r("b.avsc", "b", 1), r("c.avsc", "c", 1)], &registry);
        let got: Vec<(String, String)> = got
            .unwrap()
            .into_iter()
            .map(|x| (x.name, x.schema))
            .collect();
        let want = [("d.avsc", "D"), ("b.avsc", "B"), ("c.avsc", "C")]
            .map(|(a, b)| (a.to_string(), b.to_string()));
        assert_eq!(got, want);
        assert_eq!(fetches, 3, "d is fetched once");
        let (got, _) = run(&[r("x", "missing", 1)], &registry);
        assert_eq!(got.unwrap_err(), ReferenceError::Fetch("no missing".into()));
    }

    #[test]
    fn cycles_under_many_names_are_bounded_not_recursed() {
        // x and y reference each other, each under 100,000 names: two fetches,
        // then more than MAX_REFERENCES entries for the parser: refused.
        let names = |p: &str, target: &str| {
            (0..100_000)
                .map(|i| r(&format!("{p}{i}"), target, 1))
                .collect::<Vec<_>>()
        };
        let registry = HashMap::from([
            ("x".to_string(), sv("x", "X", names("n", "y"))),
            ("y".to_string(), sv("y", "Y", names("m", "x"))),
        ]);
        let (got, fetches) = run(&[r("y.avsc", "y", 1)], &registry);
        assert_eq!(fetches, 2);
        assert_eq!(got.unwrap_err(), too_many());
        // One name each way: a cycle that ends.
        let registry = HashMap::from([
            ("x".to_string(), sv("x", "X", vec![r("y.avsc", "y", 1)])),
            ("y".to_string(), sv("y", "Y", vec![r("x.avsc", "x", 1)])),
        ]);
        let (got, _) = run(&[r("y.avsc", "y", 1)], &registry);
        let names: Vec<String> = got.unwrap().into_iter().map(|x| x.name).collect();
        assert_eq!(names, ["x.avsc", "y.avsc"]);
    }

    #[test]
    fn too_many_subjects_are_refused_before_they_are_fetched() {
        // A chain of 1,000 subjects: refused once the 257th distinct one is met.
        let registry: HashMap<String, Arc<SchemaVersion>> = (0..1000)
            .map(|i| {
                let next = vec![r(&format!("s{}", i + 1), &format!("s{}", i + 1), 1)];
                (format!("s{i}"), sv(&format!("s{i}"), "S", next))
            })
            .collect();
        let (got, fetches) = run(&[r("s0", "s0", 1)], &registry);
        assert_eq!(got.unwrap_err(), too_many());
        assert_eq!(fetches, MAX_REFERENCES);
        // A chain of exactly MAX_REFERENCES ends: each listed, the deepest first.
        let chain: HashMap<String, Arc<SchemaVersion>> = (0..MAX_REFERENCES)
            .map(|i| {
                let next = if i + 1 < MAX_REFERENCES {
                    vec![r(&format!("c{}", i + 1), &format!("c{}", i + 1), 1)]
                } else {
                    vec![]
                };
                (format!("c{i}"), sv(&format!("c{i}"), "C", next))
            })
            .collect();
        let (got, _) = run(&[r("c0", "c0", 1)], &chain);
        let got = got.unwrap();
        assert_eq!(got.len(), MAX_REFERENCES);
        assert_eq!(got[0].name, format!("c{}", MAX_REFERENCES - 1));
        assert_eq!(got[MAX_REFERENCES - 1].name, "c0");
    }

    #[test]
    fn referenced_bytes_are_bounded() {
        let big = "x".repeat(MAX_SCHEMA_BYTES);
        let registry: HashMap<String, Arc<SchemaVersion>> = (0..20)
            .map(|i| (format!("s{i}"), sv(&format!("s{i}"), &big, vec![])))
            .collect();
        let root: Vec<SchemaReference> = (0..20)
            .map(|i| r(&format!("s{i}"), &format!("s{i}"), 1))
            .collect();
        let (got, fetches) = run(&root, &registry);
        assert_eq!(
            got.unwrap_err(),
            ReferenceError::Limit(GuardError::ReferencesTooLarge {
                limit: MAX_REFERENCED_BYTES
            })
        );
        assert_eq!(fetches, MAX_REFERENCED_BYTES / MAX_SCHEMA_BYTES + 1);
        // One referenced schema over MAX_SCHEMA_BYTES: named.
        let registry =
            HashMap::from([("huge".to_string(), sv("huge", &format!("{big}!"), vec![]))]);
        let (got, _) = run(&[r("h", "huge", 1)], &registry);
        let err = got.unwrap_err();
        assert!(err.is_limit());
        let msg = err.to_string();
        assert!(
            msg.contains("`huge` version 1") && msg.contains("MAX_SCHEMA_BYTES"),
            "{msg}"
        );
    }
}
