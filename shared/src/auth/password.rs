//! Argon2id password hashing with a server-side pepper.
//!
//! Hashing is CPU- and memory-heavy by design, so it never runs on the async workers: each
//! hash or verification runs on the hasher's own threads (`Workers`), at a lower CPU
//! priority than the rest of the process, and a semaphore caps how many run at once (each
//! holds ~19 MiB) so a login storm queues instead of exhausting memory or starving other
//! requests. The wait is bounded too: past `PASSWORD_HASH_QUEUE` waiting hashes, the next
//! one is refused at once with 503 and `Retry-After`, so a flood of logins gets fast
//! refusals instead of a backlog that holds connections and memory.
//!
//! Verification (every login) reuses its Argon2 working memory instead of allocating it per
//! hash. A fresh 19 MiB block is cold: under cachegrind a login missed the last-level cache
//! on every one of its 311k cache lines (315k misses against 207k for a hash that reuses
//! its memory), and a login storm ran at 0.72–0.86 of raw hashing with the same instruction
//! count. At most one block per permit is kept.

use std::{
    panic::AssertUnwindSafe,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use argon2::{
    Algorithm, Argon2, Block, Params, PasswordHash, PasswordHasher as _, Version,
    password_hash::{Output, SaltString, rand_core::OsRng},
};
use base64::{Engine as _, engine::general_purpose::STANDARD_NO_PAD};
use secrecy::{ExposeSecret as _, SecretString};
use tokio::sync::Semaphore;

use crate::{
    config::Argon2Config,
    error::{ApiError, ErrorKind},
    telemetry::otel,
};

/// Outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The stored hash uses weaker parameters than the current configuration.
    pub needs_rehash: bool,
}

pub struct PasswordHasher {
    params: Params,
    pepper: Arc<SecretString>,
    workers: Workers,
    /// Working memory of finished verifications, ready for the next: at most one per permit.
    memory: Arc<Mutex<Vec<Vec<Block>>>>,
    /// A PHC string with the current parameters and a random salt and output: unknown-email
    /// logins verify against it, which costs exactly one hash with the current parameters,
    /// like a wrong password for a real account. Made without hashing, so it exists from the
    /// start and the first unknown-email login of a process (a Lambda cold start) costs no
    /// more than any other.
    dummy: String,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.params)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    pub fn new(config: &Argon2Config, pepper: &SecretString) -> Result<Self, argon2::Error> {
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )?;
        // Fail now, not on the first login, if the pepper is unusable as an Argon2 secret.
        Argon2::new_with_secret(
            pepper.expose_secret().as_bytes(),
            Algorithm::Argon2id,
            Version::V0x13,
            params.clone(),
        )?;
        Ok(Self {
            pepper: Arc::new(pepper.clone()),
            dummy: dummy_phc(&params),
            params,
            workers: Workers::new(config.concurrency, config.queue),
            memory: Arc::new(Mutex::new(Vec::new())),
        })
    }

    /// Every hashing thread is busy and every queue place taken: the next hash would be
    /// refused. A hint for callers to refuse before doing any other work; the refusal
    /// itself is decided when a hash is admitted.
    pub fn is_saturated(&self) -> bool {
        self.workers
            .started
            .get()
            .is_some_and(|started| started.admission.available_permits() == 0)
    }

    /// Hashing jobs started since this hasher was made (for tests and diagnostics).
    pub fn jobs_started(&self) -> u64 {
        self.workers.jobs.load(Ordering::Relaxed)
    }

    /// Hashes `password` into a PHC string (`$argon2id$v=19$m=…,t=…,p=…$salt$hash`).
    pub async fn hash(&self, password: &str) -> Result<String, ApiError> {
        let password = SecretString::from(password.to_owned());
        self.blocking(move |argon| {
            let salt = SaltString::generate(&mut OsRng);
            argon
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| {
                    ApiError::internal(std::io::Error::other(format!("hashing a password: {e}")))
                })
        })
        .await?
    }

    /// Checks `password` against the stored PHC string.
    pub async fn verify(&self, password: &str, stored: &str) -> Result<Verification, ApiError> {
        let password = SecretString::from(password.to_owned());
        let stored = stored.to_owned();
        let current = self.params.clone();
        let memory = self.memory.clone();
        let pepper = self.pepper.clone();
        self.blocking(move |_| {
            let Ok(parsed) = PasswordHash::new(&stored) else {
                tracing::error!("a stored password hash is not a PHC string");
                return Verification {
                    matches: false,
                    needs_rehash: true,
                };
            };
            let matches = verify_reusing(
                current.block_count(),
                pepper.expose_secret().as_bytes(),
                &parsed,
                password.expose_secret(),
                &memory,
            );
            Verification {
                matches,
                needs_rehash: is_weaker(&parsed, &current),
            }
        })
        .await
    }

    /// Spends the time of one verification for an account that does not exist.
    pub async fn verify_dummy(&self, password: &str) -> Result<(), ApiError> {
        self.verify(password, &self.dummy).await.map(|_| ())
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2<'_>) -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        // Hashing and its queue take far longer than a statement: the request's
        // database connection is of more use to the others meanwhile.
        crate::store::held::release();
        let pepper = self.pepper.clone();
        let params = self.params.clone();
        self.workers
            .run(move || {
                let argon = Argon2::new_with_secret(
                    pepper.expose_secret().as_bytes(),
                    Algorithm::Argon2id,
                    Version::V0x13,
                    params,
                )
                .map_err(|e| {
                    ApiError::internal(std::io::Error::other(format!("argon2 set-up: {e}")))
                })?;
                Ok(work(&argon))
            })
            .await?
    }
}

/// The answer when the hashing queue is full: 503 at once, retry in a second.
pub fn busy() -> ApiError {
    tracing::warn!("password hashing queue is full: refusing a hash");
    ApiError::new(ErrorKind::ServiceUnavailable)
        .with_detail("the server is busy checking passwords; retry shortly")
        .with_retry_after(1)
}

/// How much lower than the rest of the process the hashing threads run, in nice steps
/// (Linux only; elsewhere they run at the process's priority).
const HASHING_NICE_STEPS: i32 = 10;

type Job = Box<dyn FnOnce() + Send>;

/// The threads that run Argon2: as many as hashes may run at once, started by the first
/// hash (a cold start spawns none), and niced [`HASHING_NICE_STEPS`] below the process.
///
/// Measured with `bench/run --only login_storm` and `perf stat` against the previous design
/// (`spawn_blocking` at normal priority, same semaphore):
/// - Throughput: a storm kept 1.76–1.82 of two cores busy through tokio's shared blocking
///   pool, with 6–9 times the CPU migrations, and 1.95 on these threads: logins went from
///   0.78–0.84 of raw hashing to 0.88–0.94. That gain is the threads', with or without nice.
/// - Latency: niced, hashing yields to the async workers and database threads the moment
///   they become runnable, so `/health` p99 during the storm fell from about 5.5 ms to
///   about 3.5 ms. Hashing still takes every cycle nothing else wants; only when other
///   requests saturate the cores do logins slow down first, which is the right order.
struct Workers {
    /// `None`: one per core, counted when the first hash starts them.
    threads: Option<usize>,
    /// How many hashes may wait for a thread.
    queue: usize,
    started: OnceLock<Started>,
    jobs: AtomicU64,
}

struct Started {
    /// One per thread plus one per queue place: a hash that finds none is refused at once.
    admission: Arc<Semaphore>,
    /// One per thread: a hash waits here (cancellably, as an async task) for a free thread.
    permits: Arc<Semaphore>,
    queue: mpsc::Sender<Job>,
}

impl Workers {
    fn new(threads: Option<usize>, queue: usize) -> Self {
        Self {
            threads,
            queue,
            started: OnceLock::new(),
            jobs: AtomicU64::new(0),
        }
    }

    /// Runs `work` on a hashing thread once one is free. A panic in it comes back as an
    /// internal error and leaves the thread serving.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        use tracing::Instrument as _;
        use tracing_opentelemetry::OpenTelemetrySpanExt as _;

        // Traces (while exported) show the wait for a hashing thread apart from the hashing.
        let traced = otel::in_trace();
        let span = if traced {
            tracing::info_span!(target: otel::SPAN, "password hash")
        } else {
            tracing::Span::none()
        };
        async {
            let started = self.start();
            let admitted = started
                .admission
                .clone()
                .try_acquire_owned()
                .map_err(|_| busy())?;
            let queue = if traced {
                tracing::info_span!(target: otel::SPAN, "password hash queue")
            } else {
                tracing::Span::none()
            };
            let permit = started
                .permits
                .clone()
                .acquire_owned()
                .instrument(queue)
                .await
                .map_err(ApiError::internal)?;
            let (reply, answer) = tokio::sync::oneshot::channel();
            self.jobs.fetch_add(1, Ordering::Relaxed);
            // The hashing thread gets the trace's context, not a handle on the request's
            // spans: a handle would keep them open until the hash is done, even for a request
            // that was dropped meanwhile (a 504, a client gone), and its trace would end late.
            let parent = traced.then(|| span.context());
            let job: Job = Box::new(move || {
                let _permits = (permit, admitted);
                let done = {
                    // Ends (even in a panic, as a local) before the answer goes: a request
                    // that flushes its trace once answered (Lambda) finds it ended.
                    let _hashing = parent.map(|parent| {
                        let hashing =
                            tracing::info_span!(target: otel::SPAN, parent: None, "password hashing");
                        let _ = hashing.set_parent(parent);
                        hashing.entered()
                    });
                    work()
                };
                // The caller may have gone (a dropped request); the answer is then unwanted.
                let _ = reply.send(done);
            });
            let lost =
                || ApiError::internal(std::io::Error::other("a password hashing job was lost"));
            started.queue.send(job).map_err(|_| lost())?;
            answer.await.map_err(|_| lost())
        }
        .instrument(span.clone())
        .await
    }

    fn start(&self) -> &Started {
        self.started.get_or_init(|| {
            let threads = self
                .threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, usize::from))
                .max(1);
            let (queue, jobs) = mpsc::channel::<Job>();
            let jobs = Arc::new(Mutex::new(jobs));
            for n in 0..threads {
                let jobs = jobs.clone();
                let spawned = std::thread::Builder::new()
                    .name(format!("argon2-{n}"))
                    .spawn(move || serve(&jobs));
                if let Err(error) = spawned {
                    tracing::error!(%error, "could not start a password hashing thread");
                }
            }
            // With no thread started, the receiver is gone and every `send` fails loudly.
            Started {
                admission: Arc::new(Semaphore::new(threads.saturating_add(self.queue))),
                permits: Arc::new(Semaphore::new(threads)),
                queue,
            }
        })
    }
}

/// A hashing thread's loop: it ends when its `PasswordHasher` (the only sender) is dropped.
fn serve(jobs: &Mutex<mpsc::Receiver<Job>>) {
    lower_priority();
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        // The job's reply channel closes as it unwinds: its caller gets an error.
        let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
    }
}

fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::{process, thread};
        // Linux keeps a nice value per thread; `PRIO_PROCESS` with a thread id sets this one.
        let me = Some(thread::gettid());
        let lowered = process::getpriority_process(me)
            .map(|nice| (nice + HASHING_NICE_STEPS).min(19))
            .and_then(|nice| process::setpriority_process(me, nice));
        if let Err(error) = lowered {
            tracing::warn!(%error, "password hashing runs at normal priority");
        }
    }
}

/// What `PasswordVerifier::verify_password` does (the stored hash's algorithm, version and
/// parameters; a constant-time comparison of the output), with working memory taken from and
/// returned to `pool`. Memory is kept only at `kept_blocks`, the size current parameters use.
fn verify_reusing(
    kept_blocks: usize,
    pepper: &[u8],
    stored: &PasswordHash<'_>,
    password: &str,
    pool: &Mutex<Vec<Vec<Block>>>,
) -> bool {
    let (Some(expected), Some(salt)) = (stored.hash, stored.salt) else {
        return false;
    };
    let (Ok(algorithm), Ok(version), Ok(params)) = (
        Algorithm::try_from(stored.algorithm),
        stored
            .version
            .map_or(Ok(Version::default()), Version::try_from),
        Params::try_from(stored),
    ) else {
        return false;
    };
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let Ok(argon) = Argon2::new_with_secret(pepper, algorithm, version, params.clone()) else {
        return false;
    };
    let blocks = params.block_count();
    let taken = pool.lock().map(|mut free| free.pop()).unwrap_or(None);
    let mut memory = match taken {
        Some(memory) if memory.len() == blocks => memory,
        _ => vec![Block::default(); blocks],
    };
    let mut out = vec![0u8; expected.len()];
    let hashed = argon
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..])
        .is_ok();
    // The pool never holds more blocks than verifications can run at once: each run takes
    // one (or makes one) and gives back at most that one.
    if memory.len() == kept_blocks {
        if let Ok(mut free) = pool.lock() {
            free.push(memory);
        }
    }
    // `Output`'s equality is constant-time.
    hashed && Output::new(&out).is_ok_and(|out| out == expected)
}

/// A PHC string that parses with `params` and matches no password: random salt, random
/// 32-byte output (a match would need a 256-bit collision).
fn dummy_phc(params: &Params) -> String {
    let salt: [u8; 16] = rand::random();
    let output: [u8; 32] = rand::random();
    format!(
        "$argon2id$v=19$m={},t={},p={}${}${}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost(),
        STANDARD_NO_PAD.encode(salt),
        STANDARD_NO_PAD.encode(output),
    )
}

fn is_weaker(stored: &PasswordHash<'_>, current: &Params) -> bool {
    if stored.algorithm != argon2::ARGON2ID_IDENT {
        return true;
    }
    match Params::try_from(stored) {
        Ok(p) => {
            p.m_cost() < current.m_cost()
                || p.t_cost() < current.t_cost()
                || p.p_cost() < current.p_cost()
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hasher(pepper: &str, memory_kib: u32) -> PasswordHasher {
        PasswordHasher::new(
            &Argon2Config {
                memory_kib,
                iterations: 2,
                parallelism: 1,
                concurrency: Some(2),
                queue: 32,
            },
            &SecretString::from(pepper.to_owned()),
        )
        .unwrap()
    }

    const PEPPER_A: &str = "pepper-a-0123456789abcdef0123456789abcdef";
    const PEPPER_B: &str = "pepper-b-0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn hash_is_argon2id_with_configured_parameters_and_verifies() {
        let h = hasher(PEPPER_A, 19 * 1024);
        let phc = h.hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        let ok = h.verify("correct horse battery", &phc).await.unwrap();
        assert_eq!(
            ok,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        assert!(!h.verify("wrong horse battery", &phc).await.unwrap().matches);
    }

    #[tokio::test]
    async fn the_pepper_changes_the_hash() {
        let a = hasher(PEPPER_A, 19 * 1024);
        let b = hasher(PEPPER_B, 19 * 1024);
        let phc = a.hash("correct horse battery").await.unwrap();
        assert!(
            !b.verify("correct horse battery", &phc)
                .await
                .unwrap()
                .matches
        );
    }

    #[tokio::test]
    async fn weaker_stored_parameters_ask_for_a_rehash() {
        let old = hasher(PEPPER_A, 19 * 1024);
        let stronger = hasher(PEPPER_A, 32 * 1024);
        let phc = old.hash("correct horse battery").await.unwrap();
        let v = stronger
            .verify("correct horse battery", &phc)
            .await
            .unwrap();
        assert!(v.matches && v.needs_rehash);
    }

    #[tokio::test]
    async fn the_dummy_exists_before_any_hash_and_costs_one_verification() {
        let h = hasher(PEPPER_A, 19 * 1024);
        // Made without hashing: no thread started, no job run.
        assert!(h.workers.started.get().is_none());
        assert_eq!(h.jobs_started(), 0);
        let parsed = PasswordHash::new(&h.dummy).unwrap();
        let stored = Params::try_from(&parsed).unwrap();
        assert_eq!(
            (stored.m_cost(), stored.t_cost(), stored.p_cost()),
            (h.params.m_cost(), h.params.t_cost(), h.params.p_cost())
        );
        assert_eq!(parsed.hash.unwrap().len(), 32);
        assert!(!is_weaker(&parsed, &h.params));
        // The first unknown-email login costs exactly one hash, like every later one.
        h.verify_dummy("anything at all").await.unwrap();
        assert_eq!(h.jobs_started(), 1);
        h.verify_dummy("anything at all").await.unwrap();
        assert_eq!(h.jobs_started(), 2);
        // It never matches, not even the empty password.
        assert!(!h.verify("", &h.dummy).await.unwrap().matches);
    }

    #[tokio::test]
    async fn a_full_queue_refuses_at_once_with_503_and_retry_after() {
        use axum::response::IntoResponse as _;
        let h = Arc::new(
            PasswordHasher::new(
                &Argon2Config {
                    memory_kib: 8 * 1024,
                    iterations: 2,
                    parallelism: 1,
                    concurrency: Some(1),
                    queue: 1,
                },
                &SecretString::from(PEPPER_A.to_owned()),
            )
            .unwrap(),
        );
        // One job holds the only thread until released; one more waits in the queue.
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let busy = {
            let h = h.clone();
            tokio::spawn(async move {
                h.blocking(move |_| {
                    let _ = hold.recv();
                })
                .await
            })
        };
        while h.jobs_started() < 1 {
            tokio::task::yield_now().await;
        }
        let waiting = {
            let h = h.clone();
            tokio::spawn(async move { h.blocking(|_| 7).await })
        };
        while h
            .workers
            .started
            .get()
            .unwrap()
            .admission
            .available_permits()
            > 0
        {
            tokio::task::yield_now().await;
        }
        let started = std::time::Instant::now();
        let refused = h.verify("pw", &h.dummy).await.unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
        let response = refused.into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .unwrap()
                .to_str()
                .unwrap(),
            "1"
        );
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(waiting.await.unwrap().unwrap(), 7);
        // Places free again once the work is done.
        assert!(!h.verify("pw", &h.dummy).await.unwrap().matches);
    }

    #[tokio::test]
    async fn reused_memory_gives_the_same_answers_as_the_library() {
        use argon2::PasswordVerifier as _;
        let h = hasher(PEPPER_A, 19 * 1024);
        let weaker = hasher(PEPPER_A, 8 * 1024)
            .hash("old password")
            .await
            .unwrap();
        let phc = h.hash("correct horse battery").await.unwrap();
        let library = Argon2::new_with_secret(
            PEPPER_A.as_bytes(),
            Algorithm::Argon2id,
            Version::V0x13,
            Params::default(),
        )
        .unwrap();
        // Several rounds, so later ones run in memory an earlier one used (and the weaker
        // hash, at another size, in fresh memory that is not kept).
        for _ in 0..3 {
            for (password, stored) in [
                ("correct horse battery", &phc),
                ("correct horse batterY", &phc),
                ("", &phc),
                ("old password", &weaker),
                ("new password", &weaker),
            ] {
                let expected = library
                    .verify_password(password.as_bytes(), &PasswordHash::new(stored).unwrap())
                    .is_ok();
                let got = h.verify(password, stored).await.unwrap().matches;
                assert_eq!(got, expected, "{password:?}");
            }
        }
        assert!(
            h.verify("correct horse battery", &phc)
                .await
                .unwrap()
                .matches
        );
        let kept = h.memory.lock().unwrap();
        assert!(
            !kept.is_empty() && kept.len() <= 2,
            "kept {} blocks",
            kept.len()
        );
        assert!(kept.iter().all(|m| m.len() == 19 * 1024));
    }

    #[tokio::test]
    async fn a_panicking_job_is_an_error_and_the_threads_keep_serving() {
        let h = hasher(PEPPER_A, 8 * 1024);
        for _ in 0..4 {
            let failed = h.blocking(|_| -> u8 { panic!("a job that panics") }).await;
            assert!(failed.is_err());
        }
        let phc = h.hash("still works").await.unwrap();
        assert!(h.verify("still works", &phc).await.unwrap().matches);
    }

    #[tokio::test]
    async fn no_thread_starts_before_the_first_hash() {
        let h = hasher(PEPPER_A, 8 * 1024);
        assert!(h.workers.started.get().is_none());
        h.hash("pw").await.unwrap();
        assert!(h.workers.started.get().is_some());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_at_lower_priority_than_the_rest() {
        use rustix::{process, thread};
        let nice_of_this_thread = || process::getpriority_process(Some(thread::gettid())).unwrap();
        let h = hasher(PEPPER_A, 8 * 1024);
        let caller = nice_of_this_thread();
        let hashing = h.blocking(move |_| nice_of_this_thread()).await.unwrap();
        assert!(caller < 19 && hashing > caller, "{hashing} vs {caller}");
        assert_eq!(hashing, (caller + HASHING_NICE_STEPS).min(19));
        // Only the hashing threads: the caller's own priority is untouched.
        assert_eq!(nice_of_this_thread(), caller);
    }

    #[test]
    fn dropping_the_hasher_ends_its_threads() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let h = hasher(PEPPER_A, 8 * 1024);
        let name = rt
            .block_on(h.blocking(|_| std::thread::current().name().map(str::to_owned)))
            .unwrap()
            .unwrap();
        assert!(name.starts_with("argon2-"), "{name}");
        let (sender, ended) = mpsc::channel::<()>();
        // A job whose captured sender is dropped only when the thread that holds it unwinds
        // its loop: a thread parks the next job's sender in a thread-local that dies with it.
        thread_local!(static KEEP: std::cell::RefCell<Option<mpsc::Sender<()>>> = const { std::cell::RefCell::new(None) });
        for _ in 0..2 {
            let sender = sender.clone();
            rt.block_on(h.blocking(move |_| KEEP.with(|k| *k.borrow_mut() = Some(sender))))
                .unwrap();
        }
        drop(sender);
        drop(h);
        // Every thread's thread-local sender is gone once the threads have exited.
        assert_eq!(
            ended.recv_timeout(std::time::Duration::from_secs(10)),
            Err(mpsc::RecvTimeoutError::Disconnected)
        );
    }

    #[tokio::test]
    async fn a_malformed_or_foreign_hash_never_matches() {
        let h = hasher(PEPPER_A, 19 * 1024);
        let phc = h.hash("pw").await.unwrap();
        let no_hash = phc.rsplit_once('$').unwrap().0.to_owned();
        let other_pepper = hasher(PEPPER_B, 19 * 1024).hash("pw").await.unwrap();
        for stored in [
            no_hash.as_str(),
            other_pepper.as_str(),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
        ] {
            assert!(!h.verify("pw", stored).await.unwrap().matches, "{stored}");
        }
    }
}
