//! Router tests of the admin function on SQLite and Postgres, mounted with auth and tasks
//! (as the local server mounts them) so that effects on logins and tasks can be seen.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::{
    Router,
    http::{Method, StatusCode},
};
use serde_json::{Value, json};
use shared::{
    AppState,
    models::Role,
    testing::{Backend, TEST_PASSWORD, TestApp, TestResponse, TestUser},
};

fn routes(state: AppState) -> Router {
    admin::router(state.clone())
        .merge(auth::router(state.clone()))
        .merge(tasks::router(state))
}

async fn start(backend: Backend) -> (TestApp, TestUser) {
    let app = TestApp::start(backend, routes).await;
    let admin = app.create_user("root@example.com", Role::Admin).await;
    (app, admin)
}

async fn login(app: &TestApp, email: &str) -> TestResponse {
    app.post("/v1/auth/login")
        .json(json!({"email": email, "password": TEST_PASSWORD}))
        .await
}

async fn audit(app: &TestApp, admin: &TestUser) -> Vec<Value> {
    let r = app
        .get("/v1/admin/audit?limit=100")
        .bearer(&admin.token)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()["items"].as_array().unwrap().clone()
}

fn admin_routes(target: uuid::Uuid) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/v1/admin/users".into(), None),
        (Method::GET, format!("/v1/admin/users/{target}"), None),
        (
            Method::PATCH,
            format!("/v1/admin/users/{target}"),
            Some(json!({"disabled": true})),
        ),
        (Method::DELETE, format!("/v1/admin/users/{target}"), None),
        (Method::GET, "/v1/admin/stats".into(), None),
        (Method::GET, "/v1/admin/audit".into(), None),
    ]
}

async fn every_admin_route_is_401_without_a_token_and_403_for_non_admins(backend: Backend) {
    let (app, root) = start(backend).await;
    let user = app.create_user("user@example.com", Role::User).await;
    let disabled_admin = app
        .create_user("disabled-admin@example.com", Role::Admin)
        .await;
    let demoted = app.create_user("demoted@example.com", Role::Admin).await;
    app.disable_user(disabled_admin.id).await;
    let r = app
        .patch(&format!("/v1/admin/users/{}", demoted.id))
        .bearer(&root.token)
        .json(json!({"role": "user"}))
        .await;
    assert_eq!(r.status, StatusCode::OK);

    for (method, path, body) in admin_routes(user.id) {
        app.request(method.clone(), &path)
            .maybe_json(body.clone())
            .await
            .assert_problem(401, "unauthorized");
        app.request(method.clone(), &path)
            .bearer(&user.token)
            .maybe_json(body.clone())
            .await
            .assert_problem(403, "forbidden");
        app.request(method.clone(), &path)
            .bearer(&disabled_admin.token)
            .maybe_json(body.clone())
            .await
            .assert_problem(401, "unauthorized");
        // Their token still says "admin"; the database does not.
        app.request(method.clone(), &path)
            .bearer(&demoted.token)
            .maybe_json(body.clone())
            .await
            .assert_problem(403, "forbidden");
    }
    // Nothing above changed the target.
    let detail = app
        .get(&format!("/v1/admin/users/{}", user.id))
        .bearer(&root.token)
        .await;
    assert_eq!(detail.json()["disabled"], false);
}

async fn admins_demoting_each_other_at_once_never_leave_zero_admins(backend: Backend) {
    let (app, root) = start(backend).await;
    for round in 0..20 {
        let other = app
            .create_user(&format!("other{round}@example.com"), Role::Admin)
            .await;
        // Make sure exactly two enabled admins exist: root (maybe re-promoted) and other.
        let (a, b) = if round % 2 == 0 {
            (&root, &other)
        } else {
            (&other, &root)
        };
        let demote = |actor: &TestUser, target: &TestUser| {
            let app = &app;
            let (token, path) = (
                actor.token.clone(),
                format!("/v1/admin/users/{}", target.id),
            );
            async move {
                app.patch(&path)
                    .bearer(&token)
                    .json(json!({"role": "user"}))
                    .await
            }
        };
        let (ra, rb) = tokio::join!(demote(a, b), demote(b, a));
        let statuses = [ra.status.as_u16(), rb.status.as_u16()];
        assert!(statuses.contains(&200), "round {round}: {statuses:?}");
        for r in [&ra, &rb] {
            if r.status != StatusCode::OK {
                let code = r.json()["code"].as_str().unwrap().to_owned();
                assert!(
                    code == "last_admin" || code == "forbidden",
                    "round {round}: {code}"
                );
            }
        }
        let stats = app.state.store.admin().stats().await.unwrap();
        assert!(stats.admins >= 1, "round {round}: no admin left");
        // Restore root as an admin for the next round.
        if app
            .state
            .store
            .users()
            .by_id(root.id)
            .await
            .unwrap()
            .unwrap()
            .role
            != Role::Admin
        {
            let survivor = if ra.status == StatusCode::OK { a } else { b };
            let r = app
                .patch(&format!("/v1/admin/users/{}", root.id))
                .bearer(&survivor.token)
                .json(json!({"role": "admin"}))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        }
        let r = app
            .delete(&format!("/v1/admin/users/{}", other.id))
            .bearer(&root.token)
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    }
}

async fn the_last_admin_cannot_be_demoted_disabled_or_deleted(backend: Backend) {
    let (app, root) = start(backend).await;
    let path = format!("/v1/admin/users/{}", root.id);
    for body in [json!({"role": "user"}), json!({"disabled": true})] {
        app.patch(&path)
            .bearer(&root.token)
            .json(body)
            .await
            .assert_problem(409, "last_admin");
    }
    app.delete(&path)
        .bearer(&root.token)
        .await
        .assert_problem(403, "forbidden");
    // A second admin can go, leaving root; then root is last again.
    let second = app.create_user("second@example.com", Role::Admin).await;
    let r = app
        .patch(&format!("/v1/admin/users/{}", second.id))
        .bearer(&root.token)
        .json(json!({"disabled": true}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    app.patch(&path)
        .bearer(&root.token)
        .json(json!({"role": "user"}))
        .await
        .assert_problem(409, "last_admin");
    assert!(
        audit(&app, &root)
            .await
            .iter()
            .all(|e| e["target_id"] != json!(root.id))
    );
}

async fn disabling_refuses_tokens_at_once_and_enabling_restores_login(backend: Backend) {
    let (app, root) = start(backend).await;
    let user = app.create_user("victim@example.com", Role::User).await;
    let pair = login(&app, "victim@example.com").await.json();
    let access = pair["access_token"].as_str().unwrap().to_owned();
    let refresh = pair["refresh_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/auth/me").bearer(&access).await.status,
        StatusCode::OK
    );

    let path = format!("/v1/admin/users/{}", user.id);
    let r = app
        .patch(&path)
        .bearer(&root.token)
        .json(json!({"disabled": true}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["disabled"], true);
    app.get("/v1/auth/me")
        .bearer(&access)
        .await
        .assert_problem(401, "unauthorized");
    app.get("/v1/tasks")
        .bearer(&access)
        .await
        .assert_problem(401, "unauthorized");
    app.post("/v1/auth/refresh")
        .json(json!({"refresh_token": refresh}))
        .await
        .assert_problem(401, "invalid_refresh_token");
    login(&app, "victim@example.com")
        .await
        .assert_problem(403, "account_disabled");

    let r = app
        .patch(&path)
        .bearer(&root.token)
        .json(json!({"disabled": false}))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let again = login(&app, "victim@example.com").await;
    assert_eq!(again.status, StatusCode::OK);
    let access = again.json()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/v1/auth/me").bearer(&access).await.status,
        StatusCode::OK
    );
}

async fn deleting_a_user_removes_tasks_tokens_and_login_state_but_keeps_the_audit(
    backend: Backend,
) {
    let (app, root) = start(backend).await;
    let user = app.create_user("gone@example.com", Role::User).await;
    for i in 0..3 {
        let r = app
            .post("/v1/tasks")
            .bearer(&user.token)
            .json(json!({"title": format!("t{i}")}))
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    let refresh = login(&app, "gone@example.com").await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A failed login leaves throttle state for the email.
    app.post("/v1/auth/login")
        .json(json!({"email": "gone@example.com", "password": "wrong password!!"}))
        .await;
    let detail = app
        .get(&format!("/v1/admin/users/{}", user.id))
        .bearer(&root.token)
        .await
        .json();
    assert_eq!(detail["task_count"], 3);

    let r = app
        .delete(&format!("/v1/admin/users/{}", user.id))
        .bearer(&root.token)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    app.get(&format!("/v1/admin/users/{}", user.id))
        .bearer(&root.token)
        .await
        .assert_problem(404, "not_found");
    let stats = app.state.store.admin().stats().await.unwrap();
    assert_eq!(stats.tasks, 0);
    app.post("/v1/auth/refresh")
        .json(json!({"refresh_token": refresh}))
        .await
        .assert_problem(401, "invalid_refresh_token");
    app.get("/v1/tasks")
        .bearer(&user.token)
        .await
        .assert_problem(401, "unauthorized");
    // With the failures gone, a budget of one has room again.
    let attempt = app
        .state
        .store
        .tokens()
        .reserve_login_attempt(
            "gone@example.com",
            shared::models::now(),
            shared::config::LoginThrottle {
                max_failures: 1,
                window: std::time::Duration::from_secs(900),
            },
        )
        .await
        .unwrap();
    assert!(
        attempt.allowed && attempt.reserved == 1,
        "login state is gone"
    );
    let entries = audit(&app, &root).await;
    let deleted: Vec<_> = entries
        .iter()
        .filter(|e| e["action"] == "user.deleted")
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["target_id"], json!(user.id));
    assert_eq!(deleted[0]["actor_id"], json!(root.id));
    // Deleting again: 404 and no second entry.
    app.delete(&format!("/v1/admin/users/{}", user.id))
        .bearer(&root.token)
        .await
        .assert_problem(404, "not_found");
    assert_eq!(audit(&app, &root).await.len(), entries.len());
}

/// A user deleted while their tasks are being deleted: both take the task rows, then the
/// owner's row (whose task count the deletes change), so neither waits on the other in a
/// cycle. Before, the user deletion locked the owner first: a deadlock on Postgres, and a
/// 503 for one side.
async fn deleting_a_user_while_their_tasks_are_deleted_never_deadlocks(backend: Backend) {
    let (app, root) = start(backend).await;
    for round in 0..3 {
        let email = format!("busy{round}@example.com");
        let user = app.create_user(&email, Role::User).await;
        let mut ids = Vec::new();
        for i in 0..12 {
            let r = app
                .post("/v1/tasks")
                .bearer(&user.token)
                .json(json!({"title": format!("t{i}")}))
                .await;
            assert_eq!(r.status, StatusCode::CREATED);
            ids.push(r.json()["id"].as_str().unwrap().to_owned());
        }
        let deletes = futures::future::join_all(ids.iter().map(|id| {
            let (app, user) = (&app, &user);
            async move {
                app.delete(&format!("/v1/tasks/{id}"))
                    .bearer(&user.token)
                    .await
            }
        }));
        let removal = async {
            app.delete(&format!("/v1/admin/users/{}", user.id))
                .bearer(&root.token)
                .await
        };
        let (deleted, removed) = tokio::join!(deletes, removal);
        assert_eq!(
            removed.status,
            StatusCode::NO_CONTENT,
            "{backend:?}: {:?}",
            removed.body
        );
        for r in deleted {
            // Gone with the user (401: the token's user no longer exists, 404: the task was
            // already deleted), or deleted first: never a 5xx.
            assert!(
                matches!(r.status.as_u16(), 204 | 401 | 404),
                "{backend:?}: {} {:?}",
                r.status,
                r.body
            );
        }
    }
    assert_eq!(app.state.store.admin().stats().await.unwrap().tasks, 0);
}

async fn audit_entries_exist_once_per_successful_mutation_and_never_for_failures(backend: Backend) {
    let (app, root) = start(backend).await;
    let user = app.create_user("audited@example.com", Role::User).await;
    let path = format!("/v1/admin/users/{}", user.id);
    let patch = |body: Value| {
        let (app, token, path) = (&app, root.token.clone(), path.clone());
        async move { app.patch(&path).bearer(&token).json(body).await }
    };
    assert_eq!(patch(json!({"role": "admin"})).await.status, StatusCode::OK);
    assert_eq!(patch(json!({"role": "admin"})).await.status, StatusCode::OK); // no change: no entry
    assert_eq!(
        patch(json!({"disabled": true})).await.status,
        StatusCode::OK
    );
    assert_eq!(
        patch(json!({"disabled": false, "role": "user"}))
            .await
            .status,
        StatusCode::OK
    );
    // Failures: bad role, null fields, empty body, unknown field, unknown user, last admin.
    patch(json!({"role": "root"}))
        .await
        .assert_problem(422, "validation_failed");
    for body in [
        json!({"role": null}),
        json!({"disabled": null}),
        json!({"role": "admin", "disabled": null}),
    ] {
        patch(body).await.assert_problem(422, "validation_failed");
    }
    patch(json!({}))
        .await
        .assert_problem(422, "validation_failed");
    patch(json!({"email": "x@example.com"}))
        .await
        .assert_problem(422, "validation_failed");
    let missing = format!("/v1/admin/users/{}", uuid::Uuid::now_v7());
    app.patch(&missing)
        .bearer(&root.token)
        .json(json!({"disabled": true}))
        .await
        .assert_problem(404, "not_found");
    app.patch(&format!("/v1/admin/users/{}", root.id))
        .bearer(&root.token)
        .json(json!({"disabled": true}))
        .await
        .assert_problem(409, "last_admin");
    app.get("/v1/admin/users/not-a-uuid")
        .bearer(&root.token)
        .await
        .assert_problem(400, "invalid_path");

    let mut actions: Vec<String> = audit(&app, &root)
        .await
        .iter()
        .map(|e| {
            assert_eq!(e["target_id"], json!(user.id));
            assert_eq!(e["actor_id"], json!(root.id));
            assert!(e["created_at"].is_string() && e["id"].is_string());
            e["action"].as_str().unwrap().to_owned()
        })
        .collect();
    actions.reverse(); // oldest first
    assert_eq!(
        actions,
        [
            "user.role_changed",
            "user.disabled",
            "user.role_changed",
            "user.enabled"
        ]
    );
}

async fn stats_are_exact_after_a_scripted_mix(backend: Backend) {
    let (app, root) = start(backend).await;
    let mut users = Vec::new();
    for i in 0..5 {
        users.push(
            app.create_user(&format!("u{i}@example.com"), Role::User)
                .await,
        );
    }
    for (i, u) in users.iter().enumerate() {
        for j in 0..=i {
            let r = app
                .post("/v1/tasks")
                .bearer(&u.token)
                .json(json!({"title": format!("t{j}"), "completed": j % 2 == 0}))
                .await;
            assert_eq!(r.status, StatusCode::CREATED);
        }
    }
    // 15 tasks, completed where j is even: i=0:1, 1:1, 2:2, 3:2, 4:3 → 9.
    app.patch(&format!("/v1/admin/users/{}", users[0].id))
        .bearer(&root.token)
        .json(json!({"role": "admin"}))
        .await;
    app.patch(&format!("/v1/admin/users/{}", users[1].id))
        .bearer(&root.token)
        .json(json!({"disabled": true}))
        .await;
    // Deleting users[4] removes 5 tasks, 3 of them completed.
    app.delete(&format!("/v1/admin/users/{}", users[4].id))
        .bearer(&root.token)
        .await;
    let stats = app.get("/v1/admin/stats").bearer(&root.token).await.json();
    assert_eq!(
        stats,
        json!({"users": 5, "admins": 2, "disabled_users": 1, "tasks": 10, "completed_tasks": 6})
    );
}

async fn the_user_list_filters_and_paginates(backend: Backend) {
    let (app, root) = start(backend).await;
    for i in 0..12 {
        app.create_user(&format!("member{i:02}@example.com"), Role::User)
            .await;
    }
    let special = app.create_user("Zoe.Special@Example.com", Role::User).await;
    app.disable_user(special.id).await;
    let list = |q: &str| {
        let (app, token, q) = (&app, root.token.clone(), q.to_owned());
        async move {
            let r = app
                .get(&format!("/v1/admin/users?{q}"))
                .bearer(&token)
                .await;
            assert_eq!(r.status, StatusCode::OK, "{q}: {:?}", r.body);
            r.json()
        }
    };
    let emails = |v: &Value| {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["email"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        emails(&list("q=SPECIAL").await),
        ["zoe.special@example.com"]
    );
    assert_eq!(
        emails(&list("q=test%20user&role=admin").await),
        ["root@example.com"]
    );
    assert_eq!(
        emails(&list("disabled=true").await),
        ["zoe.special@example.com"]
    );
    assert_eq!(
        list("role=user&disabled=false").await["items"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = list(&format!("limit=5{cursor}")).await;
        seen.extend(emails(&page));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 14);
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 14);
    for q in [
        "role=owner",
        "disabled=maybe",
        "limit=0",
        "limit=101",
        "cursor=forged",
    ] {
        app.get(&format!("/v1/admin/users?{q}"))
            .bearer(&root.token)
            .await
            .assert_problem(400, "invalid_query");
    }
    let user_json = list("q=member00").await["items"][0].clone();
    for field in [
        "id",
        "email",
        "name",
        "role",
        "disabled",
        "created_at",
        "updated_at",
    ] {
        assert!(user_json.get(field).is_some(), "{field}");
    }
    assert!(user_json.get("password_hash").is_none());
}

shared::backend_tests!(
    every_admin_route_is_401_without_a_token_and_403_for_non_admins,
    admins_demoting_each_other_at_once_never_leave_zero_admins,
    the_last_admin_cannot_be_demoted_disabled_or_deleted,
    disabling_refuses_tokens_at_once_and_enabling_restores_login,
    deleting_a_user_removes_tasks_tokens_and_login_state_but_keeps_the_audit,
    deleting_a_user_while_their_tasks_are_deleted_never_deadlocks,
    audit_entries_exist_once_per_successful_mutation_and_never_for_failures,
    stats_are_exact_after_a_scripted_mix,
    the_user_list_filters_and_paginates,
);

/// A non-admin knocking on an admin route is a security event naming the user, with the
/// request id of the refusal.
fn admin_route_refusals_are_security_events(backend: Backend) {
    if backend == Backend::Postgres && !Backend::Postgres.available() {
        return;
    }
    let ((user, request_id), logs) = shared::testing::capture_logs(async {
        let (app, _) = start(backend).await;
        let user = app.create_user("curious@example.com", Role::User).await;
        let refused = app.get("/v1/admin/stats").bearer(&user.token).await;
        let body = refused.assert_problem(403, "forbidden");
        (user, body["request_id"].as_str().unwrap().to_owned())
    });
    let event = logs
        .lines()
        .find(|l| l.contains("admin_route_refused"))
        .unwrap_or_else(|| panic!("no security event:\n{logs}"));
    assert!(event.contains(&user.id.to_string()), "{event}");
    assert!(event.contains(&request_id), "{event}");
}

#[test]
fn admin_route_refusals_are_security_events_sqlite() {
    admin_route_refusals_are_security_events(Backend::Sqlite);
}

#[test]
fn admin_route_refusals_are_security_events_postgres() {
    admin_route_refusals_are_security_events(Backend::Postgres);
}
