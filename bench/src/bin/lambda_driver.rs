//! Drives Lambda function binaries through the runtime-API emulator for `bench/run`.
//!
//! - `cold --function NAME,PATH,BINARY[,KEY=VALUE;…] … --runs R`: R fresh processes of each
//!   function (with those variables set on top of the common ones); for
//!   each, the time from exec to its first `/next` and to its first `/response` for a GET of
//!   PATH (the event is queued before the process starts, as Lambda does). The functions
//!   take turns, one start each per round in a rotating order, so a slow spell on the machine
//!   falls on all of them rather than on whichever ran then. The database URL points at a
//!   closed port: a function that connected during init or for an unauthenticated request
//!   would fail. Prints a JSON array, one object per function.
//! - `warm --binary B --invocations N`: one `tasks` process on Postgres
//!   (`TEST_DATABASE_URL`); N authenticated `GET /v1/tasks?limit=20` invocations, against
//!   the same request through the same router in-process; RSS sampled ten times.
//!
//! Each prints one JSON object on stdout.

#![allow(clippy::print_stdout, clippy::expect_used)] // a measuring tool: its output is the point

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use axum::{body::Body, http::Method};
use clap::{Parser, Subcommand};
use serde_json::json;
use shared::{
    AppState,
    http::{StackConfig, stack},
    models::Role,
    testing::{
        TEST_JWT_SECRET, TEST_PEPPER,
        lambda::{
            FunctionProcess, LambdaFunction, LambdaResponse, RuntimeEmulator, http_api_event,
        },
        request, send, test_config,
    },
};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Cold {
        /// `NAME,PATH,BINARY`, once per function.
        #[arg(long = "function", required = true, value_parser = parse_function)]
        functions: Vec<ColdFunction>,
        #[arg(long, default_value_t = 20)]
        runs: usize,
    },
    Warm {
        #[arg(long)]
        binary: PathBuf,
        #[arg(long, default_value_t = 10_000)]
        invocations: usize,
    },
}

const TIMEOUT: Duration = Duration::from_secs(30);

#[tokio::main]
async fn main() {
    match Cli::parse().command {
        Command::Cold { functions, runs } => cold(&functions, runs).await,
        Command::Warm {
            binary,
            invocations,
        } => warm(binary, invocations).await,
    }
}

#[derive(Clone)]
struct ColdFunction {
    name: String,
    path: String,
    binary: PathBuf,
    /// Set for this function on top of the common environment.
    env: Vec<(String, String)>,
}

fn parse_function(value: &str) -> Result<ColdFunction, String> {
    let usage = || format!("expected NAME,/PATH,BINARY[,KEY=VALUE;…], got {value:?}");
    let mut parts = value.splitn(4, ',');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(name), Some(path), Some(binary)) if path.starts_with('/') => {
            let env = parts
                .next()
                .map(|pairs| {
                    pairs
                        .split(';')
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').ok_or_else(usage)?;
                            Ok((k.to_owned(), v.to_owned()))
                        })
                        .collect::<Result<Vec<_>, String>>()
                })
                .transpose()?
                .unwrap_or_default();
            Ok(ColdFunction {
                name: name.to_owned(),
                path: path.to_owned(),
                binary: binary.into(),
                env,
            })
        }
        _ => Err(usage()),
    }
}

#[derive(Default)]
struct ColdTimes {
    to_next: Vec<Duration>,
    to_response: Vec<Duration>,
    status: u16,
}

async fn cold(functions: &[ColdFunction], runs: usize) {
    let env = [
        // Port 1 is closed: any connection attempt would fail the request.
        ("DATABASE_URL", "postgres://bench@127.0.0.1:1/never"),
        ("JWT_SECRET", TEST_JWT_SECRET),
        ("PASSWORD_PEPPER", TEST_PEPPER),
        ("RUST_LOG", "warn"),
    ];
    let mut times: Vec<ColdTimes> = functions.iter().map(|_| ColdTimes::default()).collect();
    for round in 0..runs {
        for turn in 0..functions.len() {
            let index = (round + turn) % functions.len();
            let function = &functions[index];
            let emulator = RuntimeEmulator::start().await;
            let mut env = env.to_vec();
            env.extend(function.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let process = FunctionProcess::spawn(&function.binary, &emulator, &function.name, &env);
            let event = http_api_event("GET", &function.path, &[], None);
            let outcome = emulator.invoke(&event, TIMEOUT).await;
            let responded = Instant::now();
            let next = emulator
                .first_next_at()
                .expect("the function asked for work before answering");
            let t = &mut times[index];
            t.status = LambdaResponse::from_outcome(outcome).status;
            t.to_next.push(next.duration_since(process.started));
            t.to_response
                .push(responded.duration_since(process.started));
            drop(process);
        }
    }
    let results: Vec<_> = functions
        .iter()
        .zip(&mut times)
        .map(|(function, t)| {
            json!({
                "name": function.name,
                "runs": runs,
                "status": t.status,
                "next_ms": median_ms(&mut t.to_next),
                "response_ms": median_ms(&mut t.to_response),
            })
        })
        .collect();
    println!("{}", serde_json::Value::from(results));
}

async fn warm(binary: PathBuf, invocations: usize) {
    let function = LambdaFunction::start(&binary, "tasks", &[]).await;
    let user = function.create_user("bench@example.com", Role::User).await;
    let bearer = format!("Bearer {}", user.token);
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    for i in 0..20 {
        let body = json!({"title": format!("task {i}")}).to_string();
        let created = function
            .call("POST", "/v1/tasks", &headers, Some(&body))
            .await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let event = http_api_event("GET", "/v1/tasks?limit=20", &headers[..1], None);
    let pid = function.process.child.id();
    let warmup = (invocations / 10).clamp(1, 500);
    for _ in 0..warmup {
        assert_eq!(function.invoke(&event).await.status, 200);
    }
    let mut rss = vec![rss_kb(pid)];
    let started = Instant::now();
    let sample_every = (invocations / 10).max(1);
    for i in 1..=invocations {
        let answer = function.emulator.invoke(&event, TIMEOUT).await;
        assert_eq!(LambdaResponse::from_outcome(answer).status, 200);
        if i % sample_every == 0 {
            rss.push(rss_kb(pid));
        }
    }
    let emulated = started.elapsed();

    // The same request, the same router and stack, in this process: no runtime API, no
    // event conversion, no process boundary.
    let state = AppState::new(test_config(&function.db.url, &[])).expect("building the state");
    let app = stack(tasks::router(state.clone()), &StackConfig::new(&state));
    let make = || {
        request(Method::GET, "/v1/tasks?limit=20")
            .header("authorization", &bearer)
            .body(Body::empty())
            .expect("a valid request")
    };
    for _ in 0..warmup {
        assert_eq!(send(&app, make()).await.status.as_u16(), 200);
    }
    let started = Instant::now();
    for _ in 0..invocations {
        assert_eq!(send(&app, make()).await.status.as_u16(), 200);
    }
    let in_process = started.elapsed();
    state.store.close().await;

    let per = |d: Duration| d.as_secs_f64() * 1e6 / invocations as f64;
    println!(
        "{}",
        json!({
            "invocations": invocations,
            "emulated_us": per(emulated),
            "in_process_us": per(in_process),
            "rss_kb": rss,
        })
    );
}

fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples
        .get(samples.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// Resident set size of `pid` in KiB, from /proc.
fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
