//! One connection per request: the first statement of a request takes a pooled connection,
//! and the request keeps it (in a task-local slot) for its later statements, instead of
//! giving it back to the pool and taking one again for each. Each give-back costs a round
//! trip (sqlx pings a connection as it returns to the pool) and each take may wait behind
//! other requests.
//!
//! The HTTP stack runs every request inside [`scope`]; outside one (background work, tests
//! calling the store directly) statements take and give back as before. A request gives its
//! connection back early, with [`release`], before it waits on anything but the database
//! (password hashing, a fixed answer time), so that a queue of such requests does not hold
//! the pool. Only the Postgres store holds connections: SQLite's are files in this process,
//! and its writes queue for one writer connection that must not be held by a request.
//!
//! A transaction that fails is rolled back on its connection with the request's next
//! statement, or when the request gives the connection back: a handler that, after a store
//! error, waits for anything else calls [`release`] first, so no row stays locked meanwhile.
//!
//! A request's statements run one after another: two at once (a `join!`) would take a second
//! connection for the second, and with a pool of one wait for it until the acquire timeout.

use std::{
    any::Any,
    cell::RefCell,
    future::Future,
    sync::atomic::{AtomicU64, Ordering},
};

/// Which store a held connection belongs to (tests run several stores in one process).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreId(u64);

impl StoreId {
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        Self(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

struct Held {
    store: StoreId,
    conn: Box<dyn Any + Send>,
}

#[derive(Default)]
struct Slot {
    held: Option<Held>,
    /// A statement failed in a way that may have broken its connection.
    doubted: bool,
}

tokio::task_local! {
    static SLOT: RefCell<Slot>;
}

/// Runs `request` with a slot for one held connection, given back when it ends.
pub async fn scope<F: Future>(request: F) -> F::Output {
    SLOT.scope(RefCell::default(), request).await
}

/// The connection this request holds for `store`, if any.
pub(super) fn take<C: Send + 'static>(store: StoreId) -> Option<C> {
    SLOT.try_with(|slot| {
        let mut slot = slot.borrow_mut();
        match slot.held.take() {
            Some(held) if held.store == store => held.conn.downcast::<C>().ok().map(|c| *c),
            other => {
                slot.held = other;
                None
            }
        }
    })
    .ok()
    .flatten()
}

/// Keeps `conn` for the rest of the request. Outside a request, when the slot already
/// holds one, or when its last statement failed in a way that may have broken it ([`doubt`]),
/// `conn` is handed back to go to the pool.
pub(super) fn keep<C: Send + 'static>(store: StoreId, conn: C) -> Option<C> {
    let mut conn = Some(conn);
    let _ = SLOT.try_with(|slot| {
        let mut slot = slot.borrow_mut();
        if std::mem::take(&mut slot.doubted) || slot.held.is_some() {
            return;
        }
        slot.held = conn.take().map(|conn| Held {
            store,
            conn: Box::new(conn),
        });
    });
    conn
}

/// Says that the connection in use failed in a way that may have broken it, so that it is
/// not kept ([`keep`]).
pub(super) fn doubt() {
    let _ = SLOT.try_with(|slot| slot.borrow_mut().doubted = true);
}

/// Gives the connection this request holds back to its pool: call before waiting on
/// anything but the database.
pub fn release() {
    let held = SLOT
        .try_with(|slot| slot.borrow_mut().held.take())
        .ok()
        .flatten();
    drop(held);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_is_kept_only_inside_a_request_and_only_for_its_store() {
        let (a, b) = (StoreId::next(), StoreId::next());
        // Outside a request nothing is kept.
        assert_eq!(keep(a, 1_u8), Some(1));
        assert_eq!(take::<u8>(a), None);
        scope(async {
            assert_eq!(keep(a, 1_u8), None);
            // One slot: a second connection goes back.
            assert_eq!(keep(a, 2_u8), Some(2));
            // Another store's statement does not get it, nor disturb it.
            assert_eq!(take::<u8>(b), None);
            assert_eq!(take::<u8>(a), Some(1));
            assert_eq!(take::<u8>(a), None);
            assert_eq!(keep(a, 3_u8), None);
            release();
            assert_eq!(take::<u8>(a), None);
            // A connection in doubt goes back; the next one is kept again.
            doubt();
            assert_eq!(keep(a, 4_u8), Some(4));
            assert_eq!(keep(a, 5_u8), None);
            assert_eq!(take::<u8>(a), Some(5));
        })
        .await;
    }

    /// On Postgres a request's statements (reads, a write, a transaction) run on one
    /// connection, which the request keeps until it ends and gives back before it hashes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_request_keeps_one_connection_for_all_its_statements_on_postgres() {
        use crate::{
            config::Backend,
            store::{postgres::PgStore, sql::Sql},
            testing::{Backend as TestBackend, TestDb, test_config},
        };
        if !TestBackend::Postgres.available() {
            return;
        }
        let db = TestDb::new(TestBackend::Postgres).await;
        if crate::testing::behind_proxy() {
            eprintln!("skipped: behind a proxy, a backend pid names the proxy's connection");
            return;
        }
        // One connection at most, given up for after 2 s: a second connection wanted while
        // the request holds the first would time out.
        let config = test_config(
            &db.url,
            &[
                ("DB_MAX_CONNECTIONS", "1"),
                ("DB_ACQUIRE_TIMEOUT_MS", "2000"),
            ],
        );
        let store = PgStore::connect_lazy(&config.db).unwrap();
        let hasher =
            crate::auth::PasswordHasher::new(&config.argon2, &config.password_pepper).unwrap();
        let pid = Sql::raw(Backend::Postgres, "SELECT pg_backend_pid()", Vec::new());
        let idle_soon = |idle: usize| {
            let pool = store.pool().clone();
            async move {
                for _ in 0..100 {
                    if pool.num_idle() == idle {
                        return true;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                false
            }
        };
        scope(async {
            let (first,): (i32,) = store.read_one(&pid, "reading").await.unwrap();
            // Kept: not idle in the pool between statements.
            assert!(!idle_soon(1).await, "the connection went back to the pool");
            let mut conn = store.conn().await.unwrap();
            let (write,): (i32,) = conn.one(&pid, "on the write connection").await.unwrap();
            let mut tx = conn.begin_write("a transaction").await.unwrap();
            let (in_tx,): (i32,) = tx.one(&pid, "in a transaction").await.unwrap();
            tx.commit("committing").await.unwrap();
            drop(conn);
            let (again,): (i32,) = store.read_one(&pid, "reading again").await.unwrap();
            assert_eq!([write, in_tx, again], [first; 3]);
            assert_eq!(store.pool().size(), 1);
            // Hashing gives it back first.
            hasher.hash("a long enough password").await.unwrap();
            assert!(idle_soon(1).await, "held while hashing");
            let (after,): (i32,) = store.read_one(&pid, "after hashing").await.unwrap();
            assert_eq!(after, first);
            // A connection that breaks under a statement is not kept: the request's next
            // statement (a write, never retried) runs on a new one.
            let mut admin = crate::testing::pg_connect(&db.url).await;
            sqlx::query("SELECT pg_terminate_backend($1)")
                .bind(after)
                .execute(&mut admin)
                .await
                .unwrap();
            let broken = store
                .conn()
                .await
                .unwrap()
                .run(&pid, "on a killed connection")
                .await;
            assert!(broken.is_err());
            let (fresh,): (i32,) = store
                .conn()
                .await
                .unwrap()
                .one(&pid, "on a new one")
                .await
                .unwrap();
            assert_ne!(fresh, after);
        })
        .await;
        assert!(idle_soon(1).await, "not given back when the request ended");
    }
}
