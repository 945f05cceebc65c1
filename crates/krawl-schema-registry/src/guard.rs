//! The bounds a schema text (and the schemas it references) must keep before
//! any parser sees it.
//!
//! The registry is untrusted: a compromised or hostile one controls every byte
//! of every schema. The parsers recurse on nesting, so nesting is stack:
//!
//! * prost-reflect's text-format parser, which `protox` runs on aggregate
//!   option values (`option (x) = { a: { a: ... } }`), has no depth limit.
//!   100,000 levels overflow any thread's stack, and a stack overflow aborts
//!   the whole process (every job of the agent), not just the extraction.
//!   Measured (`option (x)` nesting of a recursive message): a debug build
//!   needs about 20 KiB per level and overflows a 2 MiB thread (a tokio
//!   worker's stack) at about 100 levels; a release build about 2 KiB per
//!   level.
//! * serde_json stops at 128 levels, but only while no crate of the build
//!   enables its `unbounded_depth` feature (features are unified across the
//!   workspace); the field walkers of [`crate::fields`] recurse too.
//!
//! So [`check`] runs first and refuses:
//!
//! * a text longer than [`MAX_SCHEMA_BYTES`];
//! * lexical nesting deeper than [`MAX_JSON_NESTING`] (Avro, JSON Schema:
//!   `{` `[`) or [`MAX_PROTOBUF_NESTING`] (Protobuf: `{` `[` `(` `<`),
//!   counted outside strings and comments with the lexical rules of the
//!   language's parser (serde_json; protox's lexer: `"`/`'` strings that end
//!   at their quote or at a newline, `//` and `#` line comments, `/* */`
//!   block comments). Closing brackets of any kind count down: a closer the
//!   parser would not take is a parse error there, before any deeper level.
//!
//! [`check_references`] bounds the schemas one schema pulls in: at most
//! [`MAX_REFERENCES`] of them and [`MAX_REFERENCED_BYTES`] in all; Protobuf
//! imports chain at most [`MAX_PROTOBUF_IMPORT_DEPTH`] files deep (checked
//! by [`crate::fields`] once the files are parsed, before they are compiled).
//!
//! The tests parse schemas nested exactly to each bound on a thread with
//! half a tokio worker's stack (1 MiB), in a debug build.

use std::fmt;

use crate::fields::SchemaType;

/// Longest schema text parsed (1 MiB). Confluent Schema Registry stores
/// schemas as records of its `_schemas` topic, whose messages are limited to
/// about 1 MB by default; real schemas are kilobytes.
pub const MAX_SCHEMA_BYTES: usize = 1024 * 1024;

/// Deepest nesting of `{` and `[` in an Avro or JSON Schema text. A nested
/// Avro record costs three or four levels (`{"fields":[{"type":{...`), so
/// this admits about 25 nested records. Below serde_json's own limit (128),
/// and a debug build parses it in less than 256 KiB of stack.
pub const MAX_JSON_NESTING: usize = 100;

/// Deepest nesting of `{` `[` `(` `<` in a Protobuf text: messages in
/// messages, field options, `map<>` and aggregate option values together.
/// A debug build compiles a schema nested this deep in an option value in
/// less than 1 MiB of stack (about a third of the depth that overflows a
/// 2 MiB tokio worker); protox itself refuses message nesting past 31.
pub const MAX_PROTOBUF_NESTING: usize = 32;

/// Most schemas one schema may reference, transitively (distinct references
/// by name, subject and version).
pub const MAX_REFERENCES: usize = 256;

/// Most bytes of referenced schema text one schema may pull in, in all.
pub const MAX_REFERENCED_BYTES: usize = 8 * MAX_SCHEMA_BYTES;

/// Longest chain of Protobuf imports (the schema, the file it imports, the
/// file that one imports, ...). protox opens imports recursively, about
/// 7 KiB of stack a level in a debug build: a chain of [`MAX_REFERENCES`]
/// files needs more than 1 MiB. Checked on the parsed files, before they are
/// compiled.
pub const MAX_PROTOBUF_IMPORT_DEPTH: usize = 32;

/// The nesting bound of a language.
pub fn max_nesting(schema_type: SchemaType) -> usize {
    match schema_type {
        SchemaType::Avro | SchemaType::Json => MAX_JSON_NESTING,
        SchemaType::Protobuf => MAX_PROTOBUF_NESTING,
    }
}

/// A schema refused before parsing: which bound it passed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// Longer than [`MAX_SCHEMA_BYTES`].
    #[error("the {schema_type} schema is {bytes} bytes, more than the limit of {limit} bytes (MAX_SCHEMA_BYTES)")]
    TooLarge {
        schema_type: SchemaType,
        bytes: usize,
        limit: usize,
    },
    /// Nested deeper than [`max_nesting`].
    #[error("the {schema_type} schema nests brackets deeper than the limit of {limit} levels ({constant}), at line {line}")]
    TooDeep {
        schema_type: SchemaType,
        limit: usize,
        constant: Constant,
        line: usize,
    },
    /// More than [`MAX_REFERENCES`] references.
    #[error("the schema references more than {limit} schemas (MAX_REFERENCES)")]
    TooManyReferences { limit: usize },
    /// More than [`MAX_REFERENCED_BYTES`] of referenced schemas.
    #[error("the schemas it references are more than {limit} bytes in all (MAX_REFERENCED_BYTES)")]
    ReferencesTooLarge { limit: usize },
    /// A chain of Protobuf imports longer than [`MAX_PROTOBUF_IMPORT_DEPTH`].
    #[error("the schema's imports chain more than {limit} files deep (MAX_PROTOBUF_IMPORT_DEPTH)")]
    ImportsTooDeep { limit: usize },
}

/// The name of a nesting bound, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Constant {
    MaxJsonNesting,
    MaxProtobufNesting,
}

impl fmt::Display for Constant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Constant::MaxJsonNesting => "MAX_JSON_NESTING",
            Constant::MaxProtobufNesting => "MAX_PROTOBUF_NESTING",
        })
    }
}

/// Refuses a schema text that is too large or nested too deep for
/// `schema_type`'s parser. Linear in the text, no allocation.
pub fn check(schema_type: SchemaType, text: &str) -> Result<(), GuardError> {
    if text.len() > MAX_SCHEMA_BYTES {
        return Err(GuardError::TooLarge {
            schema_type,
            bytes: text.len(),
            limit: MAX_SCHEMA_BYTES,
        });
    }
    let limit = max_nesting(schema_type);
    let scan = match schema_type {
        SchemaType::Avro | SchemaType::Json => scan_json(text.as_bytes(), limit),
        SchemaType::Protobuf => scan_protobuf(text.as_bytes(), limit),
    };
    match scan {
        Ok(()) => Ok(()),
        Err(line) => Err(GuardError::TooDeep {
            schema_type,
            limit,
            constant: match schema_type {
                SchemaType::Avro | SchemaType::Json => Constant::MaxJsonNesting,
                SchemaType::Protobuf => Constant::MaxProtobufNesting,
            },
            line,
        }),
    }
}

/// Refuses more than [`MAX_REFERENCES`] referenced schemas or more than
/// [`MAX_REFERENCED_BYTES`] of them in all (each one is [`check`]ed on its own).
pub fn check_references<'a>(texts: impl IntoIterator<Item = &'a str>) -> Result<(), GuardError> {
    let mut count = 0usize;
    let mut bytes = 0usize;
    for t in texts {
        count += 1;
        bytes = bytes.saturating_add(t.len());
        if count > MAX_REFERENCES {
            return Err(GuardError::TooManyReferences {
                limit: MAX_REFERENCES,
            });
        }
        if bytes > MAX_REFERENCED_BYTES {
            return Err(GuardError::ReferencesTooLarge {
                limit: MAX_REFERENCED_BYTES,
            });
        }
    }
    Ok(())
}

/// JSON (serde_json's rules): `"` strings with `\` escapes; no comments.
/// `Err(line)` where the nesting first passes `limit`.
fn scan_json(b: &[u8], limit: usize) -> Result<(), usize> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut i = 0usize;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => break,
                        c => {
                            if c == b'\n' {
                                line += 1;
                            }
                            i += 1;
                        }
                    }
                }
            }
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Err(line);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            b'\n' => line += 1,
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

/// Protobuf (protox's lexer): `"`/`'` strings end at their own quote or at a
/// newline (an escaped newline too: protox ends the string there with an
/// error); `//` and `#` line comments; `/* */` block comments.
fn scan_protobuf(b: &[u8], limit: usize) -> Result<(), usize> {
    let mut depth = 0usize;
    let mut line = 1usize;
    let mut i = 0usize;
    while i < b.len() {
        match b[i] {
            q @ (b'"' | b'\'') => {
                i += 1;
                while i < b.len() && b[i] != b'\n' {
                    if b[i] == b'\\' && b.get(i + 1).is_some_and(|&c| c != b'\n') {
                        i += 2;
                    } else if b[i] == q {
                        break;
                    } else {
                        i += 1;
                    }
                }
                // On the closing quote (skipped below) or the newline (counted next).
                if i < b.len() && b[i] == b'\n' {
                    continue;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'#' => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
                // On the `*` of `*/` (its `/` is skipped below) or past the end.
                i += 1;
            }
            b'{' | b'[' | b'(' | b'<' => {
                depth += 1;
                if depth > limit {
                    return Err(line);
                }
            }
            b'}' | b']' | b')' | b'>' => depth = depth.saturating_sub(1),
            b'\n' => line += 1,
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth_ok(t: SchemaType, s: &str) -> bool {
        check(t, s).is_ok()
    }

    fn nested(open: &str, close: &str, n: usize) -> String {
        format!("{}{}", open.repeat(n), close.repeat(n))
    }

    #[test]
    fn json_nesting_is_counted_outside_strings() {
        let t = SchemaType::Json;
        assert!(depth_ok(t, &nested("[", "]", MAX_JSON_NESTING)));
        assert!(!depth_ok(t, &nested("[", "]", MAX_JSON_NESTING + 1)));
        assert!(!depth_ok(t, &nested("{\"a\":", "}", MAX_JSON_NESTING + 1)));
        // Brackets in strings, escaped quotes included, do not count.
        let s = format!("{{\"a\":\"{}\\\"{}\"}}", "{".repeat(500), "[".repeat(500));
        assert!(depth_ok(t, &s), "{s}");
        // Closing brackets count down: siblings are not nesting.
        let siblings = format!("[{}]", "[],".repeat(10_000) + "[]");
        assert!(depth_ok(SchemaType::Avro, &siblings));
        let err = check(t, &format!("{{\n\n{}", "[".repeat(200))).unwrap_err();
        assert_eq!(
            err,
            GuardError::TooDeep {
                schema_type: t,
                limit: MAX_JSON_NESTING,
                constant: Constant::MaxJsonNesting,
                line: 3
            }
        );
        assert!(err.to_string().contains("MAX_JSON_NESTING"), "{err}");
        assert!(err.to_string().contains("line 3"), "{err}");
    }

    #[test]
    fn protobuf_nesting_follows_protox_lexing() {
        let t = SchemaType::Protobuf;
        assert!(depth_ok(t, &nested("{", "}", MAX_PROTOBUF_NESTING)));
        for (open, close) in [
            ("{", "}"),
            ("[", "]"),
            ("(", ")"),
            ("<", ">"),
            ("{ a: <", "> }"),
        ] {
            assert!(
                !depth_ok(t, &nested(open, close, MAX_PROTOBUF_NESTING + 1)),
                "{open}"
            );
        }
        // Strings and comments hide brackets...
        let hidden = format!(
            "message M {{ string a = 1 [default = \"{o}\\\"{o}\"]; }} // {o}\n/* {o}\n{o} */ # {o}\n'{o}'",
            o = "{".repeat(100)
        );
        assert!(depth_ok(t, &hidden), "{hidden}");
        // ...but a string ends at a newline, escaped or not, as protox ends it.
        for s in ["\"abc\n", "\"abc\\\n", "'abc\n"] {
            let text = format!("{s}{}", "{".repeat(MAX_PROTOBUF_NESTING + 1));
            assert!(!depth_ok(t, &text), "{text:?}");
        }
        // An unterminated block comment hides the rest; `/*` in a string does not start one.
        assert!(depth_ok(t, &format!("/* {}", "{".repeat(100))));
        let text = format!("\"/*\" {}", "{".repeat(MAX_PROTOBUF_NESTING + 1));
        assert!(!depth_ok(t, &text));
        // `/` alone is a token, not a comment.
        let text = format!("/ {}", "{".repeat(MAX_PROTOBUF_NESTING + 1));
        assert!(!depth_ok(t, &text));
        // Unbalanced closers never go below zero.
        let text = format!(
            "{}{}",
            "}".repeat(100),
            "{".repeat(MAX_PROTOBUF_NESTING + 1)
        );
        assert!(!depth_ok(t, &text));
    }

    #[test]
    fn size_and_reference_bounds() {
        let big = " ".repeat(MAX_SCHEMA_BYTES + 1);
        let err = check(SchemaType::Avro, &big).unwrap_err();
        assert!(matches!(err, GuardError::TooLarge { bytes, .. } if bytes == MAX_SCHEMA_BYTES + 1));
        assert!(err.to_string().contains("MAX_SCHEMA_BYTES"), "{err}");
        assert!(check(SchemaType::Avro, &big[1..]).is_ok());

        let many = vec!["x"; MAX_REFERENCES + 1];
        assert!(check_references(many[1..].iter().copied()).is_ok());
        assert_eq!(
            check_references(many.iter().copied()),
            Err(GuardError::TooManyReferences {
                limit: MAX_REFERENCES
            })
        );
        let mib = " ".repeat(MAX_SCHEMA_BYTES);
        let n = MAX_REFERENCED_BYTES / MAX_SCHEMA_BYTES;
        assert!(check_references(vec![mib.as_str(); n]).is_ok());
        assert_eq!(
            check_references(vec![mib.as_str(); n + 1]),
            Err(GuardError::ReferencesTooLarge {
                limit: MAX_REFERENCED_BYTES
            })
        );
    }
}
