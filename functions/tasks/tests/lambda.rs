//! The compiled `tasks` binary serves its routes through `lambda_http`, on Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::json;
use shared::{
    models::Role,
    testing::{Backend, lambda::LambdaFunction},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_binary_serves_crud_lists_and_idempotency_under_lambda() {
    if !Backend::Postgres.available() {
        return;
    }
    let function =
        LambdaFunction::start(Path::new(env!("CARGO_BIN_EXE_tasks")), "tasks", &[]).await;
    let user = function.create_user("lambda@example.com", Role::User).await;
    let bearer = format!("Bearer {}", user.token);
    let auth = ("authorization", bearer.as_str());
    let json_ct = ("content-type", "application/json");

    let body = json!({"title": "from lambda"}).to_string();
    let created = function
        .call(
            "POST",
            "/v1/tasks",
            &[auth, json_ct, ("idempotency-key", "k1")],
            Some(&body),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.header("etag"), Some("\"1\""));
    let id = created.json()["id"].as_str().unwrap().to_owned();
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/tasks/{id}").as_str())
    );

    let replay = function
        .call(
            "POST",
            "/v1/tasks",
            &[auth, json_ct, ("idempotency-key", "k1")],
            Some(&body),
        )
        .await;
    assert_eq!(replay.status, 201);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    assert_eq!(replay.body, created.body);

    for i in 0..3 {
        let b = json!({"title": format!("more {i}")}).to_string();
        function
            .call("POST", "/v1/tasks", &[auth, json_ct], Some(&b))
            .await;
    }
    let page = function
        .call("GET", "/v1/tasks?limit=2&sort=title", &[auth], None)
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let page = page.json();
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let cursor = page["next_cursor"].as_str().unwrap();
    let next = function
        .call(
            "GET",
            &format!("/v1/tasks?limit=2&sort=title&cursor={cursor}"),
            &[auth],
            None,
        )
        .await;
    assert_eq!(next.json()["items"].as_array().unwrap().len(), 2);

    let path = format!("/v1/tasks/{id}");
    let patch = json!({"completed": true}).to_string();
    let patched = function
        .call(
            "PATCH",
            &path,
            &[auth, json_ct, ("if-match", "\"1\"")],
            Some(&patch),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    assert_eq!(patched.header("etag"), Some("\"2\""));
    let stale = function
        .call(
            "PATCH",
            &path,
            &[auth, json_ct, ("if-match", "\"1\"")],
            Some(&patch),
        )
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.json()["code"], "precondition_failed");

    let unauthenticated = function.call("GET", "/v1/tasks", &[], None).await;
    assert_eq!(unauthenticated.status, 401);
    let other = function.call("GET", "/v1/admin/stats", &[auth], None).await;
    assert_eq!(other.status, 404);
    assert_eq!(other.json()["code"], "not_found");

    let deleted = function.call("DELETE", &path, &[auth], None).await;
    assert_eq!(deleted.status, 204);
}
