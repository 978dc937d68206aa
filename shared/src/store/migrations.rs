//! Applying the embedded migrations, the same way for both backends and every caller
//! (`local-server migrate` and `serve`, the `migrate` function on deploy, tests).
//!
//! Migrations are expand-only (see `migrations/`): a release's code runs on the schema of
//! the next one. So a database that already has migrations this build does not know — a
//! newer release migrated it, and this one is an instance still running or a deploy being
//! rolled back — is not an error: they are left in place and reported. A migration whose
//! text changed after it was applied still is an error (sqlx compares checksums).

use std::collections::BTreeMap;

use sqlx::{
    Pool,
    migrate::{Migrate, MigrateError, Migrator},
};

use super::{StoreError, db::Driver};
use crate::config::Backend;

/// What one migration run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrationReport {
    /// The versions this run applied, in order.
    pub applied: Vec<i64>,
    /// Versions the database has that this build does not know (a newer release's).
    pub unknown: Vec<i64>,
    /// The highest version in the database afterwards.
    pub version: Option<i64>,
}

impl std::fmt::Display for MigrationReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let versions = |v: &[i64]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
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

/// Applies `embedded`'s pending migrations on `conn`, each in its own transaction or, when
/// `conn` is in one already (SQLite's whole run, see [`run_on_pool`]), savepoint: a failing
/// one leaves no trace. Reports what this run applied itself.
///
/// Concurrent runs (instances starting together) apply each migration once. On Postgres
/// the database's migration lock (an advisory lock) serialises them; on SQLite the write
/// lock of [`run_on_pool`]'s transaction does. Should a migration still fail because another
/// run applied that same one meanwhile, the run moves on to the next one.
pub(crate) async fn run<C: Migrate>(
    embedded: &'static Migrator,
    conn: &mut C,
) -> Result<MigrationReport, StoreError> {
    conn.lock().await?;
    let outcome = apply_pending(embedded, conn).await;
    // Released on failure too: the connection goes back to the pool.
    let unlocked = conn.unlock().await;
    let (applied, after) = outcome?;
    unlocked?;
    let known: Vec<i64> = embedded.iter().map(|m| m.version).collect();
    Ok(MigrationReport {
        applied,
        unknown: after
            .keys()
            .copied()
            .filter(|v| !known.contains(v))
            .collect(),
        version: after.keys().copied().max(),
    })
}

/// The lock held: what this run applied, and every applied version with its checksum
/// afterwards.
async fn apply_pending<C: Migrate>(
    embedded: &'static Migrator,
    conn: &mut C,
) -> Result<(Vec<i64>, BTreeMap<i64, Vec<u8>>), StoreError> {
    conn.ensure_migrations_table().await?;
    if let Some(version) = conn.dirty_version().await? {
        return Err(MigrateError::Dirty(version).into());
    }
    let mut in_database = applied_checksums(conn).await?;
    let mut applied = Vec::new();
    for migration in embedded.iter() {
        if migration.migration_type.is_down_migration() {
            continue;
        }
        if let Some(checksum) = in_database.get(&migration.version) {
            // A migration edited after it was applied: the schema is not what this build
            // expects, whatever the versions say.
            if *checksum != *migration.checksum {
                return Err(MigrateError::VersionMismatch(migration.version).into());
            }
            continue;
        }
        match conn.apply(migration).await {
            Ok(_) => {
                applied.push(migration.version);
                in_database.insert(migration.version, migration.checksum.to_vec());
            }
            Err(err) => {
                // Applied by a concurrent run meanwhile (SQLite): the same migration, so
                // move on. Anything else is this migration's own failure.
                in_database = applied_checksums(conn).await?;
                if in_database.get(&migration.version).map(Vec::as_slice)
                    != Some(&*migration.checksum)
                {
                    return Err(err.into());
                }
            }
        }
    }
    Ok((applied, applied_checksums(conn).await?))
}

/// How long a SQLite run waits for another instance's run to let go of the write lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// [`run`] on a connection of `pool`.
///
/// On SQLite the whole run is one `BEGIN IMMEDIATE` transaction (each migration a savepoint
/// in it): the write lock, held from the first statement, is what serialises concurrent runs
/// there, as the advisory lock does on Postgres. Without it, runs read the applied versions
/// side by side and then raced to apply the same migration. So on SQLite a run is all or
/// nothing: a failing migration rolls back the ones this run applied before it too, and the
/// next run applies them again. Postgres keeps one transaction per migration under its lock.
pub(crate) async fn run_on_pool<D: Driver>(pool: &Pool<D>) -> Result<MigrationReport, StoreError> {
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
    match D::KIND {
        Backend::Postgres => run(D::migrator(), &mut *conn).await,
        Backend::Sqlite => {
            // Another instance may hold the lock for as long as its whole run takes, longer
            // than the busy timeout on a large database: wait for it, within a bound.
            let waiting_since = std::time::Instant::now();
            let mut tx = loop {
                match D::begin_writer(&mut conn).await {
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
            let report = run(D::migrator(), &mut *tx).await?;
            tx.commit()
                .await
                .map_err(|e| StoreError::from_sqlx("committing the migrations", e))?;
            Ok(report)
        }
    }
}

/// "Busy" or "locked": two connections collided (see [`super::is_contention`]).
fn is_locked(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if super::is_contention(db.code().as_deref()))
}

/// The successfully applied versions and their checksums.
async fn applied_checksums<C: Migrate>(conn: &mut C) -> Result<BTreeMap<i64, Vec<u8>>, StoreError> {
    Ok(conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| (m.version, m.checksum.into_owned()))
        .collect())
}
