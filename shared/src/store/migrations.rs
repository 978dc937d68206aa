//! Applying the embedded migrations, the same way for both backends and every caller
//! (`local-server migrate` and `serve`, the `migrate` function on deploy, tests).
//!
//! Migrations are expand-only (see `migrations/`): a release's code runs on the schema of
//! the next one. So a database that already has migrations this build does not know — a
//! newer release migrated it, and this one is an instance still running or a deploy being
//! rolled back — is not an error: they are left in place and reported. A migration whose
//! text changed after it was applied still is an error (sqlx compares checksums).
//!
//! On Postgres the run is this module's own ([`postgres`]), so that it works behind a
//! connection proxy that pools by transaction (PgBouncer, RDS Proxy) as well as straight to
//! the database: everything it does is inside transactions, one per migration, each under
//! a transaction-scoped advisory lock. sqlx's runner holds a session lock across them,
//! which such a proxy cannot keep. The bookkeeping table and the lock key are sqlx's, so
//! databases it migrated, and runs of it (an older release, `sqlx migrate run`), go on
//! working beside this one. SQLite keeps sqlx's runner, inside one transaction
//! ([`sqlite`]).

use std::collections::BTreeMap;

#[cfg(feature = "sqlite")]
use sqlx::migrate::Migrate;
use sqlx::migrate::{MigrateError, Migrator};

use super::{StoreError, landed};

/// What one migration run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// Migrations the database had applied in a known earlier text, which this run
    /// repaired (`migrations/repairs/`), in order.
    pub repaired: Vec<Repaired>,
    /// The versions this run applied, in order.
    pub applied: Vec<i64>,
    /// Versions the database has that this build does not know (a newer release's).
    pub unknown: Vec<i64>,
    /// The highest version in the database afterwards.
    pub version: Option<i64>,
}

/// A migration applied in an earlier text, repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repaired {
    pub version: i64,
    /// The commit whose text of the migration the database had applied.
    pub text_of: &'static str,
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions = |v: &[i64]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        for repaired in &self.repaired {
            write!(
                f,
                "repaired migration {} (applied in its text of {}); ",
                repaired.version, repaired.text_of
            )?;
        }
        match self.applied.len() {
            0 => write!(f, "no pending migration")?,
            1 => write!(f, "applied migration {}", versions(&self.applied))?,
            _ => write!(f, "applied migrations {}", versions(&self.applied))?,
        }
        if let Some(version) = self.version {
            write!(f, "; schema at version {version}")?;
        }
        if !self.unknown.is_empty() {
            write!(
                f,
                "; left in place, from a newer release: {}",
                versions(&self.unknown)
            )?;
        }
        Ok(())
    }
}

/// Applies `embedded`'s pending migrations on `conn` with sqlx's runner (SQLite's): each
/// in a savepoint of [`sqlite`]'s transaction, so a failing one leaves no trace; a repair
/// ([`landed`]) runs in that transaction itself. Reports what this run did itself.
/// Concurrent runs (instances starting together) are serialised by the write lock of that
/// transaction; should a migration still fail because another run applied that same one
/// meanwhile, the run moves on to the next one.
#[cfg(feature = "sqlite")]
async fn run(
    embedded: &'static Migrator,
    conn: &mut sqlx::SqliteConnection,
) -> Result<MigrationReport, StoreError> {
    conn.lock().await?;
    let outcome = apply_pending(embedded, conn).await;
    // Released on failure too: the connection goes back to the pool.
    let unlocked = conn.unlock().await;
    let (repaired, applied, after) = outcome?;
    unlocked?;
    Ok(MigrationReport::new(embedded, repaired, applied, &after))
}

impl MigrationReport {
    /// The report of a run that repaired `repaired` and applied `applied`, leaving `after`
    /// in the database.
    fn new(
        embedded: &Migrator,
        repaired: Vec<Repaired>,
        applied: Vec<i64>,
        after: &BTreeMap<i64, Vec<u8>>,
    ) -> Self {
        let known: Vec<i64> = embedded.iter().map(|m| m.version).collect();
        Self {
            repaired,
            applied,
            unknown: after
                .keys()
                .copied()
                .filter(|v| !known.contains(v))
                .collect(),
            version: after.keys().copied().max(),
        }
    }
}

/// Server-side bounds on a Postgres run (the `migrate` function's): a statement running
/// longer than `statement_timeout` is cancelled by Postgres itself (its migration rolled
/// back), and one waiting longer than `lock_timeout` for a lock (the migration lock
/// included) gives up rather than queueing every query of the API behind it.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub statement_timeout: std::time::Duration,
    pub lock_timeout: std::time::Duration,
}

/// Applies the pending Postgres migrations on a connection of `pool`, one transaction per
/// migration. Each transaction takes the migration lock (`pg_advisory_xact_lock`, released
/// as it ends), reads what is applied, checks it against this build, and applies the first
/// pending migration with its bookkeeping row; so concurrent runs apply each migration
/// once, and a failing one leaves no trace. Statements are unnamed: nothing outlives a
/// transaction on the server connection.
///
/// A migration marked `-- no-transaction` (indexes built `CONCURRENTLY`, so that writes to
/// their table go on meanwhile) runs in a session instead ([`outside_a_transaction`]), which
/// a proxy that pools by transaction cannot give: behind one (`statements` is
/// [`Statements::Proxied`](super::db::Statements)) its statements run in the migration's
/// transaction without `CONCURRENTLY`, holding writes back while they build, with a warning
/// that names `MIGRATIONS_DATABASE_URL`. Either way its statements must be of the forms
/// [`super::concurrent`] allows, each safe to run again, or it is refused before any runs.
#[cfg(feature = "postgres")]
pub(crate) async fn postgres(
    pool: &sqlx::PgPool,
    embedded: &Migrator,
    bounds: Option<Bounds>,
    statements: super::db::Statements,
) -> Result<MigrationReport, StoreError> {
    use sqlx::{Connection as _, Executor as _};

    let failed = |doing| move |e| StoreError::from_sqlx(doing, e);
    let mut conn = pool
        .acquire()
        .await
        .map_err(failed("migrating the database"))?;
    let mut applied = Vec::new();
    let mut repaired = Vec::new();
    let mut database = None;
    let mut waiting = LockWait::default();
    loop {
        // Read committed whatever the role's default: the applied versions are read after
        // the lock is taken, and must include what a run that held it before committed.
        let mut tx = conn
            .begin_with("BEGIN ISOLATION LEVEL READ COMMITTED")
            .await
            .map_err(failed("beginning a migration"))?;
        if let Some(bounds) = bounds {
            let ms = |d: std::time::Duration| d.as_millis().max(1);
            // `SET` takes no bind parameters; the values are integers formatted here.
            let settings = format!(
                "SET LOCAL statement_timeout = {}; SET LOCAL lock_timeout = {}",
                ms(bounds.statement_timeout),
                ms(bounds.lock_timeout)
            );
            // A query without arguments goes as one simple-protocol message.
            tx.execute(settings.as_str())
                .await
                .map_err(failed("bounding the migration"))?;
        }
        let name = match database.take() {
            Some(name) => name,
            None => {
                let (database, schema): (String, String) =
                    sqlx::query_as("SELECT current_database()::text, current_schema()::text")
                        .persistent(false)
                        .fetch_one(&mut *tx)
                        .await
                        .map_err(failed("naming the database"))?;
                // sqlx's runner names the database only, as its table is in the default
                // schema; a run in another schema (its own `_sqlx_migrations`) locks that
                // schema alone.
                if schema == "public" {
                    database
                } else {
                    format!("{database}.{schema}")
                }
            }
        };
        if !try_lock(&mut tx, Lock::Transaction, lock_key(&name)).await? {
            // Not across the wait: a transaction kept open while waiting could be one that
            // the holder's concurrent index build waits for, which Postgres would not see
            // as a deadlock.
            tx.rollback()
                .await
                .map_err(failed("waiting for the migration lock"))?;
            database = Some(name);
            waiting.wait(bounds).await?;
            continue;
        }
        waiting = LockWait::default();
        tx.execute(MIGRATIONS_TABLE)
            .await
            .map_err(failed("creating the migrations table"))?;
        let rows: Vec<(i64, Vec<u8>, bool)> = sqlx::query_as(
            "SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version",
        )
        .persistent(false)
        .fetch_all(&mut *tx)
        .await
        .map_err(failed("listing the applied migrations"))?;
        if let Some((version, ..)) = rows.iter().find(|(.., success)| !success) {
            return Err(MigrateError::Dirty(*version).into());
        }
        let in_database: BTreeMap<i64, Vec<u8>> = rows
            .into_iter()
            .map(|(v, checksum, _)| (v, checksum))
            .collect();
        let Some(next) = next_step(embedded, &in_database, landed::REPAIRS_POSTGRES)? else {
            tx.commit()
                .await
                .map_err(failed("ending the migration run"))?;
            return Ok(MigrationReport::new(
                embedded,
                repaired,
                applied,
                &in_database,
            ));
        };
        let migration = match next {
            Step::Apply(migration) => migration,
            Step::Repair(migration, repair) => {
                tx.execute(repair.sql)
                    .await
                    .map_err(|e| MigrateError::ExecuteMigration(e, migration.version))?;
                sqlx::query("UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2")
                    .bind(&*migration.checksum)
                    .bind(migration.version)
                    .persistent(false)
                    .execute(&mut *tx)
                    .await
                    .map_err(failed("recording a repaired migration"))?;
                tx.commit().await.map_err(failed("committing a repair"))?;
                tracing::warn!(
                    version = migration.version,
                    text_of = repair.commit(),
                    "repaired a migration the database had applied in an earlier text"
                );
                repaired.push(Repaired {
                    version: migration.version,
                    text_of: repair.commit(),
                });
                database = Some(name);
                continue;
            }
        };
        // A released migration that blocks writes goes through its plan, which builds the
        // same schema concurrently (`migrations/plans/`); behind a proxy, where there is no
        // session, the text runs itself, below.
        let plan = landed::find(
            landed::PLANS_POSTGRES,
            migration.version,
            &migration.checksum,
        )
        .filter(|_| statements != super::db::Statements::Proxied);
        // Statements to run one by one (a `-- no-transaction` migration, or a plan); refused
        // before any runs unless each is of the forms `concurrent` allows.
        let parsed = if migration.no_tx || plan.is_some() {
            let sql = plan.map_or(&*migration.sql, |plan| plan.sql);
            Some(
                super::concurrent::parse(sql)
                    .ok_or(StoreError::Unsupported(super::concurrent::ALLOWED))?,
            )
        } else {
            None
        };
        if let Some(parsed) = &parsed {
            if statements != super::db::Statements::Proxied {
                // The lock is taken again, for the session, by the run outside a transaction.
                tx.commit()
                    .await
                    .map_err(failed("ending a migration check"))?;
                // Closed rather than given back when done: a run cancelled mid-build (the
                // migrate function's time is up) must not return it holding the session lock.
                conn.close_on_drop();
                let run = Outside {
                    statements: parsed,
                    plan: plan.is_some(),
                };
                if outside_a_transaction(&mut conn, migration, run, bounds, lock_key(&name)).await?
                {
                    applied.push(migration.version);
                }
                database = Some(name);
                continue;
            }
            // No session to be had: built in this transaction instead, which holds writes to
            // the table back until it commits.
            tracing::warn!(
                version = migration.version,
                "building indexes in a transaction, holding writes to their tables back: \
                 behind a proxy that pools by transaction there is no session for a \
                 concurrent build (set MIGRATIONS_DATABASE_URL to the database itself)"
            );
        }
        let started = std::time::Instant::now();
        if let Some(parsed) = &parsed {
            for statement in parsed {
                // An invalid index a cancelled concurrent build left would pass for built.
                if let Some(index) = &statement.builds {
                    drop_if_invalid(&mut tx, index, DropHow::InATransaction).await?;
                }
                tx.execute(statement.in_a_transaction.as_str())
                    .await
                    .map_err(|e| MigrateError::ExecuteMigration(e, migration.version))?;
            }
        } else {
            tx.execute(&*migration.sql)
                .await
                .map_err(|e| MigrateError::ExecuteMigration(e, migration.version))?;
        }
        record(&mut tx, migration, started).await?;
        tx.commit()
            .await
            .map_err(failed("committing a migration"))?;
        applied.push(migration.version);
        database = Some(name);
    }
}

/// What a run does next on a database that has `in_database` applied.
enum Step<'m> {
    /// Repair a migration applied in a known earlier text.
    Repair(&'m sqlx::migrate::Migration, &'static landed::Text),
    /// Apply a pending migration.
    Apply(&'m sqlx::migrate::Migration),
}

/// The first thing to do, in version order, or nothing. A migration applied in a text that
/// is neither this build's nor a known earlier one (`repairs`, [`landed`]) is an error,
/// wherever it is: the schema is not what this build expects.
fn next_step<'m>(
    embedded: &'m Migrator,
    in_database: &BTreeMap<i64, Vec<u8>>,
    repairs: &'static [landed::Text],
) -> Result<Option<Step<'m>>, StoreError> {
    let mut next = None;
    for migration in embedded.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        let step = match in_database.get(&migration.version) {
            Some(checksum) if *checksum == *migration.checksum => None,
            Some(checksum) => Some(Step::Repair(
                migration,
                landed::find(repairs, migration.version, checksum)
                    .ok_or(MigrateError::VersionMismatch(migration.version))?,
            )),
            None => Some(Step::Apply(migration)),
        };
        if next.is_none() {
            next = step;
        }
    }
    Ok(next)
}

/// The migration lock: for the transaction, or for the session (a migration outside a
/// transaction).
#[cfg(feature = "postgres")]
#[derive(Clone, Copy)]
enum Lock {
    Transaction,
    Session,
}

/// Tries the migration lock on `conn` once: whether it was taken. Runs never wait for it
/// inside a statement: a waiting statement holds a snapshot, and a concurrent index build
/// of the run holding the lock waits for every older snapshot to go, so each would wait for
/// the other.
#[cfg(feature = "postgres")]
async fn try_lock(conn: &mut sqlx::PgConnection, lock: Lock, key: i64) -> Result<bool, StoreError> {
    let sql = match lock {
        Lock::Transaction => "SELECT pg_try_advisory_xact_lock($1)",
        Lock::Session => "SELECT pg_try_advisory_lock($1)",
    };
    let (taken,): (bool,) = sqlx::query_as(sql)
        .bind(key)
        .persistent(false)
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| StoreError::from_sqlx("taking the migration lock", e))?;
    Ok(taken)
}

/// Waiting for the migration lock between tries: 50 ms at a time, up to the lock timeout
/// of `bounds` since the first try that failed (none: as long as it takes, saying so every
/// ten seconds).
#[cfg(feature = "postgres")]
#[derive(Default)]
struct LockWait {
    since: Option<std::time::Instant>,
    told: u64,
}

#[cfg(feature = "postgres")]
impl LockWait {
    async fn wait(&mut self, bounds: Option<Bounds>) -> Result<(), StoreError> {
        let since = *self.since.get_or_insert_with(std::time::Instant::now);
        let waited = since.elapsed();
        if bounds.is_some_and(|bounds| waited >= bounds.lock_timeout) {
            return Err(StoreError::LockTimeout("taking the migration lock"));
        }
        if waited.as_secs() / 10 > self.told {
            self.told = waited.as_secs() / 10;
            tracing::info!(
                waited_secs = waited.as_secs(),
                "waiting for another migration run to let go of the migration lock"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        Ok(())
    }
}

/// Applies a `-- no-transaction` migration, or a migration through its plan, on `conn`, a
/// session of its own (straight to Postgres): under the session-level migration lock
/// (sqlx's, the same key), if it is still pending, `run`'s statements one by one
/// ([`super::concurrent`]: each safe to run again), then its bookkeeping row. An index that a failed concurrent build leaves
/// behind invalid is dropped, on failure and before a run, so that `IF NOT EXISTS` never
/// takes it for built. Returns whether this run applied it.
#[cfg(feature = "postgres")]
async fn outside_a_transaction(
    conn: &mut sqlx::PgConnection,
    migration: &sqlx::migrate::Migration,
    run: Outside<'_>,
    bounds: Option<Bounds>,
    key: i64,
) -> Result<bool, StoreError> {
    use sqlx::Executor as _;
    let failed = |doing| move |e| StoreError::from_sqlx(doing, e);
    // No lock timeout for the build: a concurrent build waits, as lock waits, for every
    // older transaction of the database to end, and blocks nobody meanwhile. The statement
    // timeout still bounds it.
    let settings = bounds.map(|bounds| {
        format!(
            "SET statement_timeout = {}; SET lock_timeout = 0",
            bounds.statement_timeout.as_millis().max(1)
        )
    });
    if let Some(settings) = &settings {
        conn.execute(settings.as_str())
            .await
            .map_err(failed("bounding the migration"))?;
    }
    let mut waiting = LockWait::default();
    let locked = loop {
        match try_lock(conn, Lock::Session, key).await {
            Ok(true) => break Ok(()),
            Ok(false) => {
                if let Err(error) = waiting.wait(bounds).await {
                    break Err(error);
                }
            }
            Err(error) => break Err(error),
        }
    };
    let outcome = match locked {
        Ok(_) => {
            let outcome = apply_alone(conn, migration, run).await;
            let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
                .bind(key)
                .persistent(false)
                .execute(&mut *conn)
                .await
                .map_err(failed("releasing the migration lock"));
            outcome.and_then(|applied| unlocked.map(|_| applied))
        }
        Err(error) => Err(error),
    };
    // The connection goes back to the pool as it came.
    if settings.is_some() {
        let _ = conn
            .execute("RESET statement_timeout; RESET lock_timeout")
            .await;
    }
    outcome
}

/// The statements a migration runs outside a transaction: its own, or its plan's.
#[cfg(feature = "postgres")]
#[derive(Clone, Copy)]
struct Outside<'a> {
    statements: &'a [super::concurrent::Statement],
    /// A plan stands for a text still pending, which builds the same indexes in a
    /// transaction, without `IF NOT EXISTS`: a plan that fails takes every index it builds
    /// away again, so that a release with that text (or sqlx's runner) can still apply it.
    plan: bool,
}

/// [`outside_a_transaction`] with the lock held.
#[cfg(feature = "postgres")]
async fn apply_alone(
    conn: &mut sqlx::PgConnection,
    migration: &sqlx::migrate::Migration,
    run: Outside<'_>,
) -> Result<bool, StoreError> {
    let statements = run.statements;
    use sqlx::Executor as _;
    let failed = |doing| move |e| StoreError::from_sqlx(doing, e);
    let done: Option<(i64,)> =
        sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE version = $1")
            .bind(migration.version)
            .persistent(false)
            .fetch_optional(&mut *conn)
            .await
            .map_err(failed("checking a migration"))?;
    if done.is_some() {
        // Applied by a run that held the lock before this one.
        return Ok(false);
    }
    let started = std::time::Instant::now();
    // One at a time, each on its own: a run that fails half-way leaves what it built, and
    // the next one goes through them all again (each is safe to run again).
    for statement in statements {
        if let Some(index) = &statement.builds {
            drop_if_invalid(conn, index, DropHow::Concurrently).await?;
        }
        if let Err(error) = conn.execute(statement.sql.as_str()).await {
            // The migration's error is the one to report; the next run drops the index anyway.
            let built = if run.plan {
                statements
                    .iter()
                    .filter_map(|s| s.builds.as_ref())
                    .collect()
            } else {
                statement.builds.iter().collect::<Vec<_>>()
            };
            for index in built {
                if let Err(cleanup) = drop_index(conn, index, DropHow::Concurrently, run.plan).await
                {
                    tracing::warn!(error = %cleanup, index, "could not drop the index");
                }
            }
            return Err(MigrateError::ExecuteMigration(error, migration.version).into());
        }
    }
    record(conn, migration, started).await?;
    Ok(true)
}

/// The bookkeeping row of `migration`, applied since `started` (sqlx's columns).
#[cfg(feature = "postgres")]
async fn record(
    conn: &mut sqlx::PgConnection,
    migration: &sqlx::migrate::Migration,
    started: std::time::Instant,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO _sqlx_migrations \
         (version, description, success, checksum, execution_time) \
         VALUES ($1, $2, TRUE, $3, $4)",
    )
    .bind(migration.version)
    .bind(&*migration.description)
    .bind(&*migration.checksum)
    .bind(i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX))
    .persistent(false)
    .execute(&mut *conn)
    .await
    .map_err(|e| StoreError::from_sqlx("recording a migration", e))?;
    Ok(())
}

/// How [`drop_if_invalid`] drops: in a session, or in the caller's transaction.
#[cfg(feature = "postgres")]
#[derive(Clone, Copy, PartialEq, Eq)]
enum DropHow {
    Concurrently,
    InATransaction,
}

/// Drops index `name` if a failed concurrent build left it invalid (and no build of it is
/// under way).
#[cfg(feature = "postgres")]
async fn drop_if_invalid(
    conn: &mut sqlx::PgConnection,
    name: &str,
    how: DropHow,
) -> Result<(), StoreError> {
    drop_index(conn, name, how, false).await
}

/// Drops index `name` of the current schema (never one of another schema on the search
/// path), if it is invalid or `valid_too`, and no build of it is under way. The name dropped
/// is the catalog's own, quoted by Postgres.
#[cfg(feature = "postgres")]
async fn drop_index(
    conn: &mut sqlx::PgConnection,
    name: &str,
    how: DropHow,
    valid_too: bool,
) -> Result<(), StoreError> {
    use sqlx::Executor as _;
    let failed = |doing| move |e| StoreError::from_sqlx(doing, e);
    let invalid: Option<(String,)> = sqlx::query_as(
        "SELECT i.indexrelid::regclass::text FROM pg_index i \
         WHERE i.indexrelid = to_regclass(format('%I.%I', current_schema(), $1::text)) \
         AND ($2 OR NOT i.indisvalid) \
         AND NOT EXISTS (SELECT 1 FROM pg_stat_progress_create_index p \
                         WHERE p.index_relid = i.indexrelid)",
    )
    .bind(name)
    .bind(valid_too)
    .persistent(false)
    .fetch_optional(&mut *conn)
    .await
    .map_err(failed("checking an index"))?;
    if let Some((qualified,)) = invalid {
        let concurrently = if how == DropHow::Concurrently {
            "CONCURRENTLY "
        } else {
            ""
        };
        conn.execute(format!("DROP INDEX {concurrently}IF EXISTS {qualified}").as_str())
            .await
            .map_err(failed("dropping an index"))?;
    }
    Ok(())
}

/// sqlx's bookkeeping table, as sqlx creates it.
#[cfg(feature = "postgres")]
const MIGRATIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations ( \
    version BIGINT PRIMARY KEY, \
    description TEXT NOT NULL, \
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(), \
    success BOOLEAN NOT NULL, \
    checksum BYTEA NOT NULL, \
    execution_time BIGINT NOT NULL)";

/// The advisory-lock key for `name`: for a database's `public` schema, the key sqlx's runner
/// takes for the database, so that its runs and ours exclude each other.
#[cfg(feature = "postgres")]
fn lock_key(database: &str) -> i64 {
    const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    0x3d32_ad9e * i64::from(CRC.checksum(database.as_bytes()))
}

/// The lock held: what this run repaired and applied, and every applied version with its
/// checksum afterwards.
#[cfg(feature = "sqlite")]
async fn apply_pending(
    embedded: &'static Migrator,
    conn: &mut sqlx::SqliteConnection,
) -> Result<(Vec<Repaired>, Vec<i64>, BTreeMap<i64, Vec<u8>>), StoreError> {
    use sqlx::Executor as _;
    conn.ensure_migrations_table().await?;
    if let Some(version) = conn.dirty_version().await? {
        return Err(MigrateError::Dirty(version).into());
    }
    let mut repaired = Vec::new();
    let mut applied = Vec::new();
    loop {
        let in_database = applied_checksums(conn).await?;
        match next_step(embedded, &in_database, landed::REPAIRS_SQLITE)? {
            None => return Ok((repaired, applied, in_database)),
            Some(Step::Repair(migration, repair)) => {
                conn.execute(repair.sql)
                    .await
                    .map_err(|e| MigrateError::ExecuteMigration(e, migration.version))?;
                sqlx::query("UPDATE _sqlx_migrations SET checksum = ?1 WHERE version = ?2")
                    .bind(&*migration.checksum)
                    .bind(migration.version)
                    .execute(&mut *conn)
                    .await
                    .map_err(|e| StoreError::from_sqlx("recording a repaired migration", e))?;
                tracing::warn!(
                    version = migration.version,
                    text_of = repair.commit(),
                    "repaired a migration the database had applied in an earlier text"
                );
                repaired.push(Repaired {
                    version: migration.version,
                    text_of: repair.commit(),
                });
            }
            Some(Step::Apply(migration)) => match conn.apply(migration).await {
                Ok(_) => applied.push(migration.version),
                Err(err) => {
                    // Applied by a concurrent run meanwhile (SQLite): the same migration, so
                    // move on. Anything else is this migration's own failure.
                    let now = applied_checksums(conn).await?;
                    if now.get(&migration.version).map(Vec::as_slice) != Some(&*migration.checksum)
                    {
                        return Err(err.into());
                    }
                }
            },
        }
    }
}

/// How long a SQLite run waits for another instance's run to let go of the write lock.
#[cfg(feature = "sqlite")]
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// [`run`] on a connection of `pool`, a SQLite database.
///
/// On SQLite the whole run is one `BEGIN IMMEDIATE` transaction (each migration a savepoint
/// in it): the write lock, held from the first statement, is what serialises concurrent runs
/// there, as the advisory lock does on Postgres. Without it, runs read the applied versions
/// side by side and then raced to apply the same migration. So on SQLite a run is all or
/// nothing: a failing migration rolls back the ones this run applied before it too, and the
/// next run applies them again.
#[cfg(feature = "sqlite")]
pub(crate) async fn sqlite(pool: &sqlx::SqlitePool) -> Result<MigrationReport, StoreError> {
    use super::db::Driver as _;
    // Several processes opening one new SQLite file at once collide on switching it to WAL
    // (a connection's first statements), and SQLite answers "database is locked" at once,
    // without its busy handler. Opening again shortly after succeeds: the switch is done.
    let mut attempts = 0;
    let mut conn = loop {
        match pool.acquire().await {
            Ok(conn) => break conn,
            Err(err) if attempts < 50 && is_locked(&err) => {
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Err(err) => return Err(StoreError::from_sqlx("migrating the database", err)),
        }
    };
    // Another instance may hold the lock for as long as its whole run takes, longer
    // than the busy timeout on a large database: wait for it, within a bound.
    let waiting_since = std::time::Instant::now();
    let mut tx = loop {
        match sqlx::Sqlite::begin_writer(&mut conn).await {
            Ok(tx) => break tx,
            Err(err) if is_locked(&err) && waiting_since.elapsed() < LOCK_WAIT => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(err) => {
                return Err(StoreError::from_sqlx(
                    "locking the database for migrations",
                    err,
                ));
            }
        }
    };
    let report = run(sqlx::Sqlite::migrator(), &mut tx).await?;
    tx.commit()
        .await
        .map_err(|e| StoreError::from_sqlx("committing the migrations", e))?;
    Ok(report)
}

/// "Busy" or "locked": two connections collided (see [`super::is_contention`]).
#[cfg(feature = "sqlite")]
fn is_locked(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if super::is_contention(db.code().as_deref()))
}

/// The successfully applied versions and their checksums.
#[cfg(feature = "sqlite")]
async fn applied_checksums(
    conn: &mut sqlx::SqliteConnection,
) -> Result<BTreeMap<i64, Vec<u8>>, StoreError> {
    Ok(conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| (m.version, m.checksum.into_owned()))
        .collect())
}
