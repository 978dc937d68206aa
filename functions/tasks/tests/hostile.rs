//! Hostile input to the tasks function, on SQLite and Postgres: every answer is a 4xx
//! problem+json and the database is left as it was. (The "no 5xx from input" issue.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use serde_json::{Value, json};
use shared::{
    models::Role,
    testing::{Backend, TestApp, TestResponse, TestUser},
};

async fn start(backend: Backend) -> (TestApp, TestUser) {
    let app = TestApp::start(backend, tasks::router).await;
    let user = app.create_user("hostile@example.com", Role::User).await;
    (app, user)
}

/// `POST /v1/tasks` with `body`.
async fn create(
    app: &TestApp,
    user: &TestUser,
    body: Value,
    headers: &[(&str, &str)],
) -> TestResponse {
    app.post("/v1/tasks")
        .bearer(&user.token)
        .headers(headers)
        .json(body)
        .await
}

/// The user's tasks, as the API lists them: what "the database is unchanged" compares.
async fn all_tasks(app: &TestApp, user: &TestUser) -> Value {
    let page = app.get("/v1/tasks?limit=100").bearer(&user.token).await;
    assert_eq!(page.status, StatusCode::OK);
    page.json()["items"].clone()
}

/// Timestamps that parse as RFC 3339 but leave the storable range once in UTC, or that are
/// not timestamps at all.
const BAD_DATES: &[&str] = &[
    "9999-12-31T23:59:59-23:59",
    "9999-12-31T23:30:00-00:31",
    "0001-01-01T00:00:00+00:01",
    "0000-01-01T00:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-11-21T10:15:00+24:00",
    "2026-11-21T10:15:00",
    "+10000-01-01T00:00:00Z",
    "",
];

async fn out_of_range_dates_are_422_in_bodies_and_400_in_filters(backend: Backend) {
    let (app, user) = start(backend).await;
    let created = create(&app, &user, json!({"title": "keep"}), &[]).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let before = all_tasks(&app, &user).await;
    for date in BAD_DATES {
        let posted = create(&app, &user, json!({"title": "new", "due_date": date}), &[]).await;
        let body = posted.assert_problem(422, "validation_failed");
        assert_eq!(body["errors"][0]["field"], "due_date", "{date}: {body}");
        let patch = app
            .patch(&format!("/v1/tasks/{id}"))
            .bearer(&user.token)
            .json(json!({"due_date": date}))
            .await;
        let body = patch.assert_problem(422, "validation_failed");
        assert_eq!(body["errors"][0]["field"], "due_date", "{date}: {body}");
        for filter in ["due_before", "due_after"] {
            let encoded: String = date
                .bytes()
                .map(|b| match b {
                    b'+' => "%2B".to_owned(),
                    b':' => "%3A".to_owned(),
                    other => (other as char).to_string(),
                })
                .collect();
            let list = app
                .get(&format!("/v1/tasks?{filter}={encoded}"))
                .bearer(&user.token)
                .await;
            let body = list.assert_problem(400, "invalid_query");
            assert!(
                body["detail"].as_str().unwrap().contains(filter),
                "{date}: {body}"
            );
        }
    }
    assert_eq!(all_tasks(&app, &user).await, before, "nothing changed");
    // The edges of the range are fine.
    for date in ["9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"] {
        let ok = app
            .patch(&format!("/v1/tasks/{id}"))
            .bearer(&user.token)
            .json(json!({"due_date": date}))
            .await;
        assert_eq!(ok.status, StatusCode::OK, "{date}: {:?}", ok.body);
        assert_eq!(ok.json()["due_date"], *date);
    }
}

async fn huge_if_match_lists_are_412_and_change_nothing(backend: Backend) {
    let (app, user) = start(backend).await;
    let created = create(&app, &user, json!({"title": "keep"}), &[]).await;
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/tasks/{id}");
    let before = all_tasks(&app, &user).await;
    // 35,000 entries (the 270 KB) and 33, one over the limit; the current version
    // is in both, so only the length can refuse them.
    let list = |n: usize| {
        (1..=n)
            .map(|i| format!("\"{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for entries in [35_000, 33] {
        let value = list(entries);
        let patch = app
            .patch(&path)
            .bearer(&user.token)
            .if_match(&value)
            .json(json!({"title": "changed"}))
            .await;
        patch.assert_problem(412, "precondition_failed");
        let delete = app.delete(&path).bearer(&user.token).if_match(&value).await;
        delete.assert_problem(412, "precondition_failed");
    }
    // Many short header lines add up the same way.
    let many: Vec<(&str, &str)> = std::iter::repeat_n(("if-match", "\"1\""), 40).collect();
    app.delete(&path)
        .bearer(&user.token)
        .headers(&many)
        .await
        .assert_problem(412, "precondition_failed");
    assert_eq!(all_tasks(&app, &user).await, before, "nothing changed");
    // 32 entries, one of them current: accepted.
    let ok = app
        .patch(&path)
        .bearer(&user.token)
        .if_match(&list(32))
        .json(json!({"title": "changed"}))
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{:?}", ok.body);
    // Entries that are not numbers, or beyond i64, match nothing (412), never a 500.
    for odd in [
        "\"99999999999999999999999\"",
        "\"-1\"",
        "\"\"",
        "\"3.5\"",
        "W/\"2\"",
    ] {
        app.delete(&path)
            .bearer(&user.token)
            .if_match(odd)
            .await
            .assert_problem(412, "precondition_failed");
    }
}

async fn concurrent_creates_never_pass_the_task_cap(backend: Backend) {
    let app = TestApp::start_with(backend, tasks::router, &[("MAX_TASKS_PER_USER", "5")]).await;
    let user = app.create_user("capped@example.com", Role::User).await;
    let results = futures::future::join_all((0..20).map(|i| {
        let (app, user) = (&app, &user);
        async move { create(app, user, json!({"title": format!("task {i}")}), &[]).await }
    }))
    .await;
    let created = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 5);
    for refused in results.iter().filter(|r| r.status != StatusCode::CREATED) {
        refused.assert_problem(409, "task_limit_reached");
    }
    let tasks = all_tasks(&app, &user).await;
    assert_eq!(tasks.as_array().unwrap().len(), 5);

    // A refused create does not spend its idempotency key: after a delete, the same key
    // creates the task.
    let keyed = [("idempotency-key", "retry-me")];
    let body = json!({"title": "sixth"});
    create(&app, &user, body.clone(), &keyed)
        .await
        .assert_problem(409, "task_limit_reached");
    let first = tasks[0]["id"].as_str().unwrap();
    let deleted = app
        .delete(&format!("/v1/tasks/{first}"))
        .bearer(&user.token)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let retried = create(&app, &user, body, &keyed).await;
    assert_eq!(retried.status, StatusCode::CREATED, "{:?}", retried.body);
    assert!(retried.header("idempotent-replayed").is_none());
    // Another user has a cap of their own.
    let other = app.create_user("free@example.com", Role::User).await;
    let theirs = create(&app, &other, json!({"title": "mine"}), &[]).await;
    assert_eq!(theirs.status, StatusCode::CREATED);
}

async fn prune_deletes_expired_idempotency_records_of_every_user(backend: Backend) {
    let (app, user) = start(backend).await;
    let keyed = [("idempotency-key", "once")];
    let created = create(&app, &user, json!({"title": "a"}), &keyed).await;
    assert_eq!(created.status, StatusCode::CREATED);
    // The user never creates again; their record expired a minute ago.
    app.raw_user_statement(
        "UPDATE idempotency_keys SET expires_at = strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', '-60 seconds') WHERE user_id = ?1",
        "UPDATE idempotency_keys SET expires_at = now() - interval '60 seconds' WHERE user_id = $1",
        user.id,
    )
    .await;
    let pruned = app
        .state
        .store
        .tokens()
        .prune(shared::models::now())
        .await
        .unwrap();
    let records = pruned
        .iter()
        .find(|(what, _)| *what == "idempotency records")
        .unwrap();
    assert_eq!(records.1, 1, "{pruned:?}");
    // The key is free again: the same key with another body creates another task.
    let again = create(&app, &user, json!({"title": "b"}), &keyed).await;
    assert_eq!(again.status, StatusCode::CREATED, "{:?}", again.body);
}

shared::backend_tests!(
    out_of_range_dates_are_422_in_bodies_and_400_in_filters,
    huge_if_match_lists_are_412_and_change_nothing,
    concurrent_creates_never_pass_the_task_cap,
    prune_deletes_expired_idempotency_records_of_every_user,
);
