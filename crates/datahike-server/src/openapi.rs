//! `/swagger.json`: an OpenAPI 3.1 document generated from the library's API description
//! ([`datahike::api::OPS`]): one path per remotely supported operation, GET for the pure
//! ones and POST for the rest, the body being the vector of the arguments of one arity.

use crate::format::Format;
use crate::WRITER_ROUTES;
use datahike::api::{Op, Param, OPS};
use serde_json::{json, Map, Value};

/// The JSON schema of one parameter.
fn param_schema(param: Param) -> Value {
    let kind = match param {
        Param::Config | Param::TxMeta | Param::RangeArgs | Param::PullArgs | Param::Options => "object",
        Param::Conn | Param::Db => "object",
        Param::TxVector | Param::Entities | Param::Pattern | Param::EntityIds | Param::Parents => "array",
        Param::Instant => "integer",
        Param::Path => "string",
        _ => return json!({ "description": param.expected() }),
    };
    json!({ "type": kind, "description": param.expected() })
}

/// The request body: one tuple schema per arity.
fn body_schema(op: &Op) -> Value {
    let arities: Vec<Value> = op
        .arities
        .iter()
        .map(|params| {
            let (fixed, rest) = match params.last() {
                Some(last) if last.is_rest() => (&params[..params.len() - 1], Some(*last)),
                _ => (&params[..], None),
            };
            let mut schema = json!({
                "type": "array",
                "prefixItems": fixed.iter().map(|p| param_schema(*p)).collect::<Vec<_>>(),
                "minItems": fixed.len(),
            });
            match rest {
                Some(rest) => schema["items"] = param_schema(rest),
                None => {
                    schema["items"] = Value::Bool(false);
                    schema["maxItems"] = json!(fixed.len());
                }
            }
            schema
        })
        .collect();
    match arities.len() {
        1 => arities.into_iter().next().unwrap_or(Value::Null),
        _ => json!({ "oneOf": arities }),
    }
}

fn content(schema: &Value) -> Value {
    let mut content = Map::new();
    for format in Format::ALL {
        content.insert(format.mime().to_string(), json!({ "schema": schema }));
    }
    Value::Object(content)
}

fn operation(op: &Op, route: &str, doc: &str) -> Value {
    let error = json!({
        "description": "an error {:msg .. :ex-data {:error code ..}}: 4xx for bad input, 5xx for faults",
        "content": content(&json!({ "type": "object" })),
    });
    json!({
        "operationId": route.trim_start_matches('/'),
        "summary": doc,
        "description": format!("datahike.api/{}. Returns {}. Example (dthk): {}", op.api, op.returns.describe(), op.example),
        "tags": [op.category.title()],
        "requestBody": { "required": !op.arities.iter().any(|a| a.is_empty()), "content": content(&body_schema(op)) },
        "responses": {
            "200": { "description": op.returns.describe(), "content": content(&json!({})) },
            "400": error,
            "401": { "description": "no or a wrong `Authorization: token ...` header" },
            "413": { "description": "the body exceeds the server's :max-body-bytes" },
            "500": error,
        },
        "security": [{ "token": [] }],
    })
}

/// The document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for op in OPS.iter().filter(|op| op.remote && op.run.is_some()) {
        let method = if op.pure { "get" } else { "post" };
        paths.insert(op.route(), json!({ method: operation(op, &op.route(), op.doc) }));
    }
    for (route, name) in WRITER_ROUTES {
        if let Some(op) = OPS.iter().find(|op| op.name == name) {
            let doc = format!("The remote writer's {name}: the body is [config & arguments]; the server commits.");
            paths.insert(route.to_string(), json!({ "post": operation(op, route, &doc) }));
        }
    }
    paths.insert(
        "/subscribe".into(),
        json!({ "get": {
            "operationId": "subscribe",
            "summary": "Every transaction report of a database as server-sent events (text/event-stream), event id = transaction id.",
            "parameters": [
                { "name": "config", "in": "query", "required": true, "schema": { "type": "string" }, "description": "the database's config map as EDN" },
                { "name": "since", "in": "query", "schema": { "type": "integer" }, "description": "resume after this transaction id (or send Last-Event-ID)" },
                { "name": "format", "in": "query", "schema": { "enum": ["edn", "json"] }, "description": "the format of each event's data" },
            ],
            "responses": { "200": { "description": "the event stream" } },
            "security": [{ "token": [] }],
        }}),
    );
    paths.insert(
        "/stats".into(),
        json!({ "get": { "operationId": "stats", "summary": "Requests and latency percentiles per route; transactions, commit time, log appends and cache hit rate per database.", "responses": { "200": { "description": "a map" } }, "security": [{ "token": [] }] } }),
    );
    paths.insert(
        "/health".into(),
        json!({ "get": { "operationId": "health", "summary": "200 while the server serves; no token needed.", "responses": { "200": { "description": "{:status :ok}" } } } }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "datahike-rs server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Datahike's HTTP API: one route per operation, the body the vector of its arguments. A database argument is a config map or a handle returned by an earlier call.",
        },
        "components": { "securitySchemes": { "token": { "type": "apiKey", "in": "header", "name": "Authorization", "description": "token <secret>" } } },
        "paths": paths,
    })
}
