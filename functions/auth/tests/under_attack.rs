//! The auth function against concurrent and hostile clients (the auth-hardening issue), on
//! SQLite and Postgres: a failure budget that holds for 50 parallel guesses, sessions that
//! end when they should even when a login races the event that ends them, throttled
//! password-change guesses, a per-client limit on every endpoint that hashes, an absolute
//! session age, and hashing that cannot take the slots the rest of the API needs.
//!
//! "Verified" is counted at the source: the hasher's job counter says how many passwords
//! were actually checked, whatever the answers say.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::StatusCode;
use serde_json::{Value, json};
use shared::testing::{Backend, TestApp, TestResponse};

const PASSWORD: &str = "correct horse battery staple";
const NEW_PASSWORD: &str = "a brand new password for this one";

async fn login(app: &TestApp, email: &str, password: &str) -> TestResponse {
    app.post("/v1/auth/login")
        .json(json!({"email": email, "password": password}))
        .await
}

async fn me(app: &TestApp, access: &str) -> StatusCode {
    app.get("/v1/auth/me").bearer(access).await.status
}

async fn refresh(app: &TestApp, token: &str) -> TestResponse {
    app.post("/v1/auth/refresh")
        .json(json!({"refresh_token": token}))
        .await
}

async fn change_password(app: &TestApp, access: &str, current: &str, new: &str) -> TestResponse {
    app.post("/v1/auth/password")
        .bearer(access)
        .json(json!({"current_password": current, "new_password": new}))
        .await
}

async fn register(app: &TestApp, email: &str) {
    let created = app
        .post("/v1/auth/register")
        .json(json!({"email": email, "password": PASSWORD, "name": "Target"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
}

/// (access token, refresh token) of a fresh login.
fn pair(response: &TestResponse) -> (String, String) {
    assert_eq!(response.status, StatusCode::OK, "{:?}", response.body);
    let body = response.json();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

async fn user_id(app: &TestApp, email: &str) -> uuid::Uuid {
    let email = shared::models::Email::parse(email).unwrap();
    let found = app.state.store.users().credentials_by_email(&email).await;
    found.unwrap().unwrap().user.id
}

/// Moves every session of `user` into the past: begun `begun_secs_ago`, ended
/// `ended_secs_ago`, straight in the database.
async fn age_sessions(app: &TestApp, user: uuid::Uuid, begun_secs_ago: u32, ended_secs_ago: u32) {
    let sqlite_ago =
        |secs| format!("strftime('%Y-%m-%dT%H:%M:%S.000000Z', 'now', '-{secs} seconds')");
    let sqlite = format!(
        "UPDATE sessions SET created_at = {}, expires_at = {} WHERE user_id = ?1",
        sqlite_ago(begun_secs_ago),
        sqlite_ago(ended_secs_ago)
    );
    let postgres = format!(
        "UPDATE sessions SET created_at = now() - interval '{begun_secs_ago} seconds', expires_at = now() - interval '{ended_secs_ago} seconds' WHERE user_id = $1"
    );
    app.raw_user_statement(&sqlite, &postgres, user).await;
}

fn statuses(responses: &[TestResponse]) -> Vec<u16> {
    responses.iter().map(|r| r.status.as_u16()).collect()
}

/// Whether either token of a pair still works.
async fn works(app: &TestApp, access: &str, refresh_token: &str) -> bool {
    me(app, access).await == StatusCode::OK || refresh(app, refresh_token).await.status.is_success()
}

async fn fifty_parallel_wrong_logins_verify_at_most_five_and_the_right_one_is_then_429(
    backend: Backend,
) {
    let app = TestApp::start(backend, auth::router).await;
    register(&app, "target@example.com").await;
    let hashes_before = app.state.passwords.jobs_started();
    // 50 wrong guesses and the right password, all at once.
    let results = futures::future::join_all((0..51).map(|i| {
        let app = &app;
        async move {
            let password = if i == 25 {
                PASSWORD.to_owned()
            } else {
                format!("wrong guess number {i:03}")
            };
            login(app, " Target@Example.com", &password).await
        }
    }))
    .await;
    let verified = app.state.passwords.jobs_started() - hashes_before;
    let failed = results.iter().filter(|r| r.status == 401).count();
    assert!(verified <= 5, "{verified} passwords were checked");
    assert!(failed <= 5, "{:?}", statuses(&results));
    for r in results.iter().filter(|r| r.status == 429) {
        r.assert_problem(429, "too_many_requests");
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&wait), "{wait}");
    }
    assert!(
        results
            .iter()
            .all(|r| [200, 401, 429].contains(&r.status.as_u16())),
        "{:?}",
        statuses(&results)
    );
    // A success in the burst gave back only its own attempt: fill the budget, then the
    // right password is refused too, without being checked.
    for i in 0..5 {
        login(
            &app,
            "target@example.com",
            &format!("another wrong one {i}"),
        )
        .await;
    }
    let before = app.state.passwords.jobs_started();
    login(&app, "target@example.com", PASSWORD)
        .await
        .assert_problem(429, "too_many_requests");
    assert_eq!(app.state.passwords.jobs_started(), before);
}

async fn the_budget_holds_for_four_instances_sharing_a_database(backend: Backend) {
    let mut apps = vec![TestApp::start(backend, auth::router).await];
    for _ in 0..3 {
        let another = apps[0].another_instance(auth::router);
        apps.push(another);
    }
    assert_eq!(apps.len(), 4);
    register(&apps[0], "shared@example.com").await;
    let results = futures::future::join_all((0..60).map(|i| {
        let app = &apps[i % 4];
        async move { login(app, "shared@example.com", &format!("wrong guess {i:03}")).await }
    }))
    .await;
    let verified: u64 = apps.iter().map(|a| a.state.passwords.jobs_started()).sum();
    // One hash was the registration's.
    assert!(verified <= 1 + 5, "{verified} hashes");
    let failed = results.iter().filter(|r| r.status == 401).count();
    assert_eq!(failed, 5, "{:?}", statuses(&results));
    assert_eq!(
        results.iter().filter(|r| r.status == 429).count(),
        55,
        "{:?}",
        statuses(&results)
    );
}

async fn access_tokens_stop_at_logout_and_at_a_password_change(backend: Backend) {
    let app = TestApp::start(backend, auth::router).await;
    register(&app, "sessions@example.com").await;
    let (access_a, refresh_a) = pair(&login(&app, "sessions@example.com", PASSWORD).await);
    let (access_b, refresh_b) = pair(&login(&app, "sessions@example.com", PASSWORD).await);
    assert_eq!(me(&app, &access_a).await, StatusCode::OK);

    // Logout ends session A only.
    let out = app
        .post("/v1/auth/logout")
        .json(json!({"refresh_token": refresh_a}))
        .await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    assert_eq!(me(&app, &access_a).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&app, &access_b).await, StatusCode::OK);

    // A rotated pair of session B works; a password change ends it, this caller's too.
    let (access_b2, refresh_b2) = pair(&refresh(&app, &refresh_b).await);
    assert_eq!(me(&app, &access_b2).await, StatusCode::OK);
    let changed = change_password(&app, &access_b2, PASSWORD, NEW_PASSWORD).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    for access in [&access_b, &access_b2] {
        assert_eq!(me(&app, access).await, StatusCode::UNAUTHORIZED);
    }
    refresh(&app, &refresh_b2)
        .await
        .assert_problem(401, "invalid_refresh_token");
    // A new login works, with the new password only.
    let (access_c, _) = pair(&login(&app, "sessions@example.com", NEW_PASSWORD).await);
    assert_eq!(me(&app, &access_c).await, StatusCode::OK);
}

async fn logins_racing_a_password_change_leave_no_working_token(backend: Backend) {
    let app = TestApp::start_with(
        backend,
        auth::router,
        &[
            ("LOGIN_MAX_FAILURES", "1000"),
            ("PASSWORD_HASH_QUEUE", "1000"),
        ],
    )
    .await;
    for trial in 0..3 {
        let email = format!("racer{trial}@example.com");
        register(&app, &email).await;
        let (access, _) = pair(&login(&app, &email, PASSWORD).await);
        // Logins arrive in a steady stream, so whenever the change commits some of them are
        // between checking the old password and starting their session.
        let logins = futures::future::join_all((0..40u64).map(|i| {
            let (app, email) = (&app, &email);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(20 * i)).await;
                login(app, email, PASSWORD).await
            }
        }));
        let change = async {
            tokio::time::sleep(std::time::Duration::from_millis(200 + 150 * trial)).await;
            change_password(&app, &access, PASSWORD, NEW_PASSWORD).await
        };
        let (results, changed) = tokio::join!(logins, change);
        assert_eq!(changed.status, StatusCode::NO_CONTENT, "{:?}", changed.body);
        let mut issued = 0;
        for r in results.iter().filter(|r| r.status == StatusCode::OK) {
            issued += 1;
            let (access, refresh_token) = pair(r);
            assert!(
                !works(&app, &access, &refresh_token).await,
                "a token from a login with the old password survived the change"
            );
        }
        for r in results.iter().filter(|r| r.status != StatusCode::OK) {
            r.assert_problem(401, "invalid_credentials");
        }
        eprintln!("trial {trial}: {issued} of 40 raced logins were issued tokens; none works");
    }
}

/// The mechanism behind the race above, step by step: a login that read the credentials
/// before a password change cannot start a session after it.
async fn a_session_cannot_start_from_credentials_read_before_a_password_change(backend: Backend) {
    let app = TestApp::start(backend, auth::router).await;
    register(&app, "stale@example.com").await;
    let users = app.state.store.users();
    let email = shared::models::Email::parse("stale@example.com").unwrap();
    let read = users.credentials_by_email(&email).await.unwrap().unwrap();
    let now = shared::models::now();
    assert!(
        users
            .change_password(read.user.id, &read.password_hash, read.session_epoch, now)
            .await
            .unwrap()
    );
    // A second change that checked the password at the old epoch changes nothing.
    assert!(
        !users
            .change_password(read.user.id, "not a hash", read.session_epoch, now)
            .await
            .unwrap()
    );
    let session = |epoch| shared::store::NewSession {
        id: uuid::Uuid::now_v7(),
        user_id: read.user.id,
        epoch,
        created_at: now,
        expires_at: now + time::Duration::days(30),
    };
    let first = || shared::store::NextRefreshToken {
        id: uuid::Uuid::now_v7(),
        hash: shared::auth::refresh::generate().1,
        expires_at: now + time::Duration::hours(1),
    };
    let tokens = app.state.store.tokens();
    assert!(
        !tokens
            .start_session(&session(read.session_epoch), &first())
            .await
            .unwrap()
    );
    let fresh = users.credentials_by_email(&email).await.unwrap().unwrap();
    assert_eq!(fresh.session_epoch, read.session_epoch + 1);
    assert!(
        tokens
            .start_session(&session(fresh.session_epoch), &first())
            .await
            .unwrap()
    );
}

async fn password_change_guesses_share_the_login_budget(backend: Backend) {
    let app = TestApp::start(backend, auth::router).await;
    register(&app, "stolen@example.com").await;
    let (access, _) = pair(&login(&app, "stolen@example.com", PASSWORD).await);
    // A thief with the access token guesses the current password, in parallel.
    let guesses =
        futures::future::join_all((0..20).map(|i| {
            let (app, access) = (&app, &access);
            async move {
                change_password(app, access, &format!("guess number {i:03}"), NEW_PASSWORD).await
            }
        }))
        .await;
    assert_eq!(
        guesses.iter().filter(|r| r.status == 401).count(),
        5,
        "{:?}",
        statuses(&guesses)
    );
    for r in guesses.iter().filter(|r| r.status != 401) {
        r.assert_problem(429, "too_many_requests");
    }
    // The budget is spent for the password change and for login alike, right password or not.
    change_password(&app, &access, PASSWORD, NEW_PASSWORD)
        .await
        .assert_problem(429, "too_many_requests");
    login(&app, "stolen@example.com", PASSWORD)
        .await
        .assert_problem(429, "too_many_requests");
    assert_eq!(me(&app, &access).await, StatusCode::OK, "nothing changed");
}

async fn each_credential_endpoint_is_limited_per_client_before_hashing(backend: Backend) {
    let app = TestApp::start_with(
        backend,
        auth::router,
        &[
            ("AUTH_RATE_LIMIT_PER_MINUTE", "1"),
            ("AUTH_RATE_LIMIT_BURST", "3"),
        ],
    )
    .await;
    register(&app, "limited@example.com").await;
    let (access, _) = pair(&login(&app, "limited@example.com", PASSWORD).await);
    let endpoints: [(&str, &str, Value, Option<&str>); 3] = [
        (
            "203.0.113.1",
            "/v1/auth/login",
            json!({"email": "guessed@example.com", "password": "not the password!"}),
            None,
        ),
        (
            "203.0.113.2",
            "/v1/auth/register",
            json!({"email": "new@example.com", "password": "short", "name": "N"}),
            None,
        ),
        (
            "2001:db8:7:7::1",
            "/v1/auth/password",
            json!({"current_password": "not the password!", "new_password": NEW_PASSWORD}),
            Some(&access),
        ),
    ];
    for (client, path, body, bearer) in endpoints {
        for _ in 0..3 {
            let r = app
                .post(path)
                .from_client(client)
                .maybe_bearer(bearer)
                .json(body.clone())
                .await;
            assert_ne!(
                r.status,
                StatusCode::TOO_MANY_REQUESTS,
                "{path}: {:?}",
                r.body
            );
        }
        let hashes = app.state.passwords.jobs_started();
        let refused = app
            .post(path)
            .from_client(client)
            .maybe_bearer(bearer)
            .json(body.clone())
            .await;
        refused.assert_problem(429, "too_many_requests");
        let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&wait), "{path}: Retry-After {wait}");
        assert_eq!(app.state.passwords.jobs_started(), hashes, "{path} hashed");
    }
    // The same /64 is the same client; another address has its own bucket.
    app.post("/v1/auth/login")
        .from_client("2001:db8:7:7:ffff::2")
        .json(json!({"email": "x@example.com", "password": "whatever it is"}))
        .await
        .assert_problem(429, "too_many_requests");
    let other = app
        .post("/v1/auth/login")
        .from_client("198.51.100.9")
        .json(json!({"email": "limited@example.com", "password": PASSWORD}))
        .await;
    assert_eq!(other.status, StatusCode::OK, "{:?}", other.body);
    // Routes that do not hash are not counted.
    assert_eq!(me(&app, &access).await, StatusCode::OK);
}

async fn the_client_limit_holds_for_parallel_requests_and_across_instances(backend: Backend) {
    let extra = [
        ("AUTH_RATE_LIMIT_PER_MINUTE", "1"),
        ("AUTH_RATE_LIMIT_BURST", "10"),
    ];
    let first = TestApp::start_with(backend, auth::router, &extra).await;
    let second = first.another_instance_with(auth::router, &extra);
    let results = futures::future::join_all((0..40).map(|i| {
        let app = if i % 2 == 0 { &first } else { &second };
        async move {
            app.post("/v1/auth/login").from_client("192.0.2.44").json(json!({"email": format!("nobody{i}@example.com"), "password": "whatever it is"}))
            .await
        }
    }))
    .await;
    let passed = results.iter().filter(|r| r.status != 429).count();
    assert_eq!(passed, 10, "{:?}", statuses(&results));
}

async fn a_session_cannot_be_refreshed_past_its_absolute_age(backend: Backend) {
    let app =
        TestApp::start_with(backend, auth::router, &[("SESSION_MAX_AGE_SECS", "86400")]).await;
    register(&app, "old@example.com").await;
    let login = login(&app, "old@example.com", PASSWORD).await;
    // The first refresh token expires with the session, not after the 14-day TTL.
    assert_eq!(login.json()["refresh_expires_in"], 86_400);
    let (_, token) = pair(&login);
    let (_, token) = pair(&refresh(&app, &token).await);
    // The session began a day and a second ago, so it ended a second ago; its refresh
    // token has not expired.
    let user = user_id(&app, "old@example.com").await;
    age_sessions(&app, user, 86_401, 1).await;
    refresh(&app, &token)
        .await
        .assert_problem(401, "invalid_refresh_token");
}

async fn prune_deletes_ended_sessions_and_their_tokens_and_keeps_live_ones(backend: Backend) {
    let app = TestApp::start(backend, auth::router).await;
    register(&app, "live@example.com").await;
    register(&app, "aged@example.com").await;
    let (_, live) = pair(&login(&app, "live@example.com", PASSWORD).await);
    let (_, out) = pair(&login(&app, "live@example.com", PASSWORD).await);
    let logout = app
        .post("/v1/auth/logout")
        .json(json!({"refresh_token": out}))
        .await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    pair(&login(&app, "aged@example.com", PASSWORD).await);
    // Ended two days ago: past any access token's lifetime.
    let aged = user_id(&app, "aged@example.com").await;
    age_sessions(&app, aged, 3 * 86_400, 2 * 86_400).await;
    let pruned = app
        .state
        .store
        .tokens()
        .prune(shared::models::now())
        .await
        .unwrap();
    let count = |what: &str| pruned.iter().find(|(w, _)| *w == what).unwrap().1;
    assert_eq!(count("sessions"), 2, "{pruned:?}");
    assert_eq!(count("refresh tokens"), 2, "{pruned:?}");
    // Throttle rows of this very minute stay.
    assert_eq!(count("login throttle rows"), 0, "{pruned:?}");
    assert_eq!(count("client throttle rows"), 0, "{pruned:?}");
    assert_eq!(refresh(&app, &live).await.status, StatusCode::OK);
    refresh(&app, &out)
        .await
        .assert_problem(401, "invalid_refresh_token");
}

async fn a_request_waiting_for_a_hash_holds_no_global_slot_and_a_full_queue_is_503(
    backend: Backend,
) {
    let app = TestApp::start_with(
        backend,
        auth::router,
        &[
            ("CONCURRENCY_LIMIT", "2"),
            ("PASSWORD_HASH_CONCURRENCY", "1"),
            ("PASSWORD_HASH_QUEUE", "3"),
            ("LOGIN_MAX_FAILURES", "1000"),
        ],
    )
    .await;
    register(&app, "busy@example.com").await;
    let (access, _) = pair(&login(&app, "busy@example.com", PASSWORD).await);
    let hashes_before = app.state.passwords.jobs_started();
    let flood = futures::future::join_all((0..12).map(|i| {
        let app = &app;
        async move { login(app, &format!("flood{i}@example.com"), "flooding password").await }
    }));
    // While the logins hash and queue, a request that needs no hash still gets a slot.
    let probe = async {
        while app.state.passwords.jobs_started() < hashes_before + 2 {
            tokio::task::yield_now().await;
        }
        me(&app, &access).await
    };
    let (results, probed) = tokio::join!(flood, probe);
    assert_eq!(probed, StatusCode::OK);
    let busy: Vec<_> = results.iter().filter(|r| r.status == 503).collect();
    assert!(!busy.is_empty(), "{:?}", statuses(&results));
    for r in &busy {
        r.assert_problem(503, "service_unavailable");
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    assert!(
        results
            .iter()
            .all(|r| [401, 503].contains(&r.status.as_u16())),
        "{:?}",
        statuses(&results)
    );
    // At most one hashing plus three waiting at any time: 12 at once cannot all be taken.
    assert!(app.state.passwords.jobs_started() - hashes_before <= 11);
}

shared::backend_tests!(
    fifty_parallel_wrong_logins_verify_at_most_five_and_the_right_one_is_then_429,
    the_budget_holds_for_four_instances_sharing_a_database,
    access_tokens_stop_at_logout_and_at_a_password_change,
    logins_racing_a_password_change_leave_no_working_token,
    a_session_cannot_start_from_credentials_read_before_a_password_change,
    password_change_guesses_share_the_login_budget,
    each_credential_endpoint_is_limited_per_client_before_hashing,
    the_client_limit_holds_for_parallel_requests_and_across_instances,
    a_session_cannot_be_refreshed_past_its_absolute_age,
    prune_deletes_ended_sessions_and_their_tokens_and_keeps_live_ones,
    a_request_waiting_for_a_hash_holds_no_global_slot_and_a_full_queue_is_503,
);

/// Log capture drives a runtime of its own, so these are plain `#[test]`s that build the
/// app inside it.
fn security_events_are_logged_without_the_email(backend: Backend) {
    if backend == Backend::Postgres && !Backend::Postgres.available() {
        return;
    }
    let ((), logs) = shared::testing::capture_logs(async {
        let app = TestApp::start(backend, auth::router).await;
        register(&app, "watched@example.com").await;
        let r = app
            .post("/v1/auth/login")
            .from_client("203.0.113.50")
            .json(json!({"email": "watched@example.com", "password": "wrong password here"}))
            .await;
        r.assert_problem(401, "invalid_credentials");
        app.post("/v1/auth/login")
            .from_client("203.0.113.50")
            .json(json!({"email": "nobody@example.com", "password": "wrong password here"}))
            .await
            .assert_problem(401, "invalid_credentials");
        for _ in 0..5 {
            app.post("/v1/auth/login")
                .from_client("203.0.113.50")
                .json(json!({"email": "nobody@example.com", "password": "wrong password here"}))
                .await;
        }
    });
    let events: Vec<&str> = logs.lines().filter(|l| l.contains("security")).collect();
    let failed: Vec<&&str> = events
        .iter()
        .filter(|l| l.contains("login_failed"))
        .collect();
    assert!(failed.len() >= 2, "{logs}");
    assert!(
        failed
            .iter()
            .all(|l| l.contains("203.0.113.50") && l.contains("request_id")),
        "{logs}"
    );
    assert!(failed.iter().any(|l| l.contains("user_id")), "{logs}");
    assert!(failed.iter().any(|l| l.contains("email_hash")), "{logs}");
    assert!(
        events.iter().any(|l| l.contains("login_locked_out")),
        "{logs}"
    );
    assert!(
        events.iter().any(|l| l.contains("login_throttled")),
        "{logs}"
    );
    assert!(!logs.contains("nobody@example.com"), "{logs}");
    assert!(!logs.contains("watched@example.com"), "{logs}");
}

fn a_reused_refresh_token_is_a_security_event(backend: Backend) {
    if backend == Backend::Postgres && !Backend::Postgres.available() {
        return;
    }
    let ((), logs) = shared::testing::capture_logs(async {
        let app = TestApp::start(backend, auth::router).await;
        register(&app, "reuse@example.com").await;
        let (_, token) = pair(&login(&app, "reuse@example.com", PASSWORD).await);
        pair(&refresh(&app, &token).await);
        refresh(&app, &token)
            .await
            .assert_problem(401, "refresh_token_reused");
    });
    assert!(
        logs.lines()
            .any(|l| l.contains("refresh_token_reused") && l.contains("user_id")),
        "{logs}"
    );
}

#[test]
fn security_events_are_logged_without_the_email_sqlite() {
    security_events_are_logged_without_the_email(Backend::Sqlite);
}

#[test]
fn security_events_are_logged_without_the_email_postgres() {
    security_events_are_logged_without_the_email(Backend::Postgres);
}

#[test]
fn a_reused_refresh_token_is_a_security_event_sqlite() {
    a_reused_refresh_token_is_a_security_event(Backend::Sqlite);
}

#[test]
fn a_reused_refresh_token_is_a_security_event_postgres() {
    a_reused_refresh_token_is_a_security_event(Backend::Postgres);
}
