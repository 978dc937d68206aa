//! The compiled `admin` binary serves its routes through `lambda_http`, on Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use shared::{
    models::Role,
    testing::{Backend, lambda::LambdaFunction},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_binary_serves_its_routes_under_lambda() {
    if !Backend::Postgres.available() {
        return;
    }
    let function =
        LambdaFunction::start(Path::new(env!("CARGO_BIN_EXE_admin")), "admin", &[]).await;
    let root = function.create_user("root@example.com", Role::Admin).await;
    let user = function.create_user("user@example.com", Role::User).await;
    let bearer = format!("Bearer {}", root.token);
    let auth = ("authorization", bearer.as_str());

    let stats = function.call("GET", "/v1/admin/stats", &[auth], None).await;
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.json()["users"], 2);

    let path = format!("/v1/admin/users/{}", user.id);
    let disabled = function
        .call(
            "PATCH",
            &path,
            &[auth, ("content-type", "application/json")],
            Some(r#"{"disabled": true}"#),
        )
        .await;
    assert_eq!(disabled.status, 200, "{}", disabled.body);
    assert_eq!(disabled.json()["disabled"], true);
    let audit = function.call("GET", "/v1/admin/audit", &[auth], None).await;
    assert_eq!(audit.json()["items"][0]["action"], "user.disabled");

    let user_bearer = format!("Bearer {}", user.token);
    let refused = function
        .call(
            "GET",
            "/v1/admin/stats",
            &[("authorization", &user_bearer)],
            None,
        )
        .await;
    assert_eq!(refused.status, 401);
    let last = function
        .call(
            "PATCH",
            &format!("/v1/admin/users/{}", root.id),
            &[auth, ("content-type", "application/json")],
            Some(r#"{"role": "user"}"#),
        )
        .await;
    assert_eq!(last.status, 409);
    assert_eq!(last.json()["code"], "last_admin");
    let other = function.call("GET", "/health", &[], None).await;
    assert_eq!(other.status, 404);
}
