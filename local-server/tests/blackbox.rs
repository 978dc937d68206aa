//! Black-box tests of the built `local-server` binary: started with an empty environment in
//! a temporary directory, spoken to over TCP, stopped with SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::time::Duration;

use support::Server;

#[test]
fn starts_with_an_empty_environment_on_sqlite_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[]);

    let health = server.get("/health");
    assert_eq!(health.status, 200, "{}", health.body);
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));

    let ready = server.get("/ready");
    assert_eq!(ready.status, 200, "{}", ready.body);
    assert_eq!(ready.json()["checks"]["database"], "ok");

    // Development mode made its SQLite file and kept its generated secrets under ./data.
    assert!(dir.path().join("data/local.db").exists());
    assert!(dir.path().join("data/dev-secrets.json").exists());

    let missing = server.get("/v1/nope");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );

    server.sigterm();
    let status = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn sigterm_lets_an_in_flight_request_finish_then_exits_zero() {
    use std::io::Write as _;

    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path(), &[], &[]);
    let body = serde_json::json!({
        "email": "inflight@example.com",
        "password": "correct horse battery staple",
        "name": "In Flight",
    })
    .to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);

    // Headers and half the body now; the handler is waiting on the rest when SIGTERM lands.
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /v1/auth/register HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(first).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));

    server.sigterm();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the server exited with a request in flight"
    );
    // New connections are no longer accepted (or are closed unanswered).
    let refused = std::net::TcpStream::connect(("127.0.0.1", server.port))
        .map(|s| support::read_response_or_none(s).is_none())
        .unwrap_or(true);
    assert!(refused, "a new request was served after SIGTERM");

    stream.write_all(rest).unwrap();
    let response = support::read_response(stream);
    assert_eq!(response.status, 201, "{}", response.body);
    assert_eq!(response.json()["email"], "inflight@example.com");

    let status = server.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn migrate_subcommand_applies_migrations_and_exits() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
        .env_clear()
        .env("DATABASE_URL", "sqlite://./fresh/app.db")
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(dir.path().join("fresh/app.db").exists());
}

#[test]
fn prune_subcommand_deletes_what_can_never_be_used_and_keeps_live_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let env = [("DATABASE_URL", "sqlite://./prune.db")];
    let server = Server::start(dir.path(), &env, &[]);
    let json = [("content-type", "application/json")];
    let register = support::request(
        server.port,
        "POST",
        "/v1/auth/register",
        &json,
        br#"{"email": "keep@example.com", "password": "keep password 123", "name": "K"}"#,
    );
    assert_eq!(register.status, 201, "{}", register.body);
    let login = || {
        support::request(
            server.port,
            "POST",
            "/v1/auth/login",
            &json,
            br#"{"email": "keep@example.com", "password": "keep password 123"}"#,
        )
    };
    let (kept, ended) = (login(), login());
    assert_eq!(kept.status, 200, "{}", kept.body);
    let refresh_of = |r: &support::Response| {
        serde_json::json!({"refresh_token": r.json()["refresh_token"]}).to_string()
    };
    let out = support::request(
        server.port,
        "POST",
        "/v1/auth/logout",
        &json,
        refresh_of(&ended).as_bytes(),
    );
    assert_eq!(out.status, 204);
    let failed = support::request(
        server.port,
        "POST",
        "/v1/auth/login",
        &json,
        br#"{"email": "nobody@example.com", "password": "not a password"}"#,
    );
    assert_eq!(failed.status, 401);

    // Prune judges rows by their own expiry, not by its environment: even told that the
    // login window is one second, it keeps throttle rows whose window may still be open.
    // (The failed login was answered before this second began, so such a window has ended.)
    std::thread::sleep(Duration::from_secs(1));
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
        .env_clear()
        .envs(env)
        .env("LOGIN_WINDOW_SECS", "1")
        .current_dir(dir.path())
        .arg("prune")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("pruned 1 sessions"), "{stdout}");
    assert!(stdout.contains("pruned 1 refresh tokens"), "{stdout}");
    assert!(stdout.contains("pruned 0 login throttle rows"), "{stdout}");
    // The live session still refreshes; the logged-out one is gone for good.
    let rotated = support::request(
        server.port,
        "POST",
        "/v1/auth/refresh",
        &json,
        refresh_of(&kept).as_bytes(),
    );
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let gone = support::request(
        server.port,
        "POST",
        "/v1/auth/refresh",
        &json,
        refresh_of(&ended).as_bytes(),
    );
    assert_eq!(gone.status, 401);
    assert_eq!(gone.json()["code"], "invalid_refresh_token");
}

#[test]
fn bad_configuration_stops_start_up_with_one_line_naming_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
        .env_clear()
        .env("APP_ENV", "production")
        .env("PASSWORD_PEPPER", "0123456789abcdef0123456789abcdef")
        .current_dir(dir.path())
        .arg("migrate")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("JWT_SECRET"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

/// `local-server migrate` applies the migrations to `MIGRATIONS_DATABASE_URL` when it is set,
/// and leaves `DATABASE_URL` alone.
#[test]
fn migrate_goes_to_migrations_database_url_when_it_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let migrate = |database_url: &str, migrations_url: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"));
        command
            .env_clear()
            .env("DATABASE_URL", database_url)
            .current_dir(dir.path())
            .arg("migrate");
        if let Some(url) = migrations_url {
            command.env("MIGRATIONS_DATABASE_URL", url);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr)
    };
    let first = migrate("sqlite://./api.db", Some("sqlite://./owner.db"));
    assert!(first.contains("applied migrations 1,"), "{first}");
    assert!(dir.path().join("owner.db").exists());
    assert!(
        !dir.path().join("api.db").exists(),
        "DATABASE_URL was not touched"
    );
    let again = migrate("sqlite://./owner.db", None);
    assert!(again.contains("no pending migration"), "{again}");
}

fn run_cli(dir: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    use std::io::Write as _;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
        .env_clear()
        .env("DATABASE_URL", "sqlite://./admin.db")
        .current_dir(dir)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn create_admin_then_log_in_as_that_admin_and_call_an_admin_route() {
    let dir = tempfile::tempdir().unwrap();
    let password = "bootstrap password 123";
    let created = run_cli(
        dir.path(),
        &[
            "create-admin",
            "--email",
            "Boss@Example.com",
            "--name",
            "The Boss",
        ],
        &format!("{password}\n"),
    );
    assert!(created.status.success(), "{created:?}");
    let out = String::from_utf8_lossy(&created.stdout);
    assert!(!out.contains(password), "the password was echoed: {out}");

    // Again: the email is taken, and it says how to promote instead.
    let again = run_cli(
        dir.path(),
        &[
            "create-admin",
            "--email",
            "boss@example.com",
            "--name",
            "Boss",
        ],
        &format!("{password}\n"),
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--promote"));
    // Bad input fails with a message naming it, and creates nothing.
    let short = run_cli(
        dir.path(),
        &["create-admin", "--email", "x@example.com", "--name", "X"],
        "short\n",
    );
    assert!(!short.status.success());
    assert!(String::from_utf8_lossy(&short.stderr).contains("password"));

    let server = Server::start(dir.path(), &[("DATABASE_URL", "sqlite://./admin.db")], &[]);
    let login = support::request(
        server.port,
        "POST",
        "/v1/auth/login",
        &[("content-type", "application/json")],
        serde_json::json!({"email": "boss@example.com", "password": password})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(login.status, 200, "{}", login.body);
    let token = login.json()["access_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let stats = support::request(
        server.port,
        "GET",
        "/v1/admin/stats",
        &[("authorization", &bearer)],
        b"",
    );
    assert_eq!(stats.status, 200, "{}", stats.body);
    assert_eq!(stats.json()["admins"], 1);

    // --promote makes a registered user an admin.
    let register = support::request(
        server.port,
        "POST",
        "/v1/auth/register",
        &[("content-type", "application/json")],
        br#"{"email": "second@example.com", "password": "second password 123", "name": "Second"}"#,
    );
    assert_eq!(register.status, 201);
    let promoted = run_cli(
        dir.path(),
        &["create-admin", "--email", "second@example.com", "--promote"],
        "",
    );
    assert!(promoted.status.success(), "{promoted:?}");
    let stats = support::request(
        server.port,
        "GET",
        "/v1/admin/stats",
        &[("authorization", &bearer)],
        b"",
    );
    assert_eq!(stats.json()["admins"], 2);
    let missing = run_cli(
        dir.path(),
        &["create-admin", "--email", "nobody@example.com", "--promote"],
        "",
    );
    assert!(!missing.status.success());
}

#[test]
fn healthcheck_subcommand_reports_the_servers_health() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[], &[]);
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
        .env_clear()
        .args(["--port", &server.port.to_string(), "healthcheck"])
        .output()
        .unwrap();
    assert!(ok.status.success(), "{ok:?}");
    drop(server);
    // Nobody listens any more: unhealthy, with a reason.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
        .env_clear()
        .env("PORT", port.to_string())
        .arg("healthcheck")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unhealthy"));
}

#[test]
fn the_rate_limit_throttles_one_peer_and_ignores_forged_forwarded_for() {
    use std::net::Ipv4Addr;
    use support::request_from;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[("RATE_LIMIT_PER_SECOND", "1"), ("RATE_LIMIT_BURST", "2")],
        &[],
    );
    let me = Ipv4Addr::new(127, 0, 0, 1);
    for _ in 0..2 {
        assert_eq!(
            request_from(me, server.port, "GET", "/version", &[]).status,
            200
        );
    }
    let throttled = request_from(me, server.port, "GET", "/version", &[]);
    assert_eq!(throttled.status, 429, "{}", throttled.body);
    assert_eq!(throttled.json()["code"], "too_many_requests");
    let retry_after: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Forging a client address does not buy a new bucket.
    let forged = request_from(
        me,
        server.port,
        "GET",
        "/version",
        &[("x-forwarded-for", "203.0.113.77")],
    );
    assert_eq!(forged.status, 429);
    // Another peer has its own bucket.
    let other = request_from(
        Ipv4Addr::new(127, 0, 0, 2),
        server.port,
        "GET",
        "/version",
        &[],
    );
    assert_eq!(other.status, 200, "{}", other.body);
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_client_is_throttled() {
    use std::net::Ipv4Addr;
    use support::request_from;

    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            ("RATE_LIMIT_PER_SECOND", "1"),
            ("RATE_LIMIT_BURST", "1"),
            ("TRUST_PROXY", "true"),
        ],
        &[],
    );
    let proxy = Ipv4Addr::new(127, 0, 0, 1);
    let client = |ip: &str| {
        request_from(
            proxy,
            server.port,
            "GET",
            "/version",
            &[("x-forwarded-for", ip)],
        )
        .status
    };
    assert_eq!(client("203.0.113.1"), 200);
    assert_eq!(client("203.0.113.1"), 429);
    assert_eq!(client("203.0.113.2"), 200);
}

#[test]
fn metrics_are_served_on_their_own_listener_and_not_on_the_api_port() {
    let dir = tempfile::tempdir().unwrap();
    // A free port for the metrics listener.
    let metrics_port = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let server = Server::start(
        dir.path(),
        &[
            ("DATABASE_URL", "sqlite://./metrics.db"),
            ("METRICS_ADDR", &metrics_addr),
        ],
        &[],
    );
    assert_eq!(server.get("/health").status, 200);
    let public = server.get("/metrics");
    assert_eq!(public.status, 404);
    assert_eq!(public.json()["code"], "not_found");
    let private = support::request(metrics_port, "GET", "/metrics", &[], b"");
    assert_eq!(private.status, 200, "{}", private.body);
    assert!(
        private
            .body
            .contains(r#"http_requests_total{method="GET",route="/health",status="200"} 1"#),
        "{}",
        private.body
    );
    // Only /metrics lives there.
    assert_eq!(
        support::request(metrics_port, "GET", "/health", &[], b"").status,
        404
    );
}

#[test]
fn an_explicit_metrics_address_that_cannot_bind_stops_the_start_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_local-server"))
        .env_clear()
        .env("DATABASE_URL", "sqlite://./m.db")
        .env("METRICS_ADDR", &addr)
        .current_dir(dir.path())
        .args(["--port", "0", "serve"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("METRICS_ADDR"), "{stderr}");
}

/// The built binary with `SMTP_URL` at a sink on loopback, in production mode as deployed:
/// register (verification mail), verify with the mailed token; forget a password, reset it
/// with the mailed token, log in with the new one.
#[test]
fn account_mail_over_smtp_verifies_and_resets_with_the_mailed_tokens() {
    use shared::testing::smtp::{SmtpSink, token_in};
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sink = runtime.block_on(SmtpSink::start());
    let wait = |count| runtime.block_on(sink.wait_for(count, Duration::from_secs(15)));
    let dir = tempfile::tempdir().unwrap();
    // Bob exists before the server starts (made on the command line: no mail, so his
    // address has its whole mail budget).
    let bob = run_cli(
        dir.path(),
        &[
            "create-admin",
            "--email",
            "bob@example.com",
            "--name",
            "Bob",
        ],
        "first password 123\n",
    );
    assert!(bob.status.success(), "{bob:?}");
    let url = sink.url();
    let server = Server::start(
        dir.path(),
        &[
            ("APP_ENV", "production"),
            ("DATABASE_URL", "sqlite://./admin.db"),
            ("JWT_SECRET", shared::testing::TEST_JWT_SECRET),
            ("PASSWORD_PEPPER", shared::testing::TEST_PEPPER),
            ("SMTP_URL", &url),
            ("APP_BASE_URL", "https://app.example.com"),
            ("MAIL_FROM", "Tasks <no-reply@example.com>"),
        ],
        &[],
    );
    let post = |path: &str, body: serde_json::Value| {
        support::request(
            server.port,
            "POST",
            path,
            &[("content-type", "application/json")],
            body.to_string().as_bytes(),
        )
    };
    let register = post(
        "/v1/auth/register",
        serde_json::json!({"email": "ada@example.com", "password": "first password 123", "name": "Ada"}),
    );
    assert_eq!(register.status, 201, "{}", register.body);
    assert_eq!(register.json()["email_verified"], false);
    let mail = wait(1);
    assert_eq!(mail.len(), 1);
    assert!(
        mail[0].contains("From: Tasks <no-reply@example.com>"),
        "{}",
        mail[0]
    );
    assert!(mail[0].contains("https://app.example.com/verify-email?token="));
    let verified = post(
        "/v1/auth/email/verify",
        serde_json::json!({"token": token_in(&mail[0])}),
    );
    assert_eq!(verified.status, 204, "{}", verified.body);

    let forgot = |email: &str| {
        post(
            "/v1/auth/password/forgot",
            serde_json::json!({"email": email}),
        )
    };
    assert_eq!(forgot("carol@example.com").status, 202);
    assert_eq!(forgot("bob@example.com").status, 202);
    let mail = wait(2);
    assert_eq!(
        mail.len(),
        2,
        "one mail for Bob, none for an unknown address"
    );
    assert!(
        mail[1].contains("Subject: Reset your password"),
        "{}",
        mail[1]
    );
    assert!(mail[1].contains("To: bob@example.com"));
    assert!(
        !dir.path().join("data/mail").exists(),
        "production wrote mail to files"
    );
    let reset = post(
        "/v1/auth/password/reset",
        serde_json::json!({"token": token_in(&mail[1]), "new_password": "second password 456"}),
    );
    assert_eq!(reset.status, 204, "{}", reset.body);
    let login = post(
        "/v1/auth/login",
        serde_json::json!({"email": "bob@example.com", "password": "second password 456"}),
    );
    assert_eq!(login.status, 200, "{}", login.body);
}
