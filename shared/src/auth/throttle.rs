//! A memory of the per-client credential limit's refusals, so a flood from one client is
//! refused without a database write per request.
//!
//! The database decides the limit (a GCRA row per client, shared by every instance). When
//! it refuses a client it also says until when: a refused request changes nothing in the
//! row, and only an allowed one moves it later, so no instance can be allowed anything for
//! that client before then. Remembering "refused until T" and answering 429 locally until
//! T is therefore exactly what the database would answer, one round trip cheaper.
//!
//! Measured with `bench/run --only login_flood` (one client, c=128, unknown emails, limit
//! on): task reads during the flood went from 80 to the numbers in the README's table, and
//! SQLite stopped taking a write per flood request.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Above this many remembered clients, the ones whose refusal has passed are forgotten;
/// if all are still refused, the oldest memory is dropped whole (the database still
/// decides; only a round trip is lost).
const REMEMBER_AT_MOST: usize = 10_000;

#[derive(Debug, Default)]
pub struct KnownRefusals {
    until: Mutex<HashMap<String, Instant>>,
}

impl KnownRefusals {
    /// How long `client` is still refused, if the database said so earlier.
    pub fn refused_for(&self, client: &str, now: Instant) -> Option<Duration> {
        let until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        until
            .get(client)
            .and_then(|until| until.checked_duration_since(now))
            .filter(|wait| !wait.is_zero())
    }

    /// Records that the database refused `client` for `wait` from `now`.
    pub fn remember(&self, client: &str, now: Instant, wait: Duration) {
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        if until.len() >= REMEMBER_AT_MOST && !until.contains_key(client) {
            until.retain(|_, at| *at > now);
            if until.len() >= REMEMBER_AT_MOST {
                until.clear();
            }
        }
        until.insert(client.to_owned(), now + wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_remembered_until_it_passes_and_per_client() {
        let refusals = KnownRefusals::default();
        let t0 = Instant::now();
        assert_eq!(refusals.refused_for("192.0.2.1", t0), None);
        refusals.remember("192.0.2.1", t0, Duration::from_secs(2));
        assert_eq!(
            refusals.refused_for("192.0.2.1", t0 + Duration::from_millis(500)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(refusals.refused_for("192.0.2.2", t0), None);
        assert_eq!(
            refusals.refused_for("192.0.2.1", t0 + Duration::from_secs(2)),
            None
        );
    }

    #[test]
    fn memory_stays_bounded_under_many_clients() {
        let refusals = KnownRefusals::default();
        let t0 = Instant::now();
        for i in 0..REMEMBER_AT_MOST {
            refusals.remember(&format!("c{i}"), t0, Duration::from_secs(1));
        }
        // Later, every earlier refusal has passed: they are forgotten to make room.
        let later = t0 + Duration::from_secs(2);
        refusals.remember("new", later, Duration::from_secs(1));
        assert_eq!(refusals.until.lock().unwrap().len(), 1);
        // All still refused: the memory is dropped rather than grown.
        for i in 0..REMEMBER_AT_MOST {
            refusals.remember(&format!("d{i}"), later, Duration::from_secs(60));
        }
        assert!(refusals.until.lock().unwrap().len() <= REMEMBER_AT_MOST);
    }
}
