//! The REST routes of PROTOCOL.md A6, CORS, and `/health`.

use std::sync::Arc;

use anyhow::Result;
use serde_json::json;

use crate::common::{http, TestServer, KEY};
use crate::support;

#[tokio::test]
async fn records_round_trip_with_encoded_keys() -> Result<()> {
    let server = TestServer::start().await?;
    let reply = server
        .http(
            "POST",
            "/record",
            Some(r#"{"key":"dir/file name","value":"v1","partialUpdate":null}"#),
        )
        .await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["success"], true);
    assert!(reply.body["message"].is_string());
    let reply = server
        .http("GET", "/record/dir%2Ffile%20name", None)
        .await?;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["key"], "dir/file name");
    assert_eq!(reply.body["value"], "v1");
    // Decoded exactly once: %252F is the literal text %2F.
    server
        .http("POST", "/record", Some(r#"{"key":"lit%2F","value":"x"}"#))
        .await?;
    assert_eq!(
        server.http("GET", "/record/lit%252F", None).await?.body["value"],
        "x"
    );
    let reply = server
        .http("DELETE", "/record/dir%2Ffile%20name", None)
        .await?;
    assert_eq!((reply.status, &reply.body["success"]), (200, &json!(true)));
    let reply = server
        .http("GET", "/record/dir%2Ffile%20name", None)
        .await?;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body, json!({"error": "Record not found"}));
    assert_eq!(
        server.http("DELETE", "/record/nothing", None).await?.status,
        404
    );
    server.stop().await
}

#[tokio::test]
async fn partial_update_patches() -> Result<()> {
    let server = TestServer::start().await?;
    server
        .http(
            "POST",
            "/record",
            Some(r#"{"key":"u","value":"{\"name\":\"Ada\",\"age\":36}"}"#),
        )
        .await?;
    let reply = server
        .http(
            "POST",
            "/record",
            Some(r#"{"key":"u","value":"{\"age\":37}","partialUpdate":true}"#),
        )
        .await?;
    assert_eq!(reply.status, 200);
    let stored = server.http("GET", "/record/u", None).await?.body["value"].clone();
    let stored: serde_json::Value = serde_json::from_str(stored.as_str().unwrap_or_default())?;
    assert_eq!(stored, json!({"name": "Ada", "age": 37}));
    server.stop().await
}

#[tokio::test]
async fn atomic_is_routed_by_method() -> Result<()> {
    let server = TestServer::start().await?;
    let reply = server
        .http(
            "POST",
            "/record/atomic",
            Some(r#"{"key":"visits","increment":3}"#),
        )
        .await?;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["success"], true);
    assert_eq!(reply.body["key"], "visits");
    assert_eq!(reply.body["result"], 3);
    let reply = server
        .http(
            "POST",
            "/record/atomic",
            Some(r#"{"key":"visits","increment":-5}"#),
        )
        .await?;
    assert_eq!(reply.body["result"], -2);
    // GET and DELETE of /record/atomic are about the key named "atomic".
    assert_eq!(
        server.http("GET", "/record/atomic", None).await?.status,
        404
    );
    server
        .http(
            "POST",
            "/record",
            Some(r#"{"key":"atomic","value":"plain"}"#),
        )
        .await?;
    assert_eq!(
        server.http("GET", "/record/atomic", None).await?.body["value"],
        "plain"
    );
    assert_eq!(
        server.http("DELETE", "/record/atomic", None).await?.status,
        200
    );
    // ATOMIC on a non-number is a 400 that changes nothing.
    server
        .http("POST", "/record", Some(r#"{"key":"t","value":"abc"}"#))
        .await?;
    let reply = server
        .http(
            "POST",
            "/record/atomic",
            Some(r#"{"key":"t","increment":1}"#),
        )
        .await?;
    assert_eq!(reply.status, 400);
    assert_eq!(
        server.http("GET", "/record/t", None).await?.body["value"],
        "abc"
    );
    server.stop().await
}

#[tokio::test]
async fn range_decodes_double_encoded_bounds() -> Result<()> {
    let server = TestServer::start().await?;
    for key in ["a b+c/1", "a b+c/2", "a b+c/3", "zzz"] {
        let body = json!({"key": key, "value": key}).to_string();
        assert_eq!(
            server.http("POST", "/record", Some(&body)).await?.status,
            200
        );
    }
    // What @hpkv/rest-client sends: encodeURIComponent, then URLSearchParams.
    let path = "/records?startKey=a%2520b%252Bc%252F1&endKey=a%2520b%252Bc%252F2&limit=10";
    let reply = server.http("GET", path, None).await?;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body["count"], 2);
    assert_eq!(reply.body["truncated"], false);
    assert_eq!(reply.body["records"][0]["key"], "a b+c/1");
    assert_eq!(reply.body["records"][1]["value"], "a b+c/2");
    // Singly encoded bounds work too, and limit pages.
    let reply = server
        .http("GET", "/records?startKey=a&endKey=z&limit=2", None)
        .await?;
    assert_eq!(
        (reply.body["count"].clone(), reply.body["truncated"].clone()),
        (json!(2), json!(true))
    );
    let reply = server.http("GET", "/records?startKey=a", None).await?;
    assert_eq!(reply.status, 400);
    assert!(reply.body["error"]
        .as_str()
        .unwrap_or_default()
        .contains("endKey"));
    let reply = server
        .http("GET", "/records?startKey=a&endKey=b&limit=ten", None)
        .await?;
    assert_eq!(reply.status, 400);
    // A bound is refused under the name REST gives it.
    let reply = server
        .http("GET", "/records?startKey=&endKey=b", None)
        .await?;
    assert_eq!(
        (reply.status, reply.body["error"].clone()),
        (400, json!("startKey must not be empty"))
    );
    server.stop().await
}

#[tokio::test]
async fn errors_are_json_with_the_right_status() -> Result<()> {
    let server = TestServer::start().await?;
    let no_key = http(server.addr, "GET", "/record/x", &[], None).await?;
    assert_eq!(no_key.status, 401);
    assert!(no_key.body["error"].is_string());
    let bad_key = http(
        server.addr,
        "GET",
        "/record/x",
        &[("x-api-key", "nope")],
        None,
    )
    .await?;
    assert_eq!(
        (bad_key.status, &bad_key.body["error"]),
        (401, &json!("Invalid API key"))
    );
    for (body, text) in [
        ("{", "Invalid JSON"),
        ("[]", "must be a JSON object"),
        (r#"{"value":"v"}"#, "Missing field 'key'"),
        (r#"{"key":"k","value":""}"#, "Value must not be empty"),
        (r#"{"key":"","value":"v"}"#, "Key must not be empty"),
        (r#"{"key":"k","value":7}"#, "Field 'value' must be a string"),
    ] {
        let reply = server.http("POST", "/record", Some(body)).await?;
        assert_eq!(reply.status, 400, "{body}");
        let error = reply.body["error"].as_str().unwrap_or_default();
        assert!(error.contains(text), "{body}: {error}");
    }
    let big = json!({"key": "k", "value": "v".repeat(102_400)}).to_string();
    assert_eq!(
        server.http("POST", "/record", Some(&big)).await?.status,
        400
    );
    assert_eq!(
        server.store.revision(),
        0,
        "no failed request wrote anything"
    );
    assert_eq!(server.http("PUT", "/record/x", None).await?.status, 405);
    assert_eq!(server.http("GET", "/nowhere", None).await?.status, 404);
    // Only /record/atomic takes a POST under /record/; other record paths are read
    // and deleted, so a POST there is a method the route does not allow.
    assert_eq!(
        server
            .http("POST", "/record/other", Some("{}"))
            .await?
            .status,
        405
    );
    server.stop().await
}

#[tokio::test]
async fn bodies_without_content_type_are_accepted() -> Result<()> {
    let server = TestServer::start().await?;
    // The harness sends no Content-Type at all.
    let reply = server
        .http("POST", "/record", Some(r#"{"key":"k","value":"v"}"#))
        .await?;
    assert_eq!(reply.status, 200);
    let with_type = http(
        server.addr,
        "POST",
        "/record",
        &[("x-api-key", KEY), ("content-type", "text/plain")],
        Some(r#"{"key":"k2","value":"v"}"#),
    )
    .await?;
    assert_eq!(with_type.status, 200);
    server.stop().await
}

#[tokio::test]
async fn cors_on_every_route_and_preflight() -> Result<()> {
    let server = TestServer::start().await?;
    for path in [
        "/token/websocket",
        "/record",
        "/record/x",
        "/records",
        "/anything",
    ] {
        let preflight = http(
            server.addr,
            "OPTIONS",
            path,
            &[
                ("origin", "https://app.example"),
                ("access-control-request-method", "POST"),
            ],
            None,
        )
        .await?;
        assert_eq!(preflight.status, 204, "{path}");
        assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
        let headers = preflight
            .header("access-control-allow-headers")
            .unwrap_or_default();
        assert!(headers.contains("x-api-key") && headers.contains("Content-Type"));
        let methods = preflight
            .header("access-control-allow-methods")
            .unwrap_or_default();
        for method in ["GET", "POST", "DELETE", "OPTIONS"] {
            assert!(methods.contains(method), "{methods}");
        }
    }
    let error = http(server.addr, "GET", "/record/x", &[], None).await?;
    assert_eq!(error.header("access-control-allow-origin"), Some("*"));
    let ok = server.http("GET", "/health", None).await?;
    assert_eq!(ok.header("access-control-allow-origin"), Some("*"));
    server.stop().await
}

#[tokio::test]
async fn health_needs_no_key_and_reports_the_revision() -> Result<()> {
    let server = TestServer::start().await?;
    server
        .http("POST", "/record", Some(r#"{"key":"k","value":"v"}"#))
        .await?;
    let reply = http(server.addr, "GET", "/health", &[], None).await?;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["status"], "ok");
    assert_eq!(reply.body["store"], "memory");
    assert_eq!(reply.body["revision"], 1);
    server.stop().await
}

/// Over PostgreSQL, `/health` says so, and answers 503 once the database is gone, so a
/// load balancer stops sending clients to a node that cannot serve them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_the_store_and_503_when_its_database_is_unreachable() -> Result<()> {
    let database = support::TestDatabase::create().await;
    let store = ripplekv_storage::PostgresStore::connect(&database.url, Default::default()).await?;
    let config = ripplekv_server::ServerConfig::new(vec![KEY.into()], b"secret".to_vec());
    let server = TestServer::start_with(config, Some(Arc::new(store))).await?;
    let reply = http(server.addr, "GET", "/health", &[], None).await?;
    assert_eq!(
        (reply.status, reply.body["store"].clone()),
        (200, json!("postgres"))
    );
    drop(database); // drops the database, closing every connection to it
    let reply = http(server.addr, "GET", "/health", &[], None).await?;
    assert_eq!(reply.status, 503, "{}", reply.body);
    assert_eq!(reply.body["status"], "unavailable");
    server.stop().await
}
