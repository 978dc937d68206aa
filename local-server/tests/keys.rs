//! Asymmetric access tokens (`JWT_ALGORITHM` = `EdDSA` / `ES256`): what the server signs
//! verifies from the published JWKS alone, with implementations other than the server's;
//! keys rotate without logging anyone out; and no token of another algorithm, key, issuer
//! or audience gets in.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use shared::{
    auth::keys::{KeyAlgorithm, SigningKey, parse_signing_key, public_pem},
    models::Role,
    testing::{Backend, TestApp},
};

fn algorithm_env(algorithm: KeyAlgorithm, pem: &str) -> Vec<(&'static str, String)> {
    vec![
        ("JWT_ALGORITHM", algorithm.name().to_owned()),
        ("JWT_SIGNING_KEY", pem.to_owned()),
    ]
}

async fn start(backend: Backend, env: &[(&'static str, String)]) -> TestApp {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    TestApp::start_with(backend, local_server::routes, &env).await
}

fn another(app: &TestApp, env: &[(&'static str, String)]) -> TestApp {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    app.another_instance_with(local_server::routes, &env)
}

fn parts(token: &str) -> (Value, String, Vec<u8>) {
    let (message, signature) = token.rsplit_once('.').unwrap();
    let header = message.split('.').next().unwrap();
    let header = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    (
        header,
        message.to_owned(),
        URL_SAFE_NO_PAD.decode(signature).unwrap(),
    )
}

/// Checks `token` against the key set `jwks` alone, with RustCrypto (not ring).
pub fn verifies_from_jwks(jwks: &Value, token: &str) -> bool {
    let (header, message, signature) = parts(token);
    let Some(jwk) = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
    else {
        return false;
    };
    let bytes = |name: &str| URL_SAFE_NO_PAD.decode(jwk[name].as_str().unwrap()).unwrap();
    match (
        header["alg"].as_str(),
        jwk["kty"].as_str(),
        jwk["crv"].as_str(),
    ) {
        (Some("EdDSA"), Some("OKP"), Some("Ed25519")) => {
            use ed25519_dalek::Verifier as _;
            let key =
                ed25519_dalek::VerifyingKey::from_bytes(&bytes("x").try_into().unwrap()).unwrap();
            let Ok(signature) = ed25519_dalek::Signature::from_slice(&signature) else {
                return false;
            };
            key.verify(message.as_bytes(), &signature).is_ok()
        }
        (Some("ES256"), Some("EC"), Some("P-256")) => {
            use p256::ecdsa::signature::Verifier as _;
            let point = p256::EncodedPoint::from_affine_coordinates(
                bytes("x").as_slice().into(),
                bytes("y").as_slice().into(),
                false,
            );
            let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point).unwrap();
            let Ok(signature) = p256::ecdsa::Signature::from_slice(&signature) else {
                return false;
            };
            key.verify(message.as_bytes(), &signature).is_ok()
        }
        _ => false,
    }
}

/// The API's answer to a refused token: 401 `unauthorized`, with RFC 6750's
/// `invalid_token` in the challenge.
async fn assert_refused(app: &TestApp, token: &str) {
    let response = app.get("/v1/auth/me").bearer(token).send().await;
    response.assert_problem(401, "unauthorized");
    assert_eq!(
        response.header("www-authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
}

async fn me_status(app: &TestApp, token: &str) -> u16 {
    app.get("/v1/auth/me")
        .bearer(token)
        .send()
        .await
        .status
        .as_u16()
}

async fn tokens_of_each_algorithm_verify_from_the_published_jwks_alone(backend: Backend) {
    for algorithm in [KeyAlgorithm::EdDsa, KeyAlgorithm::Es256] {
        let pem = SigningKey::generate(algorithm);
        let app = start(backend, &algorithm_env(algorithm, &pem)).await;
        let email = format!("{}@example.com", algorithm.name().to_lowercase());
        let registered = app
            .post("/v1/auth/register")
            .json(
                json!({"email": email, "password": "correct horse battery staple", "name": "Key"}),
            )
            .send()
            .await;
        assert_eq!(registered.status.as_u16(), 201, "{:?}", registered.body);
        let login = app
            .post("/v1/auth/login")
            .json(json!({"email": email, "password": "correct horse battery staple"}))
            .send()
            .await;
        assert_eq!(login.status.as_u16(), 200, "{:?}", login.body);
        let token = login.json()["access_token"].as_str().unwrap().to_owned();
        let (header, _, _) = parts(&token);
        assert_eq!(header["alg"], algorithm.name());
        assert_eq!(header["typ"], "at+jwt");
        if algorithm == KeyAlgorithm::EdDsa {
            assert!(
                token.len() < 600,
                "an EdDSA access token of {} bytes",
                token.len()
            );
        }

        let jwks = app.get("/.well-known/jwks.json").send().await;
        assert_eq!(jwks.status.as_u16(), 200);
        let cache = jwks.header("cache-control").unwrap_or_default().to_owned();
        assert!(cache.contains("max-age="), "{cache}");
        let jwks = jwks.json();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert_eq!(jwks["keys"][0]["alg"], algorithm.name());
        assert_eq!(jwks["keys"][0]["use"], "sig");
        assert!(
            jwks["keys"][0].get("d").is_none(),
            "a private key was published"
        );
        assert_eq!(jwks["keys"][0]["kid"], header["kid"]);
        assert!(verifies_from_jwks(&jwks, &token), "{}", algorithm.name());
        let mut tampered = token.clone();
        tampered.insert(token.find('.').unwrap() + 5, 'A');
        assert!(!verifies_from_jwks(&jwks, &tampered));
        assert_eq!(me_status(&app, &token).await, 200);

        let discovery = app.get("/.well-known/openid-configuration").send().await;
        assert_eq!(discovery.status.as_u16(), 200);
        let discovery = discovery.json();
        assert_eq!(discovery["issuer"], "task-api");
        assert!(
            discovery["jwks_uri"]
                .as_str()
                .unwrap()
                .ends_with("/.well-known/jwks.json"),
            "{discovery}"
        );
    }
    // HS256 publishes nothing: its key is a secret.
    let app = TestApp::start(backend, local_server::routes).await;
    assert_eq!(
        app.get("/.well-known/jwks.json").send().await.json(),
        json!({"keys": []})
    );
}

async fn keys_rotate_without_logging_anyone_out_and_a_removed_key_stops_verifying(
    backend: Backend,
) {
    for algorithm in [KeyAlgorithm::EdDsa, KeyAlgorithm::Es256] {
        let old = SigningKey::generate(algorithm);
        let new = SigningKey::generate(algorithm);
        let old_public = public_pem(parse_signing_key(algorithm, &old).unwrap().public());
        let before = start(backend, &algorithm_env(algorithm, &old)).await;
        let user = before.create_user("rotated@example.com", Role::User).await;

        let mut rotating_env = algorithm_env(algorithm, &new);
        rotating_env.push(("JWT_VERIFY_KEYS", old_public));
        let rotating = another(&before, &rotating_env);
        assert_eq!(
            me_status(&rotating, &user.token).await,
            200,
            "the old key still verifies"
        );
        let fresh = rotating.create_user("fresh@example.com", Role::User).await;
        let (header, _, _) = parts(&fresh.token);
        let jwks = rotating.get("/.well-known/jwks.json").send().await.json();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
        assert_eq!(
            jwks["keys"][0]["kid"], header["kid"],
            "the signing key comes first"
        );
        assert!(verifies_from_jwks(&jwks, &user.token));
        assert!(verifies_from_jwks(&jwks, &fresh.token));

        let after = another(&before, &algorithm_env(algorithm, &new));
        assert_refused(&after, &user.token).await;
        assert_eq!(me_status(&after, &fresh.token).await, 200);
    }
}

/// `header.payload.signature` with `header` and the claims of `like`, signed by `sign`.
fn forge(like: &str, header: Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
    let payload = like.split('.').nth(1).unwrap();
    let message = format!(
        "{}.{payload}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).unwrap())
    );
    let signature = URL_SAFE_NO_PAD.encode(sign(message.as_bytes()));
    format!("{message}.{signature}")
}

async fn tokens_of_another_algorithm_key_issuer_or_audience_are_refused(backend: Backend) {
    let pem = SigningKey::generate(KeyAlgorithm::EdDsa);
    let key = parse_signing_key(KeyAlgorithm::EdDsa, &pem).unwrap();
    let app = start(backend, &algorithm_env(KeyAlgorithm::EdDsa, &pem)).await;
    let user = app.create_user("target@example.com", Role::User).await;
    assert_eq!(me_status(&app, &user.token).await, 200);
    let kid = key.public().kid().to_owned();
    let header = |alg: &str| json!({"alg": alg, "typ": "at+jwt", "kid": kid});
    let hmac = |secret: &[u8], message: &[u8]| {
        use hmac::Mac as _;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(message);
        mac.finalize().into_bytes().to_vec()
    };
    let public_pem = public_pem(key.public());
    let public_raw = key.public().raw().to_vec();
    let es256 = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let other_ed = ed25519_dalek::SigningKey::from_bytes(&rand_bytes());
    let forged = [
        (
            "alg none",
            forge(&user.token, header("none"), |_| Vec::new()),
        ),
        (
            "HS256 keyed with the public key's PEM",
            forge(&user.token, header("HS256"), |m| {
                hmac(public_pem.as_bytes(), m)
            }),
        ),
        (
            "HS256 keyed with the raw public key",
            forge(&user.token, header("HS256"), |m| hmac(&public_raw, m)),
        ),
        (
            "ES256 when EdDSA is configured",
            forge(&user.token, header("ES256"), |m| {
                use p256::ecdsa::signature::Signer as _;
                let signature: p256::ecdsa::Signature = es256.sign(m);
                signature.to_bytes().to_vec()
            }),
        ),
        (
            "EdDSA by another key under the real kid",
            forge(&user.token, header("EdDSA"), |m| {
                use ed25519_dalek::Signer as _;
                other_ed.sign(m).to_bytes().to_vec()
            }),
        ),
        (
            "an unknown kid",
            forge(
                &user.token,
                json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "unknown"}),
                |m| {
                    use ed25519_dalek::Signer as _;
                    other_ed.sign(m).to_bytes().to_vec()
                },
            ),
        ),
    ];
    for (what, token) in &forged {
        assert_refused(&app, token).await;
        eprintln!("refused: {what}");
    }
    // The same key under another issuer or audience signs tokens this API refuses.
    for (variable, value) in [
        ("JWT_ISSUER", "someone-else"),
        ("JWT_AUDIENCE", "another-api"),
    ] {
        let mut env = algorithm_env(KeyAlgorithm::EdDsa, &pem);
        env.push((variable, value.to_owned()));
        let stranger = another(&app, &env);
        let theirs = stranger
            .create_user(&format!("{variable}@example.com"), Role::User)
            .await;
        assert_eq!(me_status(&stranger, &theirs.token).await, 200);
        assert_refused(&app, &theirs.token).await;
    }
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    p256::elliptic_curve::rand_core::RngCore::fill_bytes(
        &mut p256::elliptic_curve::rand_core::OsRng,
        &mut bytes,
    );
    bytes
}

/// The same through the function binaries, routed as `template.yaml` says (on Postgres,
/// as they run): `auth` signs, `health` publishes, `tasks` verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_lambda_functions_each_algorithm_signs_publishes_and_verifies() {
    use shared::testing::lambda::{Gateway, LambdaFunction};
    if !Backend::Postgres.available() {
        return;
    }
    for algorithm in [KeyAlgorithm::EdDsa, KeyAlgorithm::Es256] {
        let pem = SigningKey::generate(algorithm);
        let env = algorithm_env(algorithm, &pem);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let db = LambdaFunction::database().await;
        let gateway =
            Gateway::start_with(db, crate::support::binaries::function_binary, &env).await;
        let json = |body: &str| serde_json::from_str::<Value>(body).unwrap();
        let credentials =
            json!({"email": "lambda@example.com", "password": "correct horse battery staple"})
                .to_string();
        let content = [("content-type", "application/json")];
        let mut registration = json(&credentials);
        registration["name"] = "Lambda".into();
        let registered = gateway
            .call(
                "POST",
                "/v1/auth/register",
                &content,
                Some(&registration.to_string()),
            )
            .await;
        assert_eq!(registered.status, 201, "{}", registered.body);
        let login = gateway
            .call("POST", "/v1/auth/login", &content, Some(&credentials))
            .await;
        assert_eq!(login.status, 200, "{}", login.body);
        let token = json(&login.body)["access_token"]
            .as_str()
            .unwrap()
            .to_owned();

        let jwks = gateway
            .call("GET", "/.well-known/jwks.json", &[], None)
            .await;
        assert_eq!(jwks.status, 200, "{}", jwks.body);
        assert!(jwks.headers["cache-control"].contains("max-age="));
        assert!(
            verifies_from_jwks(&json(&jwks.body), &token),
            "{}",
            algorithm.name()
        );
        let discovery = gateway
            .call("GET", "/.well-known/openid-configuration", &[], None)
            .await;
        assert_eq!(discovery.status, 200, "{}", discovery.body);
        assert_eq!(json(&discovery.body)["issuer"], "task-api");

        let bearer = format!("Bearer {token}");
        let tasks = gateway
            .call("GET", "/v1/tasks", &[("authorization", &bearer)], None)
            .await;
        assert_eq!(tasks.status, 200, "{}", tasks.body);
        let none = forge(&token, json!({"alg": "none", "typ": "at+jwt"}), |_| {
            Vec::new()
        });
        let refused = gateway
            .call(
                "GET",
                "/v1/tasks",
                &[("authorization", &format!("Bearer {none}"))],
                None,
            )
            .await;
        assert_eq!(refused.status, 401, "{}", refused.body);
        assert_eq!(json(&refused.body)["code"], "unauthorized");
    }
}

shared::backend_tests!(
    tokens_of_each_algorithm_verify_from_the_published_jwks_alone,
    keys_rotate_without_logging_anyone_out_and_a_removed_key_stops_verifying,
    tokens_of_another_algorithm_key_issuer_or_audience_are_refused
);
