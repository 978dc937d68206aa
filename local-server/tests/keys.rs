//! Asymmetric access tokens (`JWT_ALGORITHM` = `EdDSA` / `ES256` / `RS256`): what the server signs
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

/// RSA keys made by `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` for these
/// tests only (ring makes no RSA keys).
const RSA_KEYS: [&str; 2] = [
    "-----BEGIN PRIVATE KEY-----\nMIIEvwIBADANBgkqhkiG9w0BAQEFAASCBKkwggSlAgEAAoIBAQDog4wtiEFBVdjo\nKRjy8oXhxcpzd7S53WB/FVXmojjwPYywyWCPLmTROj5qCmvvY1btPtKD1K/7JgYy\nMTwK1GIN6qKOn4PoHMoT8HoMzMo+2lBiVTghY/InjFnCUlCg8FAL64AB7q7Mcd9m\nxsM4SeIhDxXeqjXGh2lG5pKKlEdso8D2vv9age/7W3HbceU2fA4UqnK+8NjHAwai\n+SpaefkFfS/WRd/lU7qUcKVj7KK9EThWaJV0Y3XMyhLmK9zLdQvW+tpdp1uDHFzR\nVMnelFQEo4Jeh10+udyqaVXL4R0rRW+g/QTln2gaqzAViIdF/n/I0sq1QfYXbj8D\nDflUH0VZAgMBAAECggEAAhH1xAwEBLhmc362LaeSIJX5vPhyX/tEGi2O87w7BIyP\nvZ01YmD33dMGbjxEhL+eLQOTrT/OB07p3DWLAs+sRdJyexGZg44KEI5iD84c+N1J\nvO5kTwvMQqThwbSo6h3poImKvLmqzcAvzIL1hwFFZaT0PWTHkMpw2gRAhsJWNnXk\nb/rI4Seirq4Gyj7MLU4iULSHwc/1AVBEf1aEHo+BG+1vPsOJC+2HNu2vK0khVgyz\nAbaZis3a0vhXsRiSg6+g/sLflrRwm5XMRzVWrLIj1gEcGeENq8gogE+8Jv8u8fpT\nl+dIqmlUbBDQ66FyjjtEL1GOZbJF8f/ljFwbYsJsmQKBgQD5Z2FauLi7njvvg43v\ndLg43Y9y9oibdE60jrDTnIGORQfIfhrNC2pCHiZmVr45rsPVT1LFH657g6PP4YV/\nf2d4M2qo1bUPPWqiOUx19TGeY93b2pAjkABSxNamg0e3toQlHHLDIdA1ufuV12m2\nBVVDrhrmuegWn8EnrsWveaZIXQKBgQDuqc/GcNxcXpEnaBXKRwDDhGPYXbOP58Do\nTG8vcSNWmZyYLQyqOtbDEMScE2ldyhBg31VRXDXomAxOO5hGzvOcrl6uwTA9yHpK\nDnBbyzHG5QTIFVZoes9Z3nMcpT5iiJkdqotSyixH6+D3RvP1lrsKRWOPMh4kqtuT\nYLfWhonxLQKBgQDv+zblSbuP5Mk9RbPMht5A8Yh3kZuPIdId0PN7GyxajjfYBueZ\nB3PeXQ6MCMmPzYdoeKRnQ33sIZX9kL6ZGSmhsq/d94z6NhmmMUZOdnmhM+0mAOAT\nKBv3iKoWnVnj/36WCxKuipnDKMtZumZgnC8YKa5+9sHJCz2cBoL3vzFujQKBgQCy\nLdURMfFShMeZw/uAqMHJNm3UeyAzr7I1u9rGcJERdl2Svw9Vh9gOidY/L77aZqET\nsajgtRcKL3oAbj2hn6AAua22ikSZ27Jw15bK8UiYVSLcvhFkr0terNUD7dpFdfXa\nUBj0Fjw49cFe23oHQCEj6eoKXkBi36xOu0aEwqz5gQKBgQDRQv1ABJg/OIeCHO9z\nS7UoOXcH2JA5iXoTtZIi486pt3Y/n1IlcnOwloawv4lg8f54kZ9ZWWpKWcdeI+1n\nzQoMDbA+Aks5qoO62v8M4N9CKWkOSxczzzYY7IHWDbLHoCAzEWXvMbJKnkH1j0hS\nh+47nPUYVXTjPn3EV5UjNKrBTA==\n-----END PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCsDpwtzYzV1JxL\ntvpSrpMLmGqD5i92Oy5yPmUA0sPQi88hKRbPjje3QGiMEWCxzpAfDsPb9xBp1J45\nOUQ2kFgVrDGq9cYUZwH/c1G0VSbjfqkTTBju9cD/MIrlYEuceizIimXx45Z0MCTF\n6ADfO9CQPd95vVTnM0LiA6nMQSuIBDFEHU4xO3KtAHlqnwV2YSli66cGXl63NXPW\ntvgsYQsR6iwXBM4vtTMUyuDIKPBHo8QC3nuywa0OOtH24dlXKBkgrtFxJIvlTqlq\n4PQc3yPYGIMN1+KzV1f7m+p5psrot8kE09avP3HWEJNjvgYwJ4ZYo8SnAA/QxvEq\n28LNcvp5AgMBAAECggEACP6vNIfL8TvZu0Ltcu10e4U0KwFu1sVWSBux8mk9BRs3\nW2TyBSzKsIuvS4ShuPnzDTnw4arYvVJOaUXF+/zvgJvixtdtdmXs3qVxOTZrFOFA\nxo+nuApkqhKoGEDArdqx76lTQLePXIijINjgVCCk5n2NlX2L7EBWTUmNaBkPb7Su\nY7XrToZeBR/fjskw98zksNHGI4QVbCNu6RJFe+VpmwKzCBcQUmwSUUBH1JB/ICFy\nAuuiincOewzphVaTu5FFY2mNUzIboKK2H+ZB47jSjEkJ0aBnb03U/akxdbkK2gZR\njO4IMEccHmlZ9OMSX9sDTGSNIqoeAOf2q/ZMnCQfLwKBgQDjWL6IHTMNUIhap1Zo\nFmTsCQeJpSTm6fz9PLjpTmbjRFrvyyb0rZ2OlVYRhPPgJURQYrT+Y6KNTtrHzp1I\nupTx49BoqO18GPKj9mD289969kt26vwvYrKiTjIr33b+xpfLQns83pS1hU/tYh7e\nhfCUf7WH0S8pH0YgIwhkBOlYuwKBgQDBvfe/TtLea08V9YBMgS7zHUJZ4W0A+1IQ\nOT4Wk1cuPAvWwaRCoGLt1d/AXh570eH2ezCqWEFDIank51EzFwOiOV+3xDwuQ/WZ\ncLxHLvKpztc9IImngZ1AytngW095BAmulpRXpAMvkWli7Zt5Y1odCsRbAW7enzlx\nCNlXpvJQWwKBgQCV7CXpeOf7tcnVjlhq16nCBcpUuPT22gMdtHd0U2GCKceWLnAI\nFp26MzzI3NY+UBUWtaEJyQafDQs1jEkodvJV+ZesDQpfNcx817Ll57jOS7FEQH4B\neaK3ab2oNPsx1CCxx6uhXl7OvZURxAz7TXRzWSyK3iWthpQmCTQ1UQ/YlQKBgHEy\nYBU7pcLkacHHvd11QQw0lTbUmg6PyIPIHjmsfqx50uT4INP4x7R0WJYZp6/qkh6k\nHWv5wq/JdG1UpcG2+Z2H7h/9nLffZxjuoGLq0Edcna+OWj8vYMShgKkwUH/BVzLV\nsfh+0ImzaSKu9z72SIldaBpP/Qo/d51OcUZgOYWvAoGAWWFyPfXiPtn6taeVc/cu\neW5oHQtVoe5BCbnMln1lMeOq/BgOn6VE621V21C26wPzhVeuuvHcsUmv1a85KEKG\nrnvQl9pVeADVzK5ksVY0BUAbbkr3MKZii7I0Fxf7DKO4Glxoq9KwQym3C/hhJUM9\n9y6ZAwpza/d9fPSKUdij8nc=\n-----END PRIVATE KEY-----",
];

/// The algorithms that publish their keys.
const ALGORITHMS: [KeyAlgorithm; 3] = [
    KeyAlgorithm::EdDsa,
    KeyAlgorithm::Es256,
    KeyAlgorithm::Rs256,
];

/// A fresh private key of `algorithm` (the `n`th fixture for RSA), as a PKCS#8 PEM.
fn new_key(algorithm: KeyAlgorithm, n: usize) -> String {
    SigningKey::generate(algorithm).unwrap_or_else(|| RSA_KEYS[n].to_owned())
}

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

/// Checks `token` against the key set `jwks` alone, with RustCrypto (not ring): its
/// ed25519-dalek, p256 and rsa.
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
        (Some("RS256"), Some("RSA"), None) => {
            use rsa::signature::Verifier as _;
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&bytes("n")),
                rsa::BigUint::from_bytes_be(&bytes("e")),
            )
            .unwrap();
            let key = rsa::pkcs1v15::VerifyingKey::<sha2::Sha256>::new(key);
            let Ok(signature) = rsa::pkcs1v15::Signature::try_from(signature.as_slice()) else {
                return false;
            };
            key.verify(message.as_bytes(), &signature).is_ok()
        }
        _ => false,
    }
}

/// The API's answer to a refused token, whatever the reason (API.md): 401 `unauthorized`
/// with `WWW-Authenticate: Bearer`.
async fn assert_refused(app: &TestApp, token: &str) {
    let response = app.get("/v1/auth/me").bearer(token).send().await;
    response.assert_problem(401, "unauthorized");
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
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
    for algorithm in ALGORITHMS {
        let pem = new_key(algorithm, 0);
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
        // Built from the request's host, so no shared cache may keep it.
        assert_eq!(
            discovery.header("cache-control"),
            Some("private, max-age=300")
        );
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
    // An issuer that is a URL is where the key set is, whatever host the request named.
    let pem = SigningKey::generate(KeyAlgorithm::EdDsa).unwrap();
    let mut env = algorithm_env(KeyAlgorithm::EdDsa, &pem);
    env.push(("JWT_ISSUER", "https://api.example.com/".to_owned()));
    let app = start(backend, &env).await;
    let discovery = app
        .get("/.well-known/openid-configuration")
        .header("host", "evil.example")
        .send()
        .await;
    assert_eq!(
        discovery.header("cache-control"),
        Some("public, max-age=300")
    );
    assert_eq!(
        discovery.json(),
        json!({
            "issuer": "https://api.example.com/",
            "jwks_uri": "https://api.example.com/.well-known/jwks.json",
            "id_token_signing_alg_values_supported": ["EdDSA"],
        })
    );
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
    for algorithm in ALGORITHMS {
        let old = new_key(algorithm, 0);
        let new = new_key(algorithm, 1);
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
    let pem = SigningKey::generate(KeyAlgorithm::EdDsa).unwrap();
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
    // Under ES256, an EdDSA token from a key the server would otherwise accept: its kid
    // listed, its signature good, its algorithm not the configured one.
    let es_pem = SigningKey::generate(KeyAlgorithm::Es256).unwrap();
    let es = another(&app, &algorithm_env(KeyAlgorithm::Es256, &es_pem));
    let es_user = es.create_user("es256@example.com", Role::User).await;
    assert_eq!(me_status(&es, &es_user.token).await, 200);
    assert_refused(&es, &user.token).await;
    let es_kid = parse_signing_key(KeyAlgorithm::Es256, &es_pem)
        .unwrap()
        .public()
        .kid()
        .to_owned();
    let eddsa_under_es_kid = forge(
        &es_user.token,
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": es_kid}),
        |m| {
            use ed25519_dalek::Signer as _;
            other_ed.sign(m).to_bytes().to_vec()
        },
    );
    assert_refused(&es, &eddsa_under_es_kid).await;

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

/// A token remembered after its first check (the verified-token cache) is still refused
/// the moment its session ends: the session is read on every request, after the token.
async fn a_remembered_token_stops_working_at_logout(backend: Backend) {
    let pem = new_key(KeyAlgorithm::EdDsa, 0);
    let app = start(backend, &algorithm_env(KeyAlgorithm::EdDsa, &pem)).await;
    let (email, password) = ("leaving@example.com", "correct horse battery staple");
    let registered = app
        .post("/v1/auth/register")
        .json(json!({"email": email, "password": password, "name": "Leaving"}))
        .send()
        .await;
    assert_eq!(registered.status.as_u16(), 201);
    let login = app
        .post("/v1/auth/login")
        .json(json!({"email": email, "password": password}))
        .send()
        .await
        .json();
    let access = login["access_token"].as_str().unwrap();
    for _ in 0..3 {
        assert_eq!(me_status(&app, access).await, 200);
    }
    let logout = app
        .post("/v1/auth/logout")
        .json(json!({"refresh_token": login["refresh_token"]}))
        .send()
        .await;
    assert_eq!(logout.status.as_u16(), 204);
    assert_refused(&app, access).await;
}

/// The same through the function binaries, routed as `template.yaml` says (on Postgres,
/// as they run): `auth` signs, `health` publishes, `tasks` verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_lambda_functions_each_algorithm_signs_publishes_and_verifies() {
    use shared::testing::lambda::{Gateway, LambdaFunction};
    if !Backend::Postgres.available() {
        return;
    }
    for algorithm in ALGORITHMS {
        let pem = new_key(algorithm, 0);
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
    a_remembered_token_stops_working_at_logout,
    tokens_of_each_algorithm_verify_from_the_published_jwks_alone,
    keys_rotate_without_logging_anyone_out_and_a_removed_key_stops_verifying,
    tokens_of_another_algorithm_key_issuer_or_audience_are_refused
);
