//! A hostile-input battery against every router the local server mounts, on SQLite and
//! Postgres: each request below must be answered with a 4xx problem+json, and the database
//! must be exactly as it was (counted by the admin statistics and the user's task list).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::{Method, StatusCode};
use serde_json::Value;
use shared::{
    models::Role,
    testing::{
        Backend, TestApp, TestResponse, TestUser,
        smtp::{SmtpSink, token_in},
    },
};

struct Case {
    what: String,
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Case {
    fn new(what: impl Into<String>, method: Method, path: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            method,
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn json(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.header("content-type", "application/json")
    }
}

async fn send(app: &TestApp, user: &TestUser, case: &Case) -> TestResponse {
    let own_authorization = case.headers.iter().any(|(n, _)| n == "authorization");
    let request = app
        .request(case.method.clone(), &case.path)
        .maybe_bearer((!own_authorization).then_some(user.token.as_str()));
    case.headers
        .iter()
        .fold(request, |request, (name, value)| {
            request.header(name, value)
        })
        .body(case.body.clone())
        .await
}

/// Everything a hostile request could have changed.
async fn snapshot(app: &TestApp, user: &TestUser) -> (String, Value, i64, Value) {
    let stats = app.state.store.admin().stats().await.unwrap();
    let list = app.get("/v1/tasks?limit=100").bearer(&user.token).await;
    assert_eq!(list.status, StatusCode::OK);
    let outbox = app.state.store.mail().outbox_depth().await.unwrap();
    let me = app.get("/v1/auth/me").bearer(&user.token).await;
    assert_eq!(me.status, StatusCode::OK);
    (
        format!("{stats:?}"),
        list.json()["items"].clone(),
        outbox,
        me.json(),
    )
}

fn nested(depth: usize) -> String {
    format!(
        r#"{{"title": {}"x"{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    )
}

const FORGOT: &str = "/v1/auth/password/forgot";
const RESET: &str = "/v1/auth/password/reset";
const VERIFY: &str = "/v1/auth/email/verify";

fn battery(task: &str) -> Vec<Case> {
    let task_path = format!("/v1/tasks/{task}");
    let big = "a".repeat(64 * 1024);
    vec![
        // Paths: NUL, invalid UTF-8, not an id, absurdly long.
        Case::new("NUL in a path id", Method::GET, "/v1/tasks/%00"),
        Case::new(
            "invalid UTF-8 in a path id",
            Method::GET,
            "/v1/tasks/%FF%FE",
        ),
        Case::new(
            "a path id that is no UUID",
            Method::DELETE,
            "/v1/tasks/not-a-uuid",
        ),
        Case::new(
            "a long path id",
            Method::GET,
            format!("/v1/tasks/{}", "9".repeat(4000)),
        ),
        Case::new(
            "admin: NUL in a path id",
            Method::GET,
            "/v1/admin/users/%00",
        ),
        // Queries: NUL, invalid UTF-8, numbers beyond any integer, repeats, odd dates.
        Case::new("NUL in q", Method::GET, "/v1/tasks?q=%00"),
        Case::new("invalid UTF-8 in q", Method::GET, "/v1/tasks?q=%FF%FE"),
        Case::new(
            "a limit beyond u64",
            Method::GET,
            "/v1/tasks?limit=99999999999999999999999",
        ),
        Case::new("a negative limit", Method::GET, "/v1/tasks?limit=-1"),
        Case::new(
            "a repeated sort",
            Method::GET,
            "/v1/tasks?sort=title&sort=-title",
        ),
        Case::new(
            "a tampered cursor",
            Method::GET,
            format!("/v1/tasks?cursor={}", "A".repeat(2000)),
        ),
        Case::new(
            "an overflowing due_before",
            Method::GET,
            "/v1/tasks?due_before=9999-12-31T23:59:59-23:59",
        ),
        Case::new(
            "admin: invalid UTF-8 in q",
            Method::GET,
            "/v1/admin/users?q=%FF",
        ),
        Case::new(
            "admin: a limit beyond u64",
            Method::GET,
            "/v1/admin/users?limit=184467440737095516160",
        ),
        Case::new(
            "admin: a tampered cursor",
            Method::GET,
            "/v1/admin/audit?cursor=%00%00",
        ),
        // Bodies: invalid UTF-8, NUL, deep nesting, huge numbers, duplicate keys.
        Case::new("invalid UTF-8 in a body", Method::POST, "/v1/tasks")
            .json(b"{\"title\": \"\xff\xfe\"}".to_vec()),
        Case::new("NUL in a title", Method::POST, "/v1/tasks").json(r#"{"title": "a\u0000b"}"#),
        Case::new("JSON nested 100,000 deep", Method::POST, "/v1/tasks").json(nested(100_000)),
        Case::new("JSON nested 200 deep", Method::POST, "/v1/tasks").json(nested(200)),
        Case::new("a number beyond f64", Method::POST, "/v1/tasks")
            .json(r#"{"title": "x", "completed": 1e400}"#),
        Case::new("a number beyond i64 as a title", Method::POST, "/v1/tasks")
            .json(r#"{"title": 99999999999999999999999999}"#),
        Case::new("duplicate keys", Method::POST, "/v1/tasks")
            .json(r#"{"title": "a", "title": "b"}"#),
        Case::new("an overflowing due_date", Method::POST, "/v1/tasks")
            .json(r#"{"title": "x", "due_date": "9999-12-31T23:59:59-23:59"}"#),
        Case::new(
            "a PATCH to an overflowing due_date",
            Method::PATCH,
            task_path.clone(),
        )
        .json(r#"{"due_date": "9999-12-31T23:59:59-23:59"}"#),
        Case::new("a body that is only whitespace", Method::POST, "/v1/tasks").json("   "),
        Case::new("a JSON array body", Method::POST, "/v1/tasks").json("[]"),
        Case::new(
            "admin: duplicate keys",
            Method::PATCH,
            format!("/v1/admin/users/{task}"),
        )
        .json(r#"{"role": "admin", "role": "user"}"#),
        Case::new("register: nested body", Method::POST, "/v1/auth/register").json(nested(5000)),
        Case::new("login: NUL in the email", Method::POST, "/v1/auth/login")
            .json(r#"{"email": "a\u0000@example.com", "password": "whatever it is"}"#),
        Case::new("refresh: a 64 KB token", Method::POST, "/v1/auth/refresh")
            .json(format!(r#"{{"refresh_token": "{big}"}}"#)),
        // Account mail: nothing queued, no token spent, no address verified.
        Case::new("forgot: NUL in the email", Method::POST, FORGOT)
            .json(r#"{"email": "victim\u0000@example.com"}"#),
        Case::new("forgot: a 64 KB email", Method::POST, FORGOT)
            .json(format!(r#"{{"email": "{big}@example.com"}}"#)),
        Case::new("forgot: a second recipient", Method::POST, FORGOT)
            .json(r#"{"email": "victim@example.com,attacker@example.com"}"#),
        Case::new("forgot: a display name and address", Method::POST, FORGOT)
            .json(r#"{"email": "Victim <attacker@example.com>"}"#),
        Case::new("forgot: the email as an array", Method::POST, FORGOT)
            .json(r#"{"email": ["victim@example.com"]}"#),
        Case::new("forgot: invalid UTF-8", Method::POST, FORGOT)
            .json(&b"{\"email\": \"\xff@example.com\"}"[..]),
        Case::new("forgot: an unknown field", Method::POST, FORGOT)
            .json(r#"{"email": "victim@example.com", "redirect": "https://evil.example"}"#),
        Case::new("reset: a 64 KB token", Method::POST, RESET).json(format!(
            r#"{{"token": "{big}", "new_password": "a long enough new password"}}"#
        )),
        Case::new("reset: NUL in the token", Method::POST, RESET)
            .json(r#"{"token": "abc\u0000", "new_password": "a long enough new password"}"#),
        Case::new("reset: a 64 KB password", Method::POST, RESET)
            .json(format!(r#"{{"token": "abc", "new_password": "{big}"}}"#)),
        Case::new("reset: no password", Method::POST, RESET).json(r#"{"token": "abc"}"#),
        Case::new(
            "verify: a number beyond i64 as the token",
            Method::POST,
            VERIFY,
        )
        .json(r#"{"token": 99999999999999999999999}"#),
        Case::new("verify: nested body", Method::POST, VERIFY).json(nested(5000)),
        Case::new("verify: an empty token", Method::POST, VERIFY).json(r#"{"token": ""}"#),
        Case::new(
            "verification: a forged bearer",
            Method::POST,
            "/v1/auth/email/verification",
        )
        .header("authorization", "Bearer e30.e30.AAAA"),
        // Headers the API reads, at and beyond their size limits.
        Case::new("a 64 KB bearer token", Method::GET, "/v1/auth/me")
            .header("authorization", format!("Bearer {big}")),
        Case::new(
            "If-Match of 35,000 entries",
            Method::PATCH,
            task_path.clone(),
        )
        .header(
            "if-match",
            (1..=35_000)
                .map(|i| format!("\"{i}\""))
                .collect::<Vec<_>>()
                .join(","),
        )
        .json(r#"{"title": "changed"}"#),
        Case::new("If-Match just over 4 KB", Method::DELETE, task_path.clone())
            .header("if-match", format!("\"1\",{}", " ".repeat(4096))),
        Case::new(
            "an Idempotency-Key of 256 characters",
            Method::POST,
            "/v1/tasks",
        )
        .header("idempotency-key", "k".repeat(256))
        .json(r#"{"title": "x"}"#),
        Case::new("a 64 KB x-request-id", Method::GET, "/v1/tasks/%00")
            .header("x-request-id", big.clone()),
        Case::new(
            "a 64 KB X-Forwarded-For of commas",
            Method::POST,
            "/v1/auth/login",
        )
        .header("x-forwarded-for", ",".repeat(64 * 1024))
        .json(r#"{"email": "nobody@example.com", "password": "short"}"#),
        Case {
            body: br#"{"title": "x"}"#.to_vec(),
            ..Case::new("a 64 KB content type", Method::POST, "/v1/tasks")
                .header("content-type", format!("application/{big}"))
        },
        Case::new(
            "a JSON body under a form content type",
            Method::POST,
            "/v1/tasks",
        )
        .header("content-type", "application/x-www-form-urlencoded"),
    ]
}

async fn hostile_requests_are_4xx_problems_and_change_nothing(backend: Backend) {
    // Mail configured, so the mail endpoints do their work rather than answer 503.
    let sink = SmtpSink::start().await;
    let smtp = sink.url();
    let app = TestApp::start_with(
        backend,
        local_server::routes,
        &[
            ("SMTP_URL", smtp.as_str()),
            ("APP_BASE_URL", "https://app.example.com"),
        ],
    )
    .await;
    let user = app.create_user("victim@example.com", Role::Admin).await;
    let created = app
        .post("/v1/tasks")
        .bearer(&user.token)
        .json(serde_json::json!({"title": "keep me"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let task = created.json()["id"].as_str().unwrap().to_owned();
    // A live reset token: no hostile request may replace or spend it.
    let forgot = app
        .post(FORGOT)
        .json(serde_json::json!({"email": "victim@example.com"}))
        .await;
    assert_eq!(forgot.status, StatusCode::ACCEPTED);
    let mail = sink.wait_for(1, std::time::Duration::from_secs(10)).await;
    let reset_token = token_in(&mail[0]);
    let before = snapshot(&app, &user).await;
    for case in battery(&task) {
        let response = send(&app, &user, &case).await;
        assert!(
            response.status.is_client_error(),
            "{}: {} {}",
            case.what,
            response.status,
            String::from_utf8_lossy(&response.body)
        );
        assert_eq!(
            response.header("content-type"),
            Some("application/problem+json"),
            "{}",
            case.what
        );
        let body = response.json();
        assert_eq!(body["status"], response.status.as_u16(), "{}", case.what);
    }
    assert_eq!(snapshot(&app, &user).await, before, "the database changed");
    assert_eq!(sink.messages().len(), 1, "no mail went out");
    let reset = app
        .post(RESET)
        .json(serde_json::json!({"token": reset_token, "new_password": "the victim's own new password"}))
        .await;
    assert_eq!(
        reset.status,
        StatusCode::NO_CONTENT,
        "the reset token survived"
    );
}

shared::backend_tests!(hostile_requests_are_4xx_problems_and_change_nothing);
