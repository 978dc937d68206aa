//! The access log, through the real app, captured with `capture_logs` (which routes each
//! line to its own capture, so tests running beside it cannot hide a line).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::json;
use shared::testing::{Backend, TestApp, capture_logs};

#[test]
fn the_access_log_has_one_line_per_request_and_no_tokens_passwords_or_cursors() {
    let password = "correct horse battery staple";
    let ((token, cursor, request_id), logs) = capture_logs(async {
        let app = TestApp::start(Backend::Sqlite, local_server::routes).await;
        let registered = app
            .post("/v1/auth/register")
            .json(json!({"email": "log@example.com", "password": password, "name": "Log"}))
            .await;
        assert_eq!(registered.status, 201);
        let user_id = registered.json()["id"].as_str().unwrap().to_owned();
        let login = app
            .post("/v1/auth/login")
            .json(json!({"email": "log@example.com", "password": password}))
            .await;
        let token = login.json()["access_token"].as_str().unwrap().to_owned();
        for title in ["a", "b"] {
            app.post("/v1/tasks")
                .bearer(&token)
                .json(json!({"title": title}))
                .await;
        }
        let page = app.get("/v1/tasks?limit=1").bearer(&token).await;
        let cursor = page.json()["next_cursor"].as_str().unwrap().to_owned();
        let next = app
            .get(&format!("/v1/tasks?limit=1&cursor={cursor}"))
            .bearer(&token)
            .header("x-request-id", "access-log-probe")
            .await;
        assert_eq!(next.status, 200);
        (token, cursor, user_id)
    });
    let user_id = request_id;
    let completed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("request completed"))
        .collect();
    // register, login, two creates, two pages.
    assert_eq!(completed.len(), 6, "{logs}");
    let paged = completed
        .iter()
        .find(|l| l.contains("request_id=access-log-probe"))
        .unwrap_or_else(|| panic!("no access line for the probe in\n{logs}"));
    for field in [
        "method=GET",
        r#"route="/v1/tasks""#,
        "status=200",
        "latency_ms=",
        &format!("user_id={user_id}"),
    ] {
        assert!(paged.contains(field), "{field} missing from {paged}");
    }
    for secret in [token.as_str(), cursor.as_str(), password, "limit=1"] {
        assert!(!logs.contains(secret), "the log holds {secret}:\n{logs}");
    }
}
