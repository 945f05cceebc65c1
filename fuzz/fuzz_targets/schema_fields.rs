//! Schema texts as a hostile Schema Registry serves them, through the guard and the field
//! parsers of every language: never a panic, a stack overflow or an unbounded allocation.
//!
//! Input: the first byte picks the language (Avro, JSON Schema, Protobuf); the rest is the
//! schema text, then optionally referenced schemas, each after a NUL byte as
//! `name\nschema` (a Protobuf import path, an Avro name, a JSON `$ref`).
#![no_main]

use krawl_schema_registry::fields::{
    parse_fields, record_names, FieldsError, Referenced, SchemaType, MAX_FIELDS,
    MAX_TYPE_NAME_BYTES,
};
use krawl_schema_registry::guard;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let ty = match first % 3 {
        0 => SchemaType::Avro,
        1 => SchemaType::Json,
        _ => SchemaType::Protobuf,
    };
    let text = String::from_utf8_lossy(rest);
    let mut parts = text.split('\0');
    let schema = parts.next().unwrap_or_default();
    let refs: Vec<Referenced> = parts
        .enumerate()
        .map(|(i, p)| match p.split_once('\n') {
            Some((name, schema)) => Referenced {
                name: name.to_owned(),
                schema: schema.to_owned(),
            },
            None => Referenced {
                name: format!("ref{i}.proto"),
                schema: p.to_owned(),
            },
        })
        .collect();

    let guarded = guard::check(ty, schema);
    match parse_fields(ty, schema, &refs) {
        Ok(fields) => {
            assert!(guarded.is_ok(), "parsed a schema the guard refuses");
            assert!(fields.len() <= MAX_FIELDS);
            for f in &fields {
                assert!(f.type_name.len() <= MAX_TYPE_NAME_BYTES + '…'.len_utf8());
            }
        }
        Err(e) => {
            if let Err(g) = &guarded {
                assert!(
                    matches!(&e, FieldsError::Refused { reference: None, source } if source == g),
                    "the guard runs first: {e}"
                );
            }
            let _ = e.to_string();
        }
    }
    if let Ok(names) = record_names(ty, schema) {
        assert!(guarded.is_ok());
        let _ = names;
    }
});
