//! Router tests of the auth function on SQLite and Postgres, one per acceptance line of the
//! auth issue where they fit a router test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use axum::http::StatusCode;
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac, digest::KeyInit};
use serde_json::{Value, json};
use sha2::{Sha256, Sha512};
use shared::testing::{Backend, TEST_JWT_SECRET, TestApp, TestResponse};

const PASSWORD: &str = "correct horse battery staple";
const OLD_SECRET: &str = "old-jwt-secret-0123456789abcdef0123456789ab";
const REMOVED_SECRET: &str = "removed-jwt-secret-0123456789abcdef01234567";

async fn start(backend: Backend) -> TestApp {
    TestApp::start(backend, auth::router).await
}

async fn register(app: &TestApp, email: &str) -> TestResponse {
    app.post("/v1/auth/register")
        .json(json!({"email": email, "password": PASSWORD, "name": "Ada Lovelace"}))
        .await
}

async fn login(app: &TestApp, email: &str, password: &str) -> TestResponse {
    app.post("/v1/auth/login")
        .json(json!({"email": email, "password": password}))
        .await
}

async fn refresh(app: &TestApp, token: &str) -> TestResponse {
    app.post("/v1/auth/refresh")
        .json(json!({"refresh_token": token}))
        .await
}

async fn me(app: &TestApp, access: &str) -> TestResponse {
    app.get("/v1/auth/me").bearer(access).await
}

async fn me_with_header(app: &TestApp, authorization: &str) -> TestResponse {
    app.get("/v1/auth/me")
        .header("authorization", authorization)
        .await
}

/// Registers and logs in; returns (user id, access token, refresh token).
async fn signed_in(app: &TestApp, email: &str) -> (String, String, String) {
    let user = register(app, email).await;
    assert_eq!(user.status, StatusCode::CREATED, "{:?}", user.body);
    let pair = login(app, email, PASSWORD).await;
    assert_eq!(pair.status, StatusCode::OK, "{:?}", pair.body);
    let pair = pair.json();
    (
        user.json()["id"].as_str().unwrap().to_owned(),
        pair["access_token"].as_str().unwrap().to_owned(),
        pair["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn without_request_id(mut body: Value) -> Value {
    body.as_object_mut().unwrap().remove("request_id");
    body
}

async fn register_login_me_refresh_me_round_trip(backend: Backend) {
    let app = start(backend).await;
    let created = register(&app, "  Ada@Example.COM ").await;
    assert_eq!(created.status, StatusCode::CREATED);
    assert_eq!(created.header("location"), Some("/v1/auth/me"));
    assert_eq!(created.header("cache-control"), Some("no-store"));
    let user = created.json();
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["role"], "user");
    assert_eq!(user["disabled"], false);
    assert!(user.get("password_hash").is_none());
    for field in ["id", "created_at", "updated_at"] {
        assert!(user[field].is_string(), "{field}");
    }

    let pair = login(&app, "ADA@example.com", PASSWORD).await;
    assert_eq!(pair.status, StatusCode::OK);
    assert_eq!(pair.header("cache-control"), Some("no-store"));
    let pair = pair.json();
    assert_eq!(pair["token_type"], "Bearer");
    assert_eq!(pair["expires_in"], 900);
    assert_eq!(pair["refresh_expires_in"], 1_209_600);
    let access = pair["access_token"].as_str().unwrap();
    let first_refresh = pair["refresh_token"].as_str().unwrap();
    assert!(URL_SAFE_NO_PAD.decode(first_refresh).unwrap().len() >= 32);

    let me1 = me(&app, access).await;
    assert_eq!(me1.status, StatusCode::OK);
    assert_eq!(me1.json(), user);

    let rotated = refresh(&app, first_refresh).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let rotated = rotated.json();
    let new_access = rotated["access_token"].as_str().unwrap();
    assert_ne!(rotated["refresh_token"], pair["refresh_token"]);
    assert_eq!(me(&app, new_access).await.json()["id"], user["id"]);

    // The old refresh token is spent.
    refresh(&app, first_refresh)
        .await
        .assert_problem(401, "refresh_token_reused");
}

async fn replaying_a_rotated_token_revokes_the_whole_family(backend: Backend) {
    let app = start(backend).await;
    let (_, _, t0) = signed_in(&app, "family@example.com").await;
    let mut chain = vec![t0];
    for _ in 0..3 {
        let next = refresh(&app, chain.last().unwrap()).await;
        assert_eq!(next.status, StatusCode::OK);
        chain.push(next.json()["refresh_token"].as_str().unwrap().to_owned());
    }
    refresh(&app, &chain[0])
        .await
        .assert_problem(401, "refresh_token_reused");
    for token in &chain {
        let response = refresh(&app, token).await;
        assert_eq!(response.status, StatusCode::UNAUTHORIZED, "{token}");
    }
    // The newest token, never spent, is refused as revoked.
    refresh(&app, &chain[3])
        .await
        .assert_problem(401, "invalid_refresh_token");
}

async fn twenty_concurrent_refreshes_of_one_token_yield_exactly_one_200(backend: Backend) {
    let app = start(backend).await;
    let (_, _, token) = signed_in(&app, "race@example.com").await;
    let results = futures::future::join_all((0..20).map(|_| {
        let app = &app;
        let token = token.clone();
        async move { refresh(app, &token).await }
    }))
    .await;
    let ok = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(
        ok,
        1,
        "statuses: {:?}",
        results.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in results.iter().filter(|r| r.status != StatusCode::OK) {
        r.assert_problem(401, "refresh_token_reused");
    }
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A JWS built by hand, so the test does not lean on the code under test (whose provider
/// signs HS256 only) to forge other algorithms.
fn sign_with<M: Mac + KeyInit>(header: &Value, claims: &Value, secret: &str) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let mut mac = <M as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(message.as_bytes());
    let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{message}.{tag}")
}

fn sign(header: &Value, claims: &Value, secret: &str) -> String {
    sign_with::<Hmac<Sha256>>(header, claims, secret)
}

async fn forged_tokens_are_refused_and_a_previous_key_still_verifies(backend: Backend) {
    let app = TestApp::start_with(
        backend,
        auth::router,
        &[("JWT_PREVIOUS_SECRETS", OLD_SECRET)],
    )
    .await;
    let (id, access, _) = signed_in(&app, "forge@example.com").await;
    let genuine: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap();
    let kid = genuine["kid"].as_str().unwrap().to_owned();
    let genuine_claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(access.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    let sid = genuine_claims["sid"].as_str().unwrap().to_owned();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": "task-api", "aud": "task-api", "sub": id, "role": "user",
        "iat": now, "exp": now + 600, "jti": uuid::Uuid::now_v7(), "sid": sid,
    });
    let header = |alg: &str| json!({"alg": alg, "typ": "at+jwt", "kid": kid});
    let with = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        sign(&header("HS256"), &c, TEST_JWT_SECRET)
    };

    // Sanity: a token we build the same way with the right key passes, so each forgery below
    // fails for its own reason and not for how the test builds tokens.
    assert_eq!(me(&app, &with(json!({}))).await.status, StatusCode::OK);

    let (parts_h, parts_p, _) = {
        let mut it = access.split('.');
        (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
    };
    let _ = parts_h;
    let alg_none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})),
        parts_p
    );
    let hs512 = sign_with::<Hmac<Sha512>>(&header("HS512"), &claims, TEST_JWT_SECRET);
    // RS256 header, "signed" by HMAC with the shared secret posing as a public key.
    let rs256_confusion = {
        let head = b64(&json!({"alg": "RS256", "typ": "at+jwt", "kid": kid}));
        let body = b64(&claims);
        let hmac_token = sign(&header("HS256"), &claims, TEST_JWT_SECRET);
        let signature = hmac_token.rsplit('.').next().unwrap().to_owned();
        format!("{head}.{body}.{signature}")
    };
    let tampered = {
        let mut it = access.split('.');
        let (h, p, s) = (it.next().unwrap(), it.next().unwrap(), it.next().unwrap());
        let mut payload: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
        payload["role"] = json!("admin");
        format!("{h}.{}.{s}", b64(&payload))
    };
    let wrong_typ = {
        let mut h = header("HS256");
        h["typ"] = json!("JWT");
        sign(&h, &claims, TEST_JWT_SECRET)
    };
    let removed_key = {
        let keys = shared::auth::JwtKeys::new(&shared::config::JwtConfig {
            secret: REMOVED_SECRET.to_owned().into(),
            previous_secrets: vec![],
            keys: None,
            issuer: "task-api".into(),
            audience: "task-api".into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
        });
        keys.issue(
            id.parse().unwrap(),
            shared::models::Role::User,
            sid.parse().unwrap(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap()
    };
    let forgeries = [
        ("alg none", alg_none),
        ("HS512", hs512),
        ("RS256 with the HMAC secret", rs256_confusion),
        ("tampered payload", tampered),
        ("wrong iss", with(json!({"iss": "someone-else"}))),
        ("wrong aud", with(json!({"aud": "another-api"}))),
        (
            "expired beyond leeway",
            with(json!({"iat": now - 4000, "exp": now - 120})),
        ),
        ("missing exp", with(json!({"exp": null}))),
        ("wrong typ", wrong_typ),
        ("removed key", removed_key),
        ("garbage", "not.a.token".to_owned()),
        ("unknown user", with(json!({"sub": uuid::Uuid::now_v7()}))),
        ("not valid yet (nbf)", with(json!({"nbf": now + 300}))),
        (
            "issued in the future",
            with(json!({"iat": now + 300, "exp": now + 900})),
        ),
        (
            "unknown session",
            with(json!({"sid": uuid::Uuid::now_v7()})),
        ),
    ];
    for (what, token) in &forgeries {
        let response = me(&app, token).await;
        response.assert_problem(401, "unauthorized");
        assert_eq!(
            response.header("www-authenticate"),
            Some("Bearer"),
            "{what}"
        );
    }
    for header_value in ["Bearer ", "Bearer", "Basic dXNlcjpwYXNz", "Token abc", ""] {
        let response = me_with_header(&app, header_value).await;
        response.assert_problem(401, "unauthorized");
        assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    }
    let no_header = app.get("/v1/auth/me").await;
    no_header.assert_problem(401, "unauthorized");

    // A token signed with a still-configured previous key passes.
    let old_keys = shared::auth::JwtKeys::new(&shared::config::JwtConfig {
        secret: OLD_SECRET.to_owned().into(),
        previous_secrets: vec![],
        keys: None,
        issuer: "task-api".into(),
        audience: "task-api".into(),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(3600),
    });
    let old = old_keys
        .issue(
            id.parse().unwrap(),
            shared::models::Role::User,
            sid.parse().unwrap(),
            time::OffsetDateTime::now_utc(),
        )
        .unwrap();
    assert_eq!(me(&app, &old).await.status, StatusCode::OK);

    // A token without a session (as the release before sessions issued them) is taken as
    // the user's first epoch: it works until their first password change, then never.
    let legacy = with(json!({"sid": null}));
    assert_eq!(me(&app, &legacy).await.status, StatusCode::OK);
    let changed = app
        .post("/v1/auth/password")
        .bearer(&access)
        .json(json!({"current_password": PASSWORD, "new_password": "a brand new password"}))
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    me(&app, &legacy).await.assert_problem(401, "unauthorized");
    me(&app, &access).await.assert_problem(401, "unauthorized");
}

async fn unknown_email_and_wrong_password_look_identical(backend: Backend) {
    let app = start(backend).await;
    register(&app, "real@example.com").await;
    let unknown = login(&app, "nobody@example.com", PASSWORD).await;
    let wrong = login(&app, "real@example.com", "not the right password").await;
    let a = unknown.assert_problem(401, "invalid_credentials");
    let b = wrong.assert_problem(401, "invalid_credentials");
    let a = without_request_id(a);
    assert_eq!(a, without_request_id(b));
    // An email no database could store is the same 401, not a 500.
    let nul = login(&app, "real\u{0}@example.com", PASSWORD).await;
    let c = nul.assert_problem(401, "invalid_credentials");
    assert_eq!(a, without_request_id(c));
}

async fn sixth_failure_in_the_window_is_429_even_with_the_right_password(backend: Backend) {
    let app = start(backend).await;
    register(&app, "locked@example.com").await;
    for _ in 0..5 {
        login(&app, "locked@example.com", "not the right password")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    let locked = login(&app, "Locked@Example.com", PASSWORD).await;
    locked.assert_problem(429, "too_many_requests");
    let retry: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=900).contains(&retry), "{retry}");
    // Another email is not affected.
    register(&app, "free@example.com").await;
    assert_eq!(
        login(&app, "free@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn the_throttle_holds_across_instances_sharing_a_database(backend: Backend) {
    let one = start(backend).await;
    let two = one.another_instance(auth::router);
    register(&one, "shared@example.com").await;
    for i in 0..5 {
        let app = if i % 2 == 0 { &one } else { &two };
        login(app, "shared@example.com", "not the right password")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    login(&two, "shared@example.com", PASSWORD)
        .await
        .assert_problem(429, "too_many_requests");
    login(&one, "shared@example.com", PASSWORD)
        .await
        .assert_problem(429, "too_many_requests");
}

/// The window is judged when an attempt is reserved, with the instance's configured length.
/// So the lock-out is shown on an instance with the default window, where five hashes
/// cannot outlast it however slow the machine, and its end on an instance of the same
/// database told the window is one second: a second after the window opened, whenever
/// that was, it has passed there. No outcome depends on how long the hashes took.
async fn a_short_window_passes_and_logins_work_again(backend: Backend) {
    let app = start(backend).await;
    register(&app, "window@example.com").await;
    for _ in 0..5 {
        login(&app, "window@example.com", "not the right password")
            .await
            .assert_problem(401, "invalid_credentials");
    }
    login(&app, "window@example.com", PASSWORD)
        .await
        .assert_problem(429, "too_many_requests");
    let short = app.another_instance_with(auth::router, &[("LOGIN_WINDOW_SECS", "1")]);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        login(&short, "window@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

async fn stored_hashes_are_argon2id_with_configured_parameters_and_peppered(backend: Backend) {
    let app = start(backend).await;
    register(&app, "hash@example.com").await;
    let email = shared::models::Email::parse("hash@example.com").unwrap();
    let credentials = app
        .state
        .store
        .users()
        .credentials_by_email(&email)
        .await
        .unwrap()
        .unwrap();
    assert!(
        credentials
            .password_hash
            .starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{}",
        credentials.password_hash
    );
    assert!(!credentials.password_hash.contains(PASSWORD));
    // An instance with another pepper cannot verify the same stored hash.
    let other = TestApp::start_with(
        backend,
        auth::router,
        &[("PASSWORD_PEPPER", "a-different-pepper-0123456789abcdef0123")],
    )
    .await;
    let v = other
        .state
        .passwords
        .verify(PASSWORD, &credentials.password_hash)
        .await
        .unwrap();
    assert!(!v.matches);
}

async fn weaker_hashes_are_upgraded_on_the_next_successful_login(backend: Backend) {
    let app = start(backend).await;
    register(&app, "upgrade@example.com").await;
    let stronger = app.another_instance_with(auth::router, &[("ARGON2_MEMORY_KIB", "32768")]);
    assert_eq!(
        login(&stronger, "upgrade@example.com", PASSWORD)
            .await
            .status,
        StatusCode::OK
    );
    let email = shared::models::Email::parse("upgrade@example.com").unwrap();
    let stored = app
        .state
        .store
        .users()
        .credentials_by_email(&email)
        .await
        .unwrap()
        .unwrap()
        .password_hash;
    assert!(stored.contains("m=32768,t=2,p=1"), "{stored}");
}

async fn validation_lists_every_bad_field(backend: Backend) {
    let app = start(backend).await;
    let cases = [
        (
            json!({"email": "nope", "password": PASSWORD, "name": "A"}),
            vec!["email"],
        ),
        (
            json!({"email": "a@example.com", "password": "short", "name": "A"}),
            vec!["password"],
        ),
        (
            json!({"email": "a@example.com", "password": "x".repeat(129), "name": "A"}),
            vec!["password"],
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "   "}),
            vec!["name"],
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": "n".repeat(101)}),
            vec!["name"],
        ),
        (
            json!({"email": "bad", "password": "short", "name": ""}),
            vec!["email", "password", "name"],
        ),
    ];
    for (body, fields) in cases {
        let response = app.post("/v1/auth/register").json(body.clone()).await;
        let problem = response.assert_problem(422, "validation_failed");
        let got: Vec<&str> = problem["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert_eq!(got, fields, "{body}");
        assert!(
            !problem.to_string().contains("xxxxxxxxxxxx"),
            "the password is not echoed"
        );
    }
    // Missing fields are 422 too.
    app.post("/v1/auth/register")
        .json(json!({"email": "a@example.com"}))
        .await
        .assert_problem(422, "validation_failed");
    // Nothing was created.
    assert_eq!(
        login(&app, "a@example.com", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
}

async fn duplicate_email_in_any_case_or_padding_is_409(backend: Backend) {
    let app = start(backend).await;
    assert_eq!(
        register(&app, "dup@example.com").await.status,
        StatusCode::CREATED
    );
    for variant in ["dup@example.com", "DUP@Example.Com", "  dup@example.com\t"] {
        register(&app, variant)
            .await
            .assert_problem(409, "email_taken");
    }
}

async fn fifty_concurrent_registrations_of_one_email_make_one_user(backend: Backend) {
    let app = start(backend).await;
    let results = futures::future::join_all((0..50).map(|i| {
        let app = &app;
        async move {
            let email = if i % 2 == 0 {
                "race@example.com"
            } else {
                "RACE@example.com "
            };
            register(app, email).await
        }
    }))
    .await;
    let created = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1);
    for r in results.iter().filter(|r| r.status != StatusCode::CREATED) {
        r.assert_problem(409, "email_taken");
    }
}

async fn password_change_revokes_every_family(backend: Backend) {
    let app = start(backend).await;
    let (_, access, first) = signed_in(&app, "change@example.com").await;
    let second = login(&app, "change@example.com", PASSWORD).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let change = |current: &'static str, new: &'static str| {
        let app = &app;
        let access = access.clone();
        async move {
            app.post("/v1/auth/password")
                .bearer(&access)
                .json(json!({"current_password": current, "new_password": new}))
                .await
        }
    };
    change("not the right password", "a brand new password")
        .await
        .assert_problem(401, "invalid_credentials");
    change(PASSWORD, "short")
        .await
        .assert_problem(422, "validation_failed");
    // Neither failure changed anything: the second family still rotates.
    let rotated = refresh(&app, &second).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let third = rotated.json()["refresh_token"].as_str().unwrap().to_owned();

    let ok = change(PASSWORD, "a brand new password").await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    // Both families' live tokens are revoked.
    refresh(&app, &first)
        .await
        .assert_problem(401, "invalid_refresh_token");
    refresh(&app, &third)
        .await
        .assert_problem(401, "invalid_refresh_token");
    login(&app, "change@example.com", PASSWORD)
        .await
        .assert_problem(401, "invalid_credentials");
    assert_eq!(
        login(&app, "change@example.com", "a brand new password")
            .await
            .status,
        StatusCode::OK
    );
}

async fn password_change_revokes_an_unspent_family_too(backend: Backend) {
    let app = start(backend).await;
    let (_, access, token) = signed_in(&app, "unspent@example.com").await;
    let ok = app
        .post("/v1/auth/password")
        .bearer(&access)
        .json(json!({"current_password": PASSWORD, "new_password": "a brand new password"}))
        .await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    refresh(&app, &token)
        .await
        .assert_problem(401, "invalid_refresh_token");
}

async fn logout_revokes_one_family_and_is_idempotent(backend: Backend) {
    let app = start(backend).await;
    let (_, _, first) = signed_in(&app, "logout@example.com").await;
    let other = login(&app, "logout@example.com", PASSWORD).await.json()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    for _ in 0..2 {
        let response = app
            .post("/v1/auth/logout")
            .json(json!({"refresh_token": first}))
            .await;
        assert_eq!(response.status, StatusCode::NO_CONTENT);
    }
    refresh(&app, &first)
        .await
        .assert_problem(401, "invalid_refresh_token");
    assert_eq!(refresh(&app, &other).await.status, StatusCode::OK);
    let garbage = app
        .post("/v1/auth/logout")
        .json(json!({"refresh_token": "garbage"}))
        .await;
    assert_eq!(garbage.status, StatusCode::NO_CONTENT);
}

async fn bad_refresh_tokens_are_invalid(backend: Backend) {
    let app = start(backend).await;
    refresh(&app, "garbage")
        .await
        .assert_problem(401, "invalid_refresh_token");
    let (unknown, _) = shared::auth::refresh::generate();
    refresh(&app, &unknown)
        .await
        .assert_problem(401, "invalid_refresh_token");
}

async fn expired_refresh_tokens_are_invalid(backend: Backend) {
    let app = TestApp::start_with(backend, auth::router, &[("REFRESH_TOKEN_TTL_SECS", "60")]).await;
    let (_, _, token) = signed_in(&app, "expire@example.com").await;
    // Age the token in the database rather than waiting a minute.
    let hash = shared::auth::refresh::hash_presented(&token).unwrap();
    let later = shared::models::now() + time::Duration::seconds(61);
    let next = shared::store::NextRefreshToken {
        id: uuid::Uuid::now_v7(),
        hash: shared::auth::refresh::generate().1,
        expires_at: later + time::Duration::seconds(60),
    };
    let outcome = app
        .state
        .store
        .tokens()
        .rotate_refresh(&hash, &next, later)
        .await
        .unwrap();
    assert_eq!(outcome, shared::store::Rotation::Invalid);
    // And through HTTP, while still valid, the same token works.
    assert_eq!(refresh(&app, &token).await.status, StatusCode::OK);
}

async fn disabled_accounts_get_403_with_the_right_password_and_lose_their_tokens(backend: Backend) {
    let app = start(backend).await;
    let (id, access, _) = signed_in(&app, "disabled@example.com").await;
    app.disable_user(id.parse().unwrap()).await;
    login(&app, "disabled@example.com", PASSWORD)
        .await
        .assert_problem(403, "account_disabled");
    login(&app, "disabled@example.com", "not the right password")
        .await
        .assert_problem(401, "invalid_credentials");
    me(&app, &access).await.assert_problem(401, "unauthorized");
}

async fn malformed_bodies_are_problems(backend: Backend) {
    let app = start(backend).await;
    app.post("/v1/auth/login")
        .header("content-type", "application/json")
        .body("{\"email\": ")
        .await
        .assert_problem(400, "malformed_json");
    app.post("/v1/auth/login")
        .body("{}")
        .await
        .assert_problem(415, "unsupported_media_type");
    app.get("/v1/auth/login")
        .await
        .assert_problem(405, "method_not_allowed");
}

shared::backend_tests!(
    register_login_me_refresh_me_round_trip,
    replaying_a_rotated_token_revokes_the_whole_family,
    twenty_concurrent_refreshes_of_one_token_yield_exactly_one_200,
    forged_tokens_are_refused_and_a_previous_key_still_verifies,
    unknown_email_and_wrong_password_look_identical,
    sixth_failure_in_the_window_is_429_even_with_the_right_password,
    the_throttle_holds_across_instances_sharing_a_database,
    a_short_window_passes_and_logins_work_again,
    stored_hashes_are_argon2id_with_configured_parameters_and_peppered,
    weaker_hashes_are_upgraded_on_the_next_successful_login,
    validation_lists_every_bad_field,
    duplicate_email_in_any_case_or_padding_is_409,
    fifty_concurrent_registrations_of_one_email_make_one_user,
    password_change_revokes_every_family,
    password_change_revokes_an_unspent_family_too,
    logout_revokes_one_family_and_is_idempotent,
    bad_refresh_tokens_are_invalid,
    expired_refresh_tokens_are_invalid,
    disabled_accounts_get_403_with_the_right_password_and_lose_their_tokens,
    malformed_bodies_are_problems,
);

/// The plaintext password reaches no log line at any level, on either backend, through
/// registration, failed and successful logins, a password change and a too-long password.
fn passwords_never_reach_the_logs(backend: Backend) {
    if !backend.available() {
        return;
    }
    const SECRET_PASSWORD: &str = "hunter2-hunter2-hunter2";
    let (bodies, logs) = shared::testing::capture_logs(async {
        let app = start(backend).await;
        let mut bodies = Vec::new();
        let reg = app
            .post("/v1/auth/register")
            .json(json!({"email": "logs@example.com", "password": SECRET_PASSWORD, "name": "L"}))
            .await;
        assert_eq!(reg.status, StatusCode::CREATED);
        bodies.push(
            login(&app, "logs@example.com", "hunter2-wrong-wrong")
                .await
                .body,
        );
        let ok = login(&app, "logs@example.com", SECRET_PASSWORD).await;
        let access = ok.json()["access_token"].as_str().unwrap().to_owned();
        let too_long = format!("{SECRET_PASSWORD}{}", "x".repeat(200));
        bodies.push(
            app.post("/v1/auth/register")
                .json(json!({"email": "logs2@example.com", "password": too_long, "name": "L"}))
                .await
                .body,
        );
        bodies.push(
            app.post("/v1/auth/password").bearer(&access).json(json!({"current_password": SECRET_PASSWORD, "new_password": "hunter2-new-new-new"}))
            .await
            .body,
        );
        bodies
    });
    assert!(
        logs.contains("user registered"),
        "logs were captured: {logs}"
    );
    assert!(logs.contains("request completed"), "{logs}");
    assert!(
        !logs.contains("hunter2"),
        "a password reached the logs:\n{logs}"
    );
    for body in bodies {
        assert!(!String::from_utf8_lossy(&body).contains("hunter2"));
    }
}

#[test]
fn passwords_never_reach_the_logs_sqlite() {
    passwords_never_reach_the_logs(Backend::Sqlite);
}

#[test]
fn passwords_never_reach_the_logs_postgres() {
    passwords_never_reach_the_logs(Backend::Postgres);
}
