//! The OpenAPI 3.0 document of the protocol, generated from the wire types.
//!
//! Schemas come from the types themselves (schemars); the paths are listed
//! here next to [`crate::paths`]. `docs/openapi.json` is this document; the test
//! below fails when the two differ (`KRAWL_BLESS=1` rewrites the file).

use schemars::gen::{SchemaGenerator, SchemaSettings};
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::*;

fn reference<T: JsonSchema>(gen: &mut SchemaGenerator) -> Value {
    serde_json::to_value(gen.subschema_for::<T>()).unwrap_or(Value::Null)
}

fn json_body(schema: Value) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": schema } } })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn errors(codes: &[&str], error: &Value) -> Map<String, Value> {
    let mut map = Map::new();
    for code in codes {
        let description = match *code {
            "400" => "malformed request: a body or path parameter that does not parse (the message says which and why)",
            "401" => "missing or wrong token",
            "403" => "the token is valid but does not allow this: at registration, a label the bootstrap token does not grant (the message names the token and the label and says what to change)",
            "404" => "unknown agent, job or attempt",
            "409" => "conflict: a different body for a stored chunk, or an attempt that no longer holds the lease",
            "413" => "body or decoded chunk over the size limit",
            "429" => "too many requests: wait `Retry-After` seconds",
            "503" => "unavailable (starting or overloaded): wait `Retry-After` seconds",
            _ => "error",
        };
        map.insert(
            (*code).to_string(),
            json!({ "description": description, "content": { "application/json": { "schema": error } } }),
        );
    }
    map
}

/// Replaces the generic description of `code` in `op`'s responses.
fn describe(op: &mut Value, code: &str, description: &str) {
    if let Some(r) = op["responses"][code].as_object_mut() {
        r.insert("description".into(), Value::from(description));
    }
}

/// 404 on the agent's own endpoints: the control plane does not know this agent.
const UNKNOWN_AGENT: &str =
    "unknown agent (the control plane knows no agent holding this token any more): register again";

/// 404 on the attempt endpoints: not this agent's attempt (missing or another agent's, one
/// answer for both).
const ATTEMPT_GONE: &str = "this agent holds no such attempt (the job or attempt does not exist, or another agent holds it; one answer for both): the attempt is gone; the agent stops it without completing it, as on `409 lease_lost`";

/// 401 on the attempt endpoints.
const ATTEMPT_UNAUTHORIZED: &str = "missing token, or a token no agent holds (the answer names nothing); an agent that was using the token `register` issued treats it as the attempt gone and registers again";

fn operation(
    summary: &str,
    security: &str,
    params: &[&str],
    body: Option<Value>,
    ok: (&str, Value),
    error_codes: &[&str],
    error: &Value,
) -> Value {
    // A path parameter that does not parse (a non-numeric `attempt`, a name that is not UTF-8
    // once percent-decoded) or a JSON body that does not is a 400 on every operation; a body
    // over the server's limit is a 413.
    let mut codes = error_codes.to_vec();
    if !params.is_empty() || body.is_some() {
        codes.push("400");
    }
    if body.is_some() {
        codes.push("413");
    }
    let mut responses = errors(&codes, error);
    responses.insert(ok.0.to_string(), ok.1);
    let mut op = json!({
        "summary": summary,
        "security": [{ security: [] }],
        "parameters": params.iter().map(|p| {
            let schema = if *p == "attempt" || *p == "seq" {
                json!({ "type": "integer", "format": "uint32", "minimum": 0 })
            } else {
                json!({ "type": "string" })
            };
            json!({ "name": p, "in": "path", "required": true, "schema": schema })
        }).collect::<Vec<_>>(),
        "responses": responses,
    });
    if let (Some(body), Some(obj)) = (body, op.as_object_mut()) {
        obj.insert("requestBody".into(), body);
    }
    op
}

/// The whole OpenAPI document.
pub fn document() -> Value {
    let mut settings = SchemaSettings::openapi3();
    settings.definitions_path = "#/components/schemas/".into();
    let mut gen = SchemaGenerator::new(settings);
    let error = reference::<ErrorBody>(&mut gen);
    let agent = "agentToken";
    let admin = "adminToken";

    let register = operation(
        "Register an agent; returns its id and token",
        "bootstrapToken",
        &[],
        Some(json_body(reference::<RegisterRequest>(&mut gen))),
        (
            "200",
            json_response("registered", reference::<RegisterResponse>(&mut gen)),
        ),
        &["400", "401", "403", "429", "503"],
        &error,
    );
    let mut poll = operation(
        "Long-poll for a job (held up to ~30 s)",
        agent,
        &["agent_id"],
        Some(json_body(reference::<PollRequest>(&mut gen))),
        (
            "200",
            json_response("a job lease", reference::<JobLease>(&mut gen)),
        ),
        &["400", "401", "404", "429", "503"],
        &error,
    );
    if let Some(r) = poll["responses"].as_object_mut() {
        r.insert(
            "204".into(),
            json!({ "description": "no job within the wait; poll again" }),
        );
    }
    describe(&mut poll, "404", UNKNOWN_AGENT);
    let mut agent_heartbeat = operation(
        "Agent heartbeat; the answer may ask the agent to drain",
        agent,
        &["agent_id"],
        Some(json_body(reference::<AgentHeartbeat>(&mut gen))),
        (
            "200",
            json_response("ok", reference::<AgentHeartbeatResponse>(&mut gen)),
        ),
        &["401", "404", "429", "503"],
        &error,
    );
    describe(&mut agent_heartbeat, "404", UNKNOWN_AGENT);
    let mut job_heartbeat = operation(
        "Job heartbeat: progress, extends the lease; the answer may cancel the job",
        agent,
        &["job_id", "attempt"],
        Some(json_body(reference::<JobHeartbeat>(&mut gen))),
        (
            "200",
            json_response(
                "lease extended",
                reference::<JobHeartbeatResponse>(&mut gen),
            ),
        ),
        &["401", "404", "409", "429", "503"],
        &error,
    );
    describe(&mut job_heartbeat, "404", ATTEMPT_GONE);
    let mut put_chunk = operation(
        "Upload one result chunk (idempotent by job, attempt and sequence number)",
        agent,
        &["job_id", "attempt", "seq"],
        None,
        (
            "200",
            json_response(
                "stored (or already stored)",
                reference::<ChunkAck>(&mut gen),
            ),
        ),
        &["400", "401", "404", "409", "413", "429", "503"],
        &error,
    );
    if let Some(op) = put_chunk.as_object_mut() {
        op.insert(
            "requestBody".into(),
            json!({
                "required": true,
                "description": "NDJSON records (krawl-model envelopes), compressed as `Content-Encoding` says: zstd (preferred), gzip or identity",
                "content": { "application/x-ndjson": { "schema": { "type": "string", "format": "binary" } } }
            }),
        );
        if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
            params.push(
                json!({ "name": CHUNK_SHA256_HEADER, "in": "header", "required": true,
                "description": "sha256 (lower-case hex) of the decoded NDJSON bytes",
                "schema": { "type": "string", "pattern": "^[0-9a-f]{64}$" } }),
            );
            params.push(
                json!({ "name": CHUNK_RECORDS_HEADER, "in": "header", "required": true,
                "description": "number of records (lines) in the chunk",
                "schema": { "type": "integer", "minimum": 0 } }),
            );
        }
    }
    describe(&mut job_heartbeat, "401", ATTEMPT_UNAUTHORIZED);
    describe(&mut put_chunk, "404", ATTEMPT_GONE);
    describe(
        &mut put_chunk,
        "413",
        "the chunk body is over the size limit, decodes to more than the limit, or would take the attempt past its quota of chunks or stored bytes (the message names the limit and the setting): the job's result cannot be stored; the agent stops the job and completes it `failed`, and the reference control plane does not retry it",
    );
    describe(&mut put_chunk, "401", ATTEMPT_UNAUTHORIZED);
    let mut list_chunks = operation(
        "Chunks the server holds for an attempt (to resume an upload)",
        agent,
        &["job_id", "attempt"],
        None,
        (
            "200",
            json_response("chunks", reference::<ChunkList>(&mut gen)),
        ),
        &["401", "404", "429", "503"],
        &error,
    );
    describe(&mut list_chunks, "404", ATTEMPT_GONE);
    describe(&mut list_chunks, "401", ATTEMPT_UNAUTHORIZED);
    let mut complete = operation(
        "Complete an attempt: status, chunk and record counts, sha256 of the whole stream",
        agent,
        &["job_id", "attempt"],
        Some(json_body(reference::<CompleteRequest>(&mut gen))),
        (
            "200",
            json_response("accepted", reference::<CompleteResponse>(&mut gen)),
        ),
        &["400", "401", "404", "409", "429", "503"],
        &error,
    );
    describe(&mut complete, "404", ATTEMPT_GONE);
    describe(&mut complete, "401", ATTEMPT_UNAUTHORIZED);
    let submit = operation(
        "Submit a job",
        admin,
        &[],
        Some(json_body(reference::<SubmitJob>(&mut gen))),
        (
            "201",
            json_response("queued", reference::<JobView>(&mut gen)),
        ),
        &["400", "401"],
        &error,
    );
    let list_jobs = operation(
        "List jobs, newest first",
        admin,
        &[],
        None,
        ("200", json_response("jobs", reference::<JobList>(&mut gen))),
        &["401"],
        &error,
    );
    let get_job = operation(
        "One job with its attempts, progress and result summary",
        admin,
        &["job_id"],
        None,
        (
            "200",
            json_response("the job", reference::<JobView>(&mut gen)),
        ),
        &["401", "404"],
        &error,
    );
    let results = operation(
        "The accepted result stream of a succeeded job, as NDJSON",
        admin,
        &["job_id"],
        None,
        (
            "200",
            json!({ "description": "NDJSON, one krawl-model envelope per line",
                    "content": { "application/x-ndjson": { "schema": { "type": "string" } } } }),
        ),
        &["401", "404", "409"],
        &error,
    );
    let mut cancel = operation(
        "Cancel a job (the running agent is told on its next heartbeat)",
        admin,
        &["job_id"],
        None,
        (
            "200",
            json_response("the job", reference::<JobView>(&mut gen)),
        ),
        &["401", "404", "409"],
        &error,
    );
    describe(
        &mut cancel,
        "409",
        "the job already finished (succeeded, failed or cancelled): only queued or running jobs can be cancelled",
    );
    let agents = operation(
        "List registered agents",
        admin,
        &[],
        None,
        (
            "200",
            json_response("agents", reference::<AgentList>(&mut gen)),
        ),
        &["401"],
        &error,
    );
    let mut drain = operation(
        "Ask an agent to drain: it stops polling and finishes its jobs",
        admin,
        &["agent_id"],
        None,
        (
            "204",
            json!({ "description": "the agent is told on its next heartbeat" }),
        ),
        &["401", "404"],
        &error,
    );
    if let Some(r) = drain["responses"].as_object_mut() {
        r.remove("200");
    }

    let schemas = serde_json::to_value(gen.take_definitions()).unwrap_or_default();
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "krawl agent ⇄ control-plane protocol",
            "version": PROTOCOL_VERSION,
            "description": "Every connection is opened by the agent (outbound HTTPS only). See docs/protocol.md."
        },
        "paths": {
            paths::REGISTER: { "post": register },
            "/v1/agents/{agent_id}/poll": { "post": poll },
            "/v1/agents/{agent_id}/heartbeat": { "post": agent_heartbeat },
            "/v1/jobs/{job_id}/attempts/{attempt}/heartbeat": { "post": job_heartbeat },
            "/v1/jobs/{job_id}/attempts/{attempt}/chunks": { "get": list_chunks },
            "/v1/jobs/{job_id}/attempts/{attempt}/chunks/{seq}": { "put": put_chunk },
            "/v1/jobs/{job_id}/attempts/{attempt}/complete": { "post": complete },
            paths::JOBS: { "post": submit, "get": list_jobs },
            "/v1/jobs/{job_id}": { "get": get_job },
            "/v1/jobs/{job_id}/results": { "get": results },
            "/v1/jobs/{job_id}/cancel": { "post": cancel },
            paths::AGENTS: { "get": agents },
            "/v1/agents/{agent_id}/drain": { "post": drain },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bootstrapToken": { "type": "http", "scheme": "bearer", "description": "registration token, given to agents by the operator" },
                "agentToken": { "type": "http", "scheme": "bearer", "description": "returned by register; or an OAuth2 client-credentials access token" },
                "adminToken": { "type": "http", "scheme": "bearer", "description": "for the job API of the control plane's users" }
            }
        }
    })
}

/// The document as committed in `docs/openapi.json`.
pub fn document_string() -> String {
    let mut s = serde_json::to_string_pretty(&document()).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
    }

    #[test]
    fn committed_openapi_matches_the_types() {
        let generated = document_string();
        let path = committed_path();
        if std::env::var_os("KRAWL_BLESS").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is out of date with the protocol types; \
             run `KRAWL_BLESS=1 cargo test -p krawl-protocol` and commit the result"
        );
    }

    #[test]
    fn not_found_says_what_the_agent_does() {
        let doc = document();
        let not_found = |path: &str| {
            doc["paths"][path]["post"]["responses"]["404"]["description"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        for path in [
            "/v1/agents/{agent_id}/poll",
            "/v1/agents/{agent_id}/heartbeat",
        ] {
            assert!(not_found(path).contains("register again"), "{path}");
        }
        let hb = not_found("/v1/jobs/{job_id}/attempts/{attempt}/heartbeat");
        assert!(
            hb.contains("attempt is gone") && hb.contains("lease_lost"),
            "{hb}"
        );
    }

    #[test]
    fn every_path_helper_is_documented() {
        let doc = document();
        let documented: Vec<&String> = doc["paths"].as_object().unwrap().keys().collect();
        for path in [
            paths::REGISTER.to_string(),
            paths::poll("{agent_id}"),
            paths::agent_heartbeat("{agent_id}"),
            paths::job_heartbeat("{job_id}", 0).replace("/0/", "/{attempt}/"),
            paths::chunks("{job_id}", 0).replace("/0/", "/{attempt}/"),
            paths::chunk("{job_id}", 0, 7)
                .replace("/0/", "/{attempt}/")
                .replace("/7", "/{seq}"),
            paths::complete("{job_id}", 0).replace("/0/", "/{attempt}/"),
            paths::JOBS.to_string(),
            paths::job("{job_id}"),
            paths::job_results("{job_id}"),
            paths::job_cancel("{job_id}"),
            paths::AGENTS.to_string(),
            paths::agent_drain("{agent_id}"),
        ] {
            assert!(
                documented.contains(&&path),
                "{path} is not in the OpenAPI document"
            );
        }
        // Every referenced schema exists.
        let text = serde_json::to_string(&doc).unwrap();
        for piece in text.split("#/components/schemas/").skip(1) {
            let name = piece.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling $ref to {name}"
            );
        }
    }
}
