//! A burst against many function instances, for `bench/run --only scale_out` (and, smaller,
//! every CI run): `--instances` processes of the `tasks` function binary, each under a
//! runtime-API emulator of its own and with its default pool, as Lambda scales out; then
//! `--clients` concurrent clients, each doing `--rounds` of: a create with an
//! `Idempotency-Key`, a list, and a conditional PATCH (`If-Match`) of what it created. A
//! request goes to an idle instance (one invocation at a time per instance, as on Lambda),
//! and waits for one when none is idle.
//!
//! Meanwhile the Postgres connections of the database are sampled (through `--admin-url`,
//! which must reach Postgres itself). With `--kill F`, a fraction F of the instances are
//! killed (SIGKILL) while they serve a request, as Lambda may; the client sees API Gateway's
//! 502 and, with `--retry`, sends the request again with the same key, and a new instance
//! takes the dead one's place.
//!
//! Afterwards every acknowledged write is looked for in the database: each acknowledged
//! create exactly once, an unacknowledged one at most once, and each task's version within
//! what its PATCHes could have made it. `--expect` says which answers are allowed:
//! `success` (only 2xx, after retries) or `success-or-503`. Any violation, a request that
//! got no answer within the function's timeout, or (with `--max-server-connections N`)
//! more than N server connections exits with status 1 after printing the summary. The
//! summary is one JSON object on stdout.

#![allow(clippy::print_stdout, clippy::print_stderr, clippy::expect_used)] // a measuring tool

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use clap::{Parser, ValueEnum};
use serde_json::{Value, json};
use shared::testing::{
    TEST_JWT_SECRET, TEST_PEPPER,
    lambda::{FunctionProcess, LambdaResponse, Outcome, RuntimeEmulator, http_api_event},
    test_config,
};
use tokio::sync::{Notify, mpsc};

#[derive(Parser)]
struct Cli {
    /// The `tasks` function binary.
    #[arg(long)]
    binary: PathBuf,
    /// The `DATABASE_URL` the instances use: Postgres itself, or a proxy in front of it.
    #[arg(long)]
    database_url: String,
    /// The same database, reached directly: migrated, sampled and checked through it.
    #[arg(long)]
    admin_url: String,
    /// The instances are behind a proxy that pools by transaction
    /// (`DB_STATEMENT_CACHE_CAPACITY=0`).
    #[arg(long)]
    proxied: bool,
    #[arg(long, default_value_t = 300)]
    instances: usize,
    #[arg(long, default_value_t = 300)]
    clients: usize,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// The fraction of the instances to kill mid-request.
    #[arg(long, default_value_t = 0.0)]
    kill: f64,
    /// Clients send a failed create again, with the same key, until it is acknowledged.
    #[arg(long)]
    retry: bool,
    #[arg(long, value_enum)]
    expect: Expect,
    /// Fail when the database ever had more connections than this (0: no bound).
    #[arg(long, default_value_t = 0)]
    max_server_connections: i64,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Expect {
    Success,
    SuccessOr503,
}

/// The function's timeout in `template.yaml` (Globals), plus a margin: an answer later
/// than this is a hang.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(12);
/// What a client sees when the function reports an error instead of a response (API
/// Gateway's answer).
const BAD_GATEWAY: u16 = 502;
/// A request that got no answer in time.
const NO_ANSWER: u16 = 0;
/// A request whose instance was killed under it (API Gateway answers 502 then too; kept
/// apart here from a function's own error).
const KILLED: u16 = 1;

/// One function process under its own emulator.
struct Instance {
    // Dropped first: the process dies before its emulator goes away.
    process: Mutex<Option<FunctionProcess>>,
    emulator: RuntimeEmulator,
    killed: Notify,
}

impl Instance {
    async fn start(cli: &Cli, number: usize) -> Arc<Self> {
        let emulator = RuntimeEmulator::start().await;
        let mut env = vec![
            ("DATABASE_URL", cli.database_url.as_str()),
            ("JWT_SECRET", TEST_JWT_SECRET),
            ("PASSWORD_PEPPER", TEST_PEPPER),
            ("RUST_LOG", "warn"),
        ];
        if cli.proxied {
            env.push(("DB_STATEMENT_CACHE_CAPACITY", "0"));
        }
        let name = format!("tasks-{number}");
        let process = FunctionProcess::spawn(&cli.binary, &emulator, &name, &env);
        Arc::new(Self {
            process: Mutex::new(Some(process)),
            emulator,
            killed: Notify::new(),
        })
    }

    fn kill(&self) {
        if let Some(mut process) = self.process.lock().expect("process lock").take() {
            let _ = process.child.kill();
            let _ = process.child.wait();
        }
        self.killed.notify_one();
    }
}

/// The instances: slots that a new instance takes over when one is killed, and the idle
/// ones, handed out one request at a time.
struct Fleet {
    slots: Vec<Mutex<Arc<Instance>>>,
    idle_tx: mpsc::UnboundedSender<usize>,
    idle_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<usize>>,
    busy: Mutex<HashSet<usize>>,
}

impl Fleet {
    /// Sends one HTTP API request to an idle instance: its status, headers and body.
    async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, LambdaResponse) {
        let slot = self
            .idle_rx
            .lock()
            .await
            .recv()
            .await
            .expect("the fleet is open");
        let instance = self.slots[slot].lock().expect("slot lock").clone();
        self.busy.lock().expect("busy lock").insert(slot);
        let event = http_api_event(method, path, headers, body);
        let answer = tokio::select! {
            outcome = instance.emulator.try_invoke(&event, REQUEST_TIMEOUT) => outcome,
            () = instance.killed.notified() => None,
        };
        let killed = answer.is_none() && instance.process.lock().expect("process lock").is_none();
        self.busy.lock().expect("busy lock").remove(&slot);
        let _ = self.idle_tx.send(slot);
        match answer {
            Some(Outcome::Response(value)) => {
                let response = LambdaResponse::from_outcome(Outcome::Response(value));
                (response.status, response)
            }
            Some(Outcome::Error(_)) => (BAD_GATEWAY, empty()),
            None if killed => (KILLED, empty()),
            None => (NO_ANSWER, empty()),
        }
    }
}

fn empty() -> LambdaResponse {
    LambdaResponse {
        status: 0,
        headers: HashMap::new(),
        body: String::new(),
    }
}

/// What the clients saw.
#[derive(Default)]
struct Seen {
    statuses: BTreeMap<u16, usize>,
    latencies: Vec<Duration>,
    /// Create titles acknowledged (201), with the id.
    acknowledged: HashMap<String, String>,
    /// Create titles that never were.
    unacknowledged: HashSet<String>,
    /// Per task id: PATCHes acknowledged, and PATCHes whose outcome is unknown.
    patches: HashMap<String, (i64, i64)>,
}

impl Seen {
    fn record(&mut self, status: u16, took: Duration) {
        *self.statuses.entry(status).or_default() += 1;
        if status != NO_ANSWER {
            self.latencies.push(took);
        }
    }
}

#[tokio::main]
async fn main() {
    let cli = Arc::new(Cli::parse());
    let prepared = Instant::now();
    let state = shared::AppState::new(test_config(&cli.admin_url, &[])).expect("the state");
    state.store.migrate().await.expect("migrating");
    let users = cli.clients.clamp(1, 20);
    let mut tokens = Vec::new();
    for n in 0..users {
        let user = shared::testing::create_user(
            &state,
            &format!("scale{n}@example.com"),
            shared::models::Role::User,
        )
        .await;
        tokens.push(user.token);
    }
    state.store.close().await;

    // The sampler's connection first, before the instances can take them all; and the
    // set-up's connections ended, so that every connection counted is the instances'.
    let mut sampler = connect(&cli.admin_url).await;
    sqlx::Executor::execute(
        &mut sampler,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await
    .expect("ending the set-up's connections");
    let deadline = Instant::now() + Duration::from_secs(10);
    while connections(&mut sampler).await > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every instance at once, as a burst scales Lambda out (their inits overlap).
    let mut started = Vec::with_capacity(cli.instances);
    for n in 0..cli.instances {
        started.push(Instance::start(&cli, n).await);
    }
    for instance in &started {
        instance
            .emulator
            .wait_first_next(Duration::from_secs(30))
            .await
            .expect("an instance finished its init");
    }
    let (idle_tx, idle_rx) = mpsc::unbounded_channel();
    for slot in 0..started.len() {
        idle_tx.send(slot).expect("queueing an idle instance");
    }
    let fleet = Arc::new(Fleet {
        slots: started.into_iter().map(Mutex::new).collect(),
        idle_tx,
        idle_rx: tokio::sync::Mutex::new(idle_rx),
        busy: Mutex::new(HashSet::new()),
    });
    let setup = prepared.elapsed();

    let sampling = Arc::new(AtomicBool::new(true));
    let monitor = tokio::spawn(sample_connections(sampler, sampling.clone()));
    let done = Arc::new(AtomicUsize::new(0));
    let kills = tokio::spawn(chaos(cli.clone(), fleet.clone(), done.clone()));
    let burst = Instant::now();
    let clients: Vec<_> = (0..cli.clients)
        .map(|client| {
            let token = tokens[client % tokens.len()].clone();
            tokio::spawn(run_client(
                cli.clone(),
                fleet.clone(),
                client,
                token,
                done.clone(),
            ))
        })
        .collect();
    let mut seen = Seen::default();
    for client in clients {
        let mine = client.await.expect("a client ran");
        for (status, count) in mine.statuses {
            *seen.statuses.entry(status).or_default() += count;
        }
        seen.latencies.extend(mine.latencies);
        seen.acknowledged.extend(mine.acknowledged);
        seen.unacknowledged.extend(mine.unacknowledged);
        seen.patches.extend(mine.patches);
    }
    let burst = burst.elapsed();
    let killed = kills.await.expect("the chaos task ran");
    sampling.store(false, Ordering::Relaxed);
    let peak_connections = monitor.await.expect("the monitor ran");
    for slot in &fleet.slots {
        slot.lock().expect("slot lock").kill();
    }

    let violations = check(&cli, &seen, peak_connections).await;
    let requests: usize = seen.statuses.values().sum();
    let errors: usize = seen
        .statuses
        .iter()
        .filter(|(status, _)| !(200..300).contains(*status) && **status != KILLED)
        .map(|(_, n)| n)
        .sum();
    seen.latencies.sort();
    let percentile = |p: f64| {
        seen.latencies
            .get(((seen.latencies.len() as f64 - 1.0) * p).round() as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "{}",
        json!({
            "instances": cli.instances,
            "clients": cli.clients,
            "requests": requests,
            "errors": errors,
            "error_rate": if requests == 0 { 0.0 } else { errors as f64 / requests as f64 },
            "statuses": seen.statuses.iter().map(|(s, n)| (s.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
            "p50_ms": percentile(0.5),
            "p99_ms": percentile(0.99),
            "burst_s": burst.as_secs_f64(),
            "setup_s": setup.as_secs_f64(),
            "throughput_rps": requests as f64 / burst.as_secs_f64(),
            "creates_acknowledged": seen.acknowledged.len(),
            "creates_unacknowledged": seen.unacknowledged.len(),
            "killed": killed,
            "peak_server_connections": peak_connections,
            "violations": violations,
        })
    );
    if !violations.is_empty() {
        eprintln!("scale-out: {} violation(s):", violations.len());
        for violation in &violations {
            eprintln!("  {violation}");
        }
        std::process::exit(1);
    }
}

async fn run_client(
    cli: Arc<Cli>,
    fleet: Arc<Fleet>,
    client: usize,
    token: String,
    done: Arc<AtomicUsize>,
) -> Seen {
    let bearer = format!("Bearer {token}");
    let auth = ("authorization", bearer.as_str());
    let json_type = ("content-type", "application/json");
    let mut seen = Seen::default();
    let call = Caller {
        fleet: &fleet,
        done: &done,
    };
    for round in 0..cli.rounds {
        let title = format!("c{client}-r{round}");
        let key = format!("key-{client}-{round}");
        let body = json!({ "title": title }).to_string();
        let headers = [auth, json_type, ("idempotency-key", key.as_str())];
        let mut id = None;
        for attempt in 0..30 {
            let (status, response) = call
                .send(&mut seen, "POST", "/v1/tasks", &headers, Some(&body))
                .await;
            if status == 201 {
                let created: Value = serde_json::from_str(&response.body).expect("a task");
                id = created["id"].as_str().map(str::to_owned);
                break;
            }
            if !cli.retry {
                break;
            }
            let wait = response
                .headers
                .get("retry-after")
                .and_then(|s| s.parse::<u64>().ok())
                .map_or(
                    Duration::from_millis(50 * (attempt + 1)),
                    Duration::from_secs,
                );
            tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
        }
        match &id {
            Some(id) => {
                seen.acknowledged.insert(title.clone(), id.clone());
            }
            None => {
                seen.unacknowledged.insert(title.clone());
            }
        }
        call.send(&mut seen, "GET", "/v1/tasks?limit=20", &[auth], None)
            .await;
        if let Some(id) = id {
            let path = format!("/v1/tasks/{id}");
            let headers = [auth, json_type, ("if-match", "\"1\"")];
            let patch = json!({ "completed": true }).to_string();
            let (status, _) = call
                .send(&mut seen, "PATCH", &path, &headers, Some(&patch))
                .await;
            let counts = seen.patches.entry(id).or_default();
            match status {
                200 => counts.0 += 1,
                // Refused before anything was written.
                412 | 503 => {}
                _ => counts.1 += 1,
            }
        }
    }
    seen
}

/// Sends requests through the fleet, recording what came back.
struct Caller<'a> {
    fleet: &'a Fleet,
    done: &'a AtomicUsize,
}

impl Caller<'_> {
    async fn send(
        &self,
        seen: &mut Seen,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> (u16, LambdaResponse) {
        let sent = Instant::now();
        let (status, response) = self.fleet.call(method, path, headers, body).await;
        seen.record(status, sent.elapsed());
        self.done.fetch_add(1, Ordering::Relaxed);
        (status, response)
    }
}

/// With `--kill`, once a tenth of the burst is done: kills that many instances, each while
/// it serves a request, and starts a new one in its place. Returns how many were killed.
async fn chaos(cli: Arc<Cli>, fleet: Arc<Fleet>, done: Arc<AtomicUsize>) -> usize {
    let to_kill = (cli.instances as f64 * cli.kill).round() as usize;
    let total = cli.clients * cli.rounds * 3;
    let mut killed = 0;
    while killed < to_kill && done.load(Ordering::Relaxed) < total * 9 / 10 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        if done.load(Ordering::Relaxed) < total / 10 {
            continue;
        }
        let Some(slot) = fleet.busy.lock().expect("busy lock").iter().next().copied() else {
            continue;
        };
        let replacement = Instance::start(&cli, cli.instances + killed).await;
        let old = std::mem::replace(
            &mut *fleet.slots[slot].lock().expect("slot lock"),
            replacement,
        );
        old.kill();
        killed += 1;
    }
    killed
}

/// The most connections the database had at once (sampled every 10 ms), not counting this
/// sampler's own.
async fn sample_connections(mut conn: sqlx::PgConnection, running: Arc<AtomicBool>) -> i64 {
    let mut peak = 0;
    while running.load(Ordering::Relaxed) {
        peak = peak.max(connections(&mut conn).await);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    peak
}

/// The database's client connections now, besides `conn` (autovacuum's workers are not
/// clients).
async fn connections(conn: &mut sqlx::PgConnection) -> i64 {
    let row = sqlx::Executor::fetch_one(
        conn,
        "SELECT count(*) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND backend_type = 'client backend'",
    )
    .await
    .expect("sampling the connections");
    sqlx::Row::get::<i64, _>(&row, 0)
}

/// A connection to `url`, waiting (up to 30 s) while the server has none to give: the
/// killed instances' connections take a moment to go.
async fn connect(url: &str) -> sqlx::PgConnection {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match shared::testing::try_pg_connect(url).await {
            Ok(conn) => return conn,
            Err(error) if Instant::now() < deadline => {
                eprintln!("connecting to the database: {error}; again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("connecting to the database: {error}"),
        }
    }
}

/// Every acknowledged write present exactly once, and the answers as `--expect` allows.
async fn check(cli: &Cli, seen: &Seen, peak_connections: i64) -> Vec<String> {
    let mut violations = Vec::new();
    let allowed = |status: u16| match status {
        200..300 => true,
        503 => cli.expect == Expect::SuccessOr503,
        // The requests the kills hit.
        KILLED => cli.kill > 0.0,
        // A create sent again after a kill, while the dead instance's transaction still
        // holds its key.
        409 => cli.retry,
        _ => false,
    };
    for (status, count) in &seen.statuses {
        match *status {
            NO_ANSWER => violations.push(format!(
                "{count} request(s) without an answer within {} s",
                REQUEST_TIMEOUT.as_secs()
            )),
            status if !allowed(status) => {
                violations.push(format!("{count} answer(s) with status {status}"));
            }
            _ => {}
        }
    }
    if cli.retry && !seen.unacknowledged.is_empty() {
        violations.push(format!(
            "{} create(s) never acknowledged despite retries",
            seen.unacknowledged.len()
        ));
    }
    if cli.max_server_connections > 0 && peak_connections > cli.max_server_connections {
        violations.push(format!(
            "{peak_connections} server connections, above {}",
            cli.max_server_connections
        ));
    }

    let mut conn = connect(&cli.admin_url).await;
    let rows: Vec<(String, String, i64)> =
        sqlx::query_as("SELECT title, id::text, version FROM tasks")
            .fetch_all(&mut conn)
            .await
            .expect("reading the tasks");
    let mut by_title: HashMap<&str, Vec<(&str, i64)>> = HashMap::new();
    for (title, id, version) in &rows {
        by_title
            .entry(title.as_str())
            .or_default()
            .push((id.as_str(), *version));
    }
    for (title, id) in &seen.acknowledged {
        match by_title.get(title.as_str()).map(Vec::as_slice) {
            Some([(stored, version)]) if stored == id => {
                let (acked, unknown) = seen.patches.get(id).copied().unwrap_or_default();
                if !(1 + acked..=1 + acked + unknown).contains(version) {
                    violations.push(format!(
                        "task {title}: version {version}, but {acked} PATCH(es) acknowledged and {unknown} unknown"
                    ));
                }
            }
            other => violations.push(format!(
                "acknowledged create {title} ({id}) stored as {other:?}"
            )),
        }
    }
    for title in &seen.unacknowledged {
        if by_title
            .get(title.as_str())
            .is_some_and(|rows| rows.len() > 1)
        {
            violations.push(format!("unacknowledged create {title} stored twice"));
        }
    }
    let sent: HashSet<&str> = seen
        .acknowledged
        .keys()
        .chain(&seen.unacknowledged)
        .map(String::as_str)
        .collect();
    let strays = by_title.keys().filter(|t| !sent.contains(*t)).count();
    if strays > 0 {
        violations.push(format!("{strays} task(s) nobody created"));
    }
    violations
}
