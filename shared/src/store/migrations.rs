//! Applying the embedded migrations, the same way for both backends and every caller
//! (`local-server migrate` and `serve`, the `migrate` function on deploy, tests).
//!
//! Migrations are expand-only (see `migrations/`): a release's code runs on the schema of
//! the next one. So a database that already has migrations this build does not know — a
//! newer release migrated it, and this one is an instance still running or a deploy being
//! rolled back — is not an error: they are left in place and reported. A migration whose
//! text changed after it was applied still is an error (sqlx compares checksums).

use std::borrow::Cow;

use sqlx::{
    Database, Pool,
    migrate::{Migrate, Migrator},
};

use super::StoreError;

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

/// Applies `embedded`'s pending migrations on one connection of `pool`, each in its own
/// transaction (a failing one leaves no trace), under the database's migration lock, so
/// concurrent runs apply each migration once and each reports what it applied itself.
pub(crate) async fn run<DB>(
    embedded: &'static Migrator,
    pool: &Pool<DB>,
) -> Result<MigrationReport, StoreError>
where
    DB: Database,
    DB::Connection: Migrate,
{
    // `Migrator`'s fields are public (sqlx marks them semver-exempt; Cargo.lock pins the
    // version) and it has no constructor from an embedded set with other settings. The lock
    // is taken here, around the reads of what was applied, rather than by the migrator.
    let migrator = Migrator {
        migrations: Cow::Borrowed(&embedded.migrations),
        ignore_missing: true,
        locking: false,
        no_tx: false,
    };
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| StoreError::from_sqlx("migrating the database", e))?;
    let conn: &mut DB::Connection = &mut conn;
    conn.lock().await?;
    let outcome = locked(&migrator, conn).await;
    // Released on failure too: the connection goes back to the pool.
    let unlocked = conn.unlock().await;
    let (before, after) = outcome?;
    unlocked?;
    let known: Vec<i64> = embedded.iter().map(|m| m.version).collect();
    Ok(MigrationReport {
        applied: after
            .iter()
            .copied()
            .filter(|v| !before.contains(v))
            .collect(),
        unknown: after
            .iter()
            .copied()
            .filter(|v| !known.contains(v))
            .collect(),
        version: after.iter().copied().max(),
    })
}

/// The applied versions before and after running `migrator`, the lock held.
async fn locked<C: Migrate>(
    migrator: &Migrator,
    conn: &mut C,
) -> Result<(Vec<i64>, Vec<i64>), StoreError> {
    conn.ensure_migrations_table().await?;
    let before = applied_versions(conn).await?;
    // `run_direct` is `run` on a connection already in hand; `run` itself cannot be called
    // from the store's `async_trait` methods ("`Acquire` is not general enough").
    migrator.run_direct(conn).await?;
    let after = applied_versions(conn).await?;
    Ok((before, after))
}

async fn applied_versions<C: Migrate>(conn: &mut C) -> Result<Vec<i64>, StoreError> {
    let mut versions: Vec<i64> = conn
        .list_applied_migrations()
        .await?
        .into_iter()
        .map(|m| m.version)
        .collect();
    versions.sort_unstable();
    Ok(versions)
}
