//! Router tests of the tasks function on SQLite and Postgres.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use shared::{
    models::Role,
    testing::{Backend, TestApp, TestResponse, TestUser},
};

async fn start(backend: Backend) -> (TestApp, TestUser) {
    let app = TestApp::start(backend, tasks::router).await;
    let user = app.create_user("owner@example.com", Role::User).await;
    (app, user)
}

async fn create(app: &TestApp, user: &TestUser, body: Value) -> Value {
    let response = app.post("/v1/tasks").bearer(&user.token).json(body).await;
    assert_eq!(response.status, StatusCode::CREATED, "{:?}", response.body);
    response.json()
}

async fn get(app: &TestApp, user: &TestUser, path: &str) -> TestResponse {
    app.get(path).bearer(&user.token).await
}

async fn crud_round_trip_with_location_etag_and_versions(backend: Backend) {
    let (app, user) = start(backend).await;
    let created = app.post("/v1/tasks").bearer(&user.token).json(json!({"title": "  Write the report ", "description": "quarterly", "due_date": "2026-12-01T09:00:00+01:00"}))
    .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let task = created.json();
    let id = task["id"].as_str().unwrap();
    assert_eq!(
        created.header("location"),
        Some(format!("/v1/tasks/{id}").as_str())
    );
    assert_eq!(created.header("etag"), Some("\"1\""));
    assert_eq!(task["title"], "Write the report");
    assert_eq!(task["description"], "quarterly");
    assert_eq!(task["completed"], false);
    assert_eq!(task["due_date"], "2026-12-01T08:00:00Z");
    assert_eq!(task["version"], 1);
    assert!(task.get("owner_id").is_none());

    let fetched = get(&app, &user, &format!("/v1/tasks/{id}")).await;
    assert_eq!(fetched.status, StatusCode::OK);
    assert_eq!(fetched.header("etag"), Some("\"1\""));
    assert_eq!(fetched.json(), task);

    let path = format!("/v1/tasks/{id}");
    let patched = app
        .patch(&path)
        .bearer(&user.token)
        .json(json!({"completed": true}))
        .await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.header("etag"), Some("\"2\""));
    let patched = patched.json();
    assert_eq!(patched["version"], 2);
    assert_eq!(patched["completed"], true);
    assert_eq!(patched["title"], "Write the report");

    let cleared = app
        .patch(&path)
        .bearer(&user.token)
        .json(json!({"description": null, "due_date": null, "title": "Report"}))
        .if_match("\"2\"")
        .await;
    assert_eq!(cleared.status, StatusCode::OK);
    let cleared = cleared.json();
    assert_eq!(cleared["version"], 3);
    assert_eq!(cleared["description"], Value::Null);
    assert_eq!(cleared["due_date"], Value::Null);
    assert_eq!(cleared["title"], "Report");
    assert_eq!(cleared["completed"], true);

    let star = app
        .patch(&path)
        .bearer(&user.token)
        .json(json!({"completed": false}))
        .if_match("*")
        .await;
    assert_eq!(star.json()["version"], 4);

    let stale = app
        .delete(&path)
        .bearer(&user.token)
        .if_match("\"3\"")
        .await;
    stale.assert_problem(412, "precondition_failed");
    let deleted = app
        .delete(&path)
        .bearer(&user.token)
        .if_match("\"4\"")
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    get(&app, &user, &path)
        .await
        .assert_problem(404, "not_found");
    app.delete(&path)
        .bearer(&user.token)
        .await
        .assert_problem(404, "not_found");
}

async fn another_users_task_is_indistinguishable_from_a_missing_one(backend: Backend) {
    let (app, alice) = start(backend).await;
    let bob = app.create_user("bob@example.com", Role::User).await;
    let task = create(&app, &alice, json!({"title": "alice's"})).await;
    let path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    let missing = format!("/v1/tasks/{}", uuid::Uuid::now_v7());

    for target in [&path, &missing] {
        let a = get(&app, &bob, target)
            .await
            .assert_problem(404, "not_found");
        let b = app
            .patch(target)
            .bearer(&bob.token)
            .json(json!({"title": "mine"}))
            .await;
        let b = b.assert_problem(404, "not_found");
        let c = app
            .delete(target)
            .bearer(&bob.token)
            .if_match("\"1\"")
            .await;
        let c = c.assert_problem(404, "not_found");
        for body in [a, b, c] {
            assert_eq!(body["detail"], "no such resource");
        }
    }
    let list = get(&app, &bob, "/v1/tasks").await.json();
    assert_eq!(list["items"], json!([]));
    let still = get(&app, &alice, &path).await.json();
    assert_eq!(still, task);
}

async fn hundred_concurrent_patches_with_one_if_match_have_one_winner(backend: Backend) {
    let (app, user) = start(backend).await;
    let task = create(&app, &user, json!({"title": "contended"})).await;
    let path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    let results = futures::future::join_all((0..100).map(|i| {
        let (app, user, path) = (&app, &user, &path);
        async move {
            let title = format!("writer {i}");
            let r = app
                .patch(path)
                .bearer(&user.token)
                .json(json!({"title": title}))
                .if_match("\"1\"")
                .await;
            (title, r)
        }
    }))
    .await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, r)| r.status == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1);
    for (_, r) in results.iter().filter(|(_, r)| r.status != StatusCode::OK) {
        r.assert_problem(412, "precondition_failed");
    }
    let stored = get(&app, &user, &path).await.json();
    assert_eq!(stored["title"], winners[0].0.as_str());
    assert_eq!(stored["version"], 2);
}

/// The documented order of a sort, computed independently of the server.
fn sort_expected(items: &mut [Value], sort: &str) {
    let key = sort.trim_start_matches('-');
    let desc = sort.starts_with('-');
    items.sort_by(|a, b| {
        let id = |v: &Value| uuid::Uuid::parse_str(v["id"].as_str().unwrap()).unwrap();
        let time = |v: &Value, k: &str| {
            v[k].as_str()
                .map(|s| shared::models::parse_timestamp(s).unwrap())
        };
        let ord = match key {
            "created_at" => time(a, "created_at").cmp(&time(b, "created_at")),
            "title" => a["title"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .as_bytes()
                .cmp(b["title"].as_str().unwrap().to_lowercase().as_bytes()),
            "due_date" => {
                let (da, db) = (time(a, "due_date"), time(b, "due_date"));
                match (da, db) {
                    (None, None) => std::cmp::Ordering::Equal,
                    // Undated last in both directions: undo the reversal below.
                    (None, Some(_)) => return std::cmp::Ordering::Greater,
                    (Some(_), None) => return std::cmp::Ordering::Less,
                    (Some(x), Some(y)) => x.cmp(&y),
                }
            }
            other => panic!("{other}"),
        }
        .then_with(|| id(a).cmp(&id(b)));
        if desc { ord.reverse() } else { ord }
    });
}

async fn walk(
    app: &TestApp,
    user: &TestUser,
    query: &str,
    mut during: impl AsyncFnMut(usize),
) -> Vec<Value> {
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        let mut path = format!("/v1/tasks?limit=7&{query}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let response = get(app, user, &path).await;
        assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
        let body = response.json();
        let items = body["items"].as_array().unwrap();
        assert!(items.len() <= 7);
        seen.extend(items.iter().cloned());
        during(page).await;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
        assert!(page < 200, "runaway pagination");
    }
    seen
}

async fn pagination_visits_every_task_once_in_order_for_every_sort(backend: Backend) {
    let (app, user) = start(backend).await;
    let mut all = Vec::new();
    for i in 0..250 {
        let title = match i % 5 {
            0 => "Same title".to_owned(),
            1 => format!("alpha {i}"),
            2 => format!("Beta {i}"),
            3 => format!("ünïcode {i}"),
            _ => format!("zeta {i}"),
        };
        let due = match i % 3 {
            0 => Value::Null,
            // Repeated due dates make ties that only the id can break.
            1 => json!("2027-01-01T00:00:00Z"),
            _ => json!(format!("2026-12-{:02}T10:00:00Z", 1 + i % 28)),
        };
        all.push(create(&app, &user, json!({"title": title, "due_date": due})).await);
    }
    for sort in [
        "created_at",
        "-created_at",
        "due_date",
        "-due_date",
        "title",
        "-title",
    ] {
        let mut expected = all.clone();
        sort_expected(&mut expected, sort);
        let seen = walk(&app, &user, &format!("sort={sort}"), async |_| {}).await;
        let ids = |v: &[Value]| {
            v.iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&seen), ids(&expected), "order for sort={sort}");
    }
    // The default is -created_at.
    let default = walk(&app, &user, "", async |_| {}).await;
    let mut expected = all.clone();
    sort_expected(&mut expected, "-created_at");
    assert_eq!(default.len(), 250);
    assert_eq!(default[0]["id"], expected[0]["id"]);
}

/// Filters with every sort, page by page: each shape reads its own index range (migration
/// 0008), a cursor continues it, and the undated tasks still come last.
async fn filtered_pages_visit_every_match_once_in_order(backend: Backend) {
    let (app, user) = start(backend).await;
    let mut all = Vec::new();
    for i in 0..90 {
        let title = if i % 2 == 0 {
            format!("Alpha {i}")
        } else {
            format!("beta {i}")
        };
        let due = match i % 3 {
            0 => Value::Null,
            1 => json!("2027-01-01T00:00:00Z"),
            _ => json!(format!("2026-12-{:02}T10:00:00Z", 1 + i % 9)),
        };
        let body = json!({"title": title, "due_date": due, "completed": i % 4 < 2});
        all.push(create(&app, &user, body).await);
    }
    let due = |t: &Value| {
        t["due_date"]
            .as_str()
            .map(|d| shared::models::parse_timestamp(d).unwrap())
    };
    let at = |s: &str| Some(shared::models::parse_timestamp(s).unwrap());
    let title = |t: &Value| t["title"].as_str().unwrap().to_lowercase();
    type Keep = Box<dyn Fn(&Value) -> bool>;
    let cases: Vec<(&str, Keep)> = vec![
        (
            "completed=true&sort=-due_date",
            Box::new(|t| t["completed"] == true),
        ),
        (
            "completed=false&sort=due_date",
            Box::new(|t| t["completed"] == false),
        ),
        (
            "completed=false&sort=due_date&due_before=2027-01-01T00:00:00Z",
            Box::new(move |t| {
                t["completed"] == false && due(t).is_some() && due(t) < at("2027-01-01T00:00:00Z")
            }),
        ),
        (
            "sort=-due_date&due_after=2026-12-05T00:00:00Z",
            Box::new(move |t| due(t).is_some() && due(t) > at("2026-12-05T00:00:00Z")),
        ),
        (
            "sort=due_date&due_after=2026-12-03T00:00:00Z&due_before=2027-01-01T00:00:00Z",
            Box::new(move |t| {
                due(t).is_some()
                    && due(t) > at("2026-12-03T00:00:00Z")
                    && due(t) < at("2027-01-01T00:00:00Z")
            }),
        ),
        (
            "completed=true&sort=-title",
            Box::new(|t| t["completed"] == true),
        ),
        (
            "completed=false&sort=created_at",
            Box::new(|t| t["completed"] == false),
        ),
        // Through the trigram index (three characters or more), and without it.
        (
            "q=alpha&sort=-due_date",
            Box::new(move |t| title(t).contains("alpha")),
        ),
        (
            "q=ta%201&sort=title",
            Box::new(move |t| title(t).contains("ta 1")),
        ),
        (
            "q=a%208&completed=true",
            Box::new(move |t| title(t).contains("a 8") && t["completed"] == true),
        ),
    ];
    for (query, keep) in cases {
        let sort = query
            .split('&')
            .find_map(|p| p.strip_prefix("sort="))
            .unwrap_or("-created_at");
        let mut expected: Vec<Value> = all.iter().filter(|t| keep(t)).cloned().collect();
        sort_expected(&mut expected, sort);
        let seen = walk(&app, &user, query, async |_| {}).await;
        let ids = |v: &[Value]| {
            v.iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        assert!(!expected.is_empty(), "{query} matches nothing: not a test");
        assert_eq!(ids(&seen), ids(&expected), "{backend:?}: {query}");
    }
}

async fn pagination_never_skips_or_repeats_while_tasks_are_inserted(backend: Backend) {
    let (app, user) = start(backend).await;
    let mut before = HashSet::new();
    for i in 0..60 {
        let due = if i % 2 == 0 {
            json!(null)
        } else {
            json!(format!("2026-12-{:02}T10:00:00Z", 1 + i % 28))
        };
        let t = create(
            &app,
            &user,
            json!({"title": format!("task {i}"), "due_date": due}),
        )
        .await;
        before.insert(t["id"].as_str().unwrap().to_owned());
    }
    for sort in [
        "created_at",
        "-created_at",
        "due_date",
        "-due_date",
        "title",
        "-title",
    ] {
        let app_ref = &app;
        let user_ref = &user;
        let seen = walk(&app, &user, &format!("sort={sort}"), async |page| {
            let title = format!("inserted during {sort} page {page}");
            let due = if page % 2 == 0 {
                json!(null)
            } else {
                json!("2026-12-15T10:00:00Z")
            };
            create(app_ref, user_ref, json!({"title": title, "due_date": due})).await;
        })
        .await;
        let mut counts = std::collections::HashMap::new();
        for t in &seen {
            *counts
                .entry(t["id"].as_str().unwrap().to_owned())
                .or_insert(0) += 1;
        }
        assert!(
            counts.values().all(|&c| c == 1),
            "a task repeated for sort={sort}"
        );
        for id in &before {
            assert_eq!(
                counts.get(id),
                Some(&1),
                "pre-existing task skipped for sort={sort}"
            );
        }
    }
}

async fn filters_combine_and_search_is_literal_and_case_insensitive(backend: Backend) {
    let (app, user) = start(backend).await;
    let specs = [
        ("Pay RENT", true, Some("2026-11-01T00:00:00Z")),
        ("pay taxes", false, Some("2026-11-10T00:00:00Z")),
        ("Pay the gardener", true, Some("2026-12-20T00:00:00Z")),
        ("Pay later", true, None),
        ("100% done", false, None),
        ("1000 done", false, None),
        ("snake_case", false, None),
        ("snakeXcase", false, None),
    ];
    for (title, completed, due) in specs {
        create(
            &app,
            &user,
            json!({"title": title, "completed": completed, "due_date": due}),
        )
        .await;
    }
    let titles = |body: Value| {
        let mut t: Vec<String> = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_owned())
            .collect();
        t.sort();
        t
    };
    let list = |q: &'static str| {
        let (app, user) = (&app, &user);
        async move {
            let r = get(app, user, &format!("/v1/tasks?{q}")).await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {:?}", r.body);
            titles(r.json())
        }
    };
    assert_eq!(
        list("q=PAY").await,
        vec!["Pay RENT", "Pay later", "Pay the gardener", "pay taxes"]
    );
    assert_eq!(
        list("completed=true&due_before=2026-12-01T00:00:00Z&q=pay").await,
        vec!["Pay RENT"]
    );
    assert_eq!(list("completed=false&q=pay").await, vec!["pay taxes"]);
    assert_eq!(
        list("due_after=2026-11-05T00:00:00Z").await,
        vec!["Pay the gardener", "pay taxes"]
    );
    assert_eq!(
        list("due_after=2026-11-05T00:00:00Z&due_before=2026-12-01T00:00:00Z").await,
        vec!["pay taxes"]
    );
    assert_eq!(list("q=100%25").await, vec!["100% done"]);
    assert_eq!(list("q=%25").await, vec!["100% done"]);
    assert_eq!(list("q=snake_case").await, vec!["snake_case"]);
    assert_eq!(list("q=_").await, vec!["snake_case"]);
}

/// `q` is literal through the trigram index too: FTS5's query syntax (quotes, `*`, `:`,
/// `NEAR(`) and backslashes in a term match themselves, never an error or another title.
async fn search_terms_with_query_syntax_match_themselves(backend: Backend) {
    let (app, user) = start(backend).await;
    for title in [
        "say \"hi\" now",
        "a*b star",
        "col:on",
        "NEAR(x y)",
        "back\\slash",
        "Über Straße",
        "plain words",
    ] {
        create(&app, &user, json!({"title": title})).await;
    }
    for (q, expected) in [
        ("%22hi%22", vec!["say \"hi\" now"]),
        ("%22", vec!["say \"hi\" now"]),
        ("%22%22%22", vec![]),
        ("a*b", vec!["a*b star"]),
        ("*", vec!["a*b star"]),
        ("col:", vec!["col:on"]),
        ("near(x", vec!["NEAR(x y)"]),
        ("k%5Cs", vec!["back\\slash"]),
        ("%C3%9CBER", vec!["Über Straße"]),
        ("AND%20OR%20NOT", vec![]),
    ] {
        let r = get(&app, &user, &format!("/v1/tasks?q={q}")).await;
        assert_eq!(r.status, StatusCode::OK, "{backend:?} q={q}: {:?}", r.body);
        let titles: Vec<String> = r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["title"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(titles, expected, "{backend:?} q={q}");
    }
}

async fn idempotent_creates_replay_and_never_duplicate(backend: Backend) {
    let (app, alice) = start(backend).await;
    let bob = app.create_user("bob@example.com", Role::User).await;
    let body = json!({"title": "once", "description": "only once"});
    let key = [("idempotency-key", "key-123")];
    let first = app
        .post("/v1/tasks")
        .bearer(&alice.token)
        .json(body.clone())
        .headers(&key)
        .await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert!(first.header("idempotent-replayed").is_none());
    // Same request, other formatting (key order, explicit default): still a replay.
    let same = json!({"description": "only once", "completed": false, "title": " once "});
    let second = app
        .post("/v1/tasks")
        .bearer(&alice.token)
        .json(same)
        .headers(&key)
        .await;
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("location"), first.header("location"));
    assert_eq!(second.header("etag"), first.header("etag"));

    let different = app
        .post("/v1/tasks")
        .bearer(&alice.token)
        .json(json!({"title": "other"}))
        .headers(&key)
        .await;
    different.assert_problem(422, "idempotency_key_reused");

    let bobs = app
        .post("/v1/tasks")
        .bearer(&bob.token)
        .json(body.clone())
        .headers(&key)
        .await;
    assert_eq!(bobs.status, StatusCode::CREATED);
    assert!(bobs.header("idempotent-replayed").is_none());
    assert_ne!(bobs.json()["id"], first.json()["id"]);

    let list = get(&app, &alice, "/v1/tasks").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    for bad in ["", &"k".repeat(256), "caf\u{e9}"] {
        app.post("/v1/tasks")
            .bearer(&alice.token)
            .header(
                "idempotency-key",
                axum::http::HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
            )
            .json(body.clone())
            .await
            .assert_problem(422, "validation_failed");
    }
}

async fn twenty_concurrent_creates_with_one_key_make_one_task(backend: Backend) {
    let (app, user) = start(backend).await;
    let results = futures::future::join_all((0..20).map(|_| {
        let (app, user) = (&app, &user);
        async move {
            app.post("/v1/tasks")
                .bearer(&user.token)
                .json(json!({"title": "racy"}))
                .headers(&[("idempotency-key", "race")])
                .await
        }
    }))
    .await;
    let mut ids = HashSet::new();
    for r in &results {
        match r.status.as_u16() {
            201 => {
                ids.insert(r.json()["id"].as_str().unwrap().to_owned());
            }
            409 => {
                r.assert_problem(409, "idempotency_request_in_progress");
            }
            other => panic!("unexpected {other}: {:?}", r.body),
        }
    }
    assert_eq!(ids.len(), 1);
    let list = get(&app, &user, "/v1/tasks").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

async fn invalid_bodies_are_422_and_change_nothing(backend: Backend) {
    let (app, user) = start(backend).await;
    let cases = [
        (json!({"title": ""}), "title"),
        (json!({"title": "   "}), "title"),
        (json!({"title": "t".repeat(201)}), "title"),
        (
            json!({"title": "ok", "description": "d".repeat(10_001)}),
            "description",
        ),
        (
            json!({"title": "ok", "due_date": "next tuesday"}),
            "due_date",
        ),
        (
            json!({"title": "ok", "owner_id": uuid::Uuid::now_v7()}),
            "owner_id",
        ),
        (json!({"title": "ok", "version": 9}), "version"),
        (json!({"title": "ok", "id": uuid::Uuid::now_v7()}), "id"),
        (json!({"title": 7}), "title"),
        (json!({}), "body"),
    ];
    for (body, field) in cases {
        let r = app
            .post("/v1/tasks")
            .bearer(&user.token)
            .json(body.clone())
            .await;
        let problem = r.assert_problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], field, "{body}");
    }
    let task = create(&app, &user, json!({"title": "keep"})).await;
    let path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    for body in [
        json!({}),
        json!({"title": null}),
        json!({"completed": null}),
        json!({"title": ""}),
        json!({"due_date": "soon"}),
        json!({"owner_id": uuid::Uuid::now_v7()}),
        json!({"version": 5}),
    ] {
        let r = app
            .patch(&path)
            .bearer(&user.token)
            .json(body.clone())
            .await;
        let problem = r.assert_problem(422, "validation_failed");
        assert!(
            problem["errors"].as_array().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    assert_eq!(get(&app, &user, &path).await.json(), task);
    let list = get(&app, &user, "/v1/tasks").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

async fn bad_query_parameters_are_400_invalid_query(backend: Backend) {
    let (app, user) = start(backend).await;
    for i in 0..3 {
        create(&app, &user, json!({"title": format!("t{i}")})).await;
    }
    let page = get(&app, &user, "/v1/tasks?limit=1").await.json();
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (payload, tag) = cursor.split_once('.').unwrap();
    let flipped = {
        let mut chars: Vec<char> = payload.chars().collect();
        chars[3] = if chars[3] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect::<String>()
    };
    for query in [
        "limit=0".to_owned(),
        "limit=101".to_owned(),
        "limit=ten".to_owned(),
        "limit=1&limit=2".to_owned(),
        "sort=priority".to_owned(),
        "completed=yes".to_owned(),
        "due_before=tomorrow".to_owned(),
        format!("cursor={flipped}.{tag}"),
        "cursor=garbage".to_owned(),
        // A cursor of one sort order used with another.
        format!("sort=title&cursor={cursor}"),
        // No database stores a NUL; a search for one is refused, not a 500.
        "q=a%00b".to_owned(),
        format!("q={}", "q".repeat(201)),
    ] {
        get(&app, &user, &format!("/v1/tasks?{query}"))
            .await
            .assert_problem(400, "invalid_query");
    }
    get(&app, &user, "/v1/tasks/not-a-uuid")
        .await
        .assert_problem(400, "invalid_path");
    let ok = get(&app, &user, &format!("/v1/tasks?limit=1&cursor={cursor}")).await;
    assert_eq!(ok.status, StatusCode::OK);
    // An empty cursor is the first page, as if it were absent.
    let first = get(&app, &user, "/v1/tasks?limit=1&cursor=").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["items"], page["items"]);
}

async fn text_with_a_nul_character_is_422_and_stores_nothing(backend: Backend) {
    let (app, user) = start(backend).await;
    for (field, body) in [
        ("title", json!({"title": "a\u{0}b"})),
        (
            "description",
            json!({"title": "ok", "description": "x\u{0}"}),
        ),
    ] {
        let r = app.post("/v1/tasks").bearer(&user.token).json(body).await;
        r.assert_problem(422, "validation_failed");
        assert_eq!(r.json()["errors"][0]["field"], field);
    }
    let task = create(&app, &user, json!({"title": "kept"})).await;
    let path = format!("/v1/tasks/{}", task["id"].as_str().unwrap());
    let r = app
        .patch(&path)
        .bearer(&user.token)
        .json(json!({"title": "\u{0}"}))
        .await;
    r.assert_problem(422, "validation_failed");
    let list = get(&app, &user, "/v1/tasks").await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(get(&app, &user, &path).await.json()["title"], "kept");
}

async fn every_route_needs_a_token(backend: Backend) {
    let (app, _) = start(backend).await;
    let id = uuid::Uuid::now_v7();
    for (method, path) in [
        (Method::GET, "/v1/tasks".to_owned()),
        (Method::POST, "/v1/tasks".to_owned()),
        (Method::GET, format!("/v1/tasks/{id}")),
        (Method::PATCH, format!("/v1/tasks/{id}")),
        (Method::DELETE, format!("/v1/tasks/{id}")),
    ] {
        let response = app.request(method, &path).json(json!({"title": "x"})).await;
        response.assert_problem(401, "unauthorized");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
}

async fn deleting_a_user_removes_their_tasks(backend: Backend) {
    let (app, user) = start(backend).await;
    let other = app.create_user("other@example.com", Role::User).await;
    let mine = create(&app, &user, json!({"title": "mine"})).await;
    create(&app, &other, json!({"title": "theirs"})).await;
    app.delete_user_row(user.id).await;
    let owner = user.id;
    let id: uuid::Uuid = mine["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(app.state.store.tasks().get(owner, id).await.unwrap(), None);
    let theirs = get(&app, &other, "/v1/tasks").await.json();
    assert_eq!(theirs["items"].as_array().unwrap().len(), 1);
    // The deleted user's token stops working.
    get(&app, &user, "/v1/tasks")
        .await
        .assert_problem(401, "unauthorized");
}

async fn an_expired_idempotency_key_is_cleaned_up_and_free_again(backend: Backend) {
    let (app, user) = start(backend).await;
    // A record for "old-key" that expired a second ago, as if written 24 h earlier.
    let now = shared::models::now();
    let stale = shared::store::IdempotencyClaim {
        key: "old-key".into(),
        fingerprint: [7; 32],
        expires_at: now - time::Duration::seconds(1),
    };
    let task = shared::models::NewTask {
        id: uuid::Uuid::now_v7(),
        owner_id: user.id,
        title: shared::models::TaskTitle::parse("from yesterday").unwrap(),
        description: None,
        completed: false,
        due_date: None,
        now: now - time::Duration::hours(24),
    };
    let outcome = app
        .state
        .store
        .tasks()
        .create(&task, Some(&stale), None)
        .await
        .unwrap();
    assert!(matches!(outcome, Ok(shared::domain::Created::New(_))));

    // A different body with the same key is a new request, not a reused key.
    let fresh = app
        .post("/v1/tasks")
        .bearer(&user.token)
        .json(json!({"title": "today"}))
        .headers(&[("idempotency-key", "old-key")])
        .await;
    assert_eq!(fresh.status, StatusCode::CREATED, "{:?}", fresh.body);
    assert!(fresh.header("idempotent-replayed").is_none());
    assert_eq!(fresh.json()["title"], "today");
    // And the key now replays the new task.
    let again = app
        .post("/v1/tasks")
        .bearer(&user.token)
        .json(json!({"title": "today"}))
        .headers(&[("idempotency-key", "old-key")])
        .await;
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, fresh.body);
}

shared::backend_tests!(
    an_expired_idempotency_key_is_cleaned_up_and_free_again,
    crud_round_trip_with_location_etag_and_versions,
    another_users_task_is_indistinguishable_from_a_missing_one,
    hundred_concurrent_patches_with_one_if_match_have_one_winner,
    pagination_visits_every_task_once_in_order_for_every_sort,
    filtered_pages_visit_every_match_once_in_order,
    pagination_never_skips_or_repeats_while_tasks_are_inserted,
    filters_combine_and_search_is_literal_and_case_insensitive,
    search_terms_with_query_syntax_match_themselves,
    idempotent_creates_replay_and_never_duplicate,
    twenty_concurrent_creates_with_one_key_make_one_task,
    invalid_bodies_are_422_and_change_nothing,
    bad_query_parameters_are_400_invalid_query,
    every_route_needs_a_token,
    deleting_a_user_removes_their_tasks,
    text_with_a_nul_character_is_422_and_stores_nothing,
);
