//! The OpenAPI document at `/openapi.json` and the router agree: every documented
//! operation is routed and answers only with statuses the document lists, every
//! method the document leaves out of a path is refused with 405, and every route the
//! server's source declares is documented. (scripts/contract.sh then runs
//! schemathesis against the real binary for the bodies and headers.)

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::common::{http_raw, TestServer, KEY};

const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// Status and body text of one request without a body (metrics and snapshots are not
/// JSON, so the body is left as text).
async fn probe(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<(u16, String)> {
    let reply = http_raw(server.addr, method, path, headers).await?;
    let status = reply
        .head
        .split(' ')
        .nth(1)
        .context("no status line")?
        .parse()?;
    Ok((status, reply.body))
}

/// The documented operations: (path, method in capitals, documented statuses).
fn operations(document: &Value) -> Result<Vec<(String, String, BTreeSet<u16>)>> {
    let mut found = Vec::new();
    for (path, item) in document["paths"].as_object().context("no paths")? {
        for (method, operation) in item.as_object().context("path item")? {
            if method == "parameters" {
                continue;
            }
            let statuses = operation["responses"]
                .as_object()
                .context("no responses")?
                .keys()
                .map(|status| status.parse::<u16>())
                .collect::<Result<_, _>>()?;
            found.push((path.clone(), method.to_uppercase(), statuses));
        }
    }
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_routed_and_answers_as_documented() -> Result<()> {
    let server = TestServer::start().await?;
    let served = server.http("GET", "/openapi.json", None).await?;
    assert_eq!(served.status, 200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    let document = served.body;
    assert_eq!(document["openapi"], "3.1.0");
    let operations = operations(&document)?;
    assert!(operations.len() >= 10, "{operations:?}");
    for (path, method, statuses) in &operations {
        let concrete = path.replace("{key}", "doc-probe");
        for credentials in [&[("x-api-key", KEY)][..], &[]] {
            let (status, body) = probe(&server, method, &concrete, credentials).await?;
            assert!(
                statuses.contains(&status),
                "{method} {path} answered {status} (documented: {statuses:?}): {body}"
            );
            assert_ne!(
                body, r#"{"error":"Not found"}"#,
                "{method} {path} is documented but not routed"
            );
        }
    }
    // Methods a documented path does not list are refused, not silently served.
    let paths: BTreeSet<&String> = operations.iter().map(|(path, ..)| path).collect();
    for path in paths {
        let concrete = path.replace("{key}", "doc-probe");
        for method in METHODS {
            let documented = operations.iter().any(|(p, m, _)| p == path && m == method);
            if documented {
                continue;
            }
            let (status, body) = probe(&server, method, &concrete, &[("x-api-key", KEY)]).await?;
            assert_eq!(
                status, 405,
                "{method} {path} is not documented but answered {status}: {body}"
            );
        }
    }
    server.stop().await
}

/// Every `.route("PATH", …)` in the server's source is a documented path. The demo
/// page's files (web.rs) are not part of the API and are left out.
#[test]
fn every_route_in_the_source_is_documented() -> Result<()> {
    let document: Value = serde_json::from_str(include_str!("../../src/openapi.json"))?;
    let documented: BTreeSet<&str> = document["paths"]
        .as_object()
        .context("no paths")?
        .keys()
        .map(String::as_str)
        .collect();
    let source_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut routes = Vec::new();
    for entry in std::fs::read_dir(source_dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|ext| ext != "rs") || path.ends_with("web.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&path)?;
        for piece in text.split(".route(").skip(1) {
            let route = piece
                .trim_start()
                .strip_prefix('"')
                .and_then(|rest| rest.split('"').next())
                .with_context(|| format!("a route in {} is not a literal", path.display()))?;
            routes.push(route.to_owned());
        }
    }
    assert!(routes.len() >= 10, "found only {routes:?}");
    for route in &routes {
        // `/record/` is the empty key of `/record/{key}`, refused with a precise 400.
        let as_documented = match route.as_str() {
            "/record/" => "/record/{key}".to_owned(),
            other => other.replace("{*key}", "{key}"),
        };
        assert!(
            documented.contains(as_documented.as_str()),
            "the route {route} is not in src/openapi.json"
        );
    }
    Ok(())
}

/// `/ws` asked for without a WebSocket handshake says what it is, as JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_request_to_the_websocket_endpoint_gets_a_json_error() -> Result<()> {
    let server = TestServer::start().await?;
    let reply = server.http("GET", "/ws", None).await?;
    assert!(matches!(reply.status, 400 | 426), "{reply:?}");
    let text = reply.body["error"].as_str().context("no error text")?;
    assert!(
        text.starts_with("/ws is the WebSocket endpoint: connect with a WebSocket client"),
        "{text}"
    );
    server.stop().await
}
