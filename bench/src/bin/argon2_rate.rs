//! The floor for a login storm: raw Argon2id hashes per second with the server's default
//! parameters (19 MiB, t=2, p=1, peppered), one thread per core, nothing else running.
//!
//! `argon2-rate SECONDS` prints `{"threads": N, "hashes": H, "seconds": S, "per_second": R}`.
//! `argon2-rate --count N` computes exactly N hashes on one thread and prints nothing: what
//! `bench/profile --login` counts instructions of.

#![allow(clippy::print_stdout)] // a measuring tool: its output is the point

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use argon2::{Algorithm, Argon2, Params, Version};
use shared::config::Argon2Config;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count = match args.as_slice() {
        [flag, n] if flag == "--count" => match n.parse::<u64>() {
            Ok(n) => Some(n),
            Err(_) => {
                eprintln!("error: --count takes a number, got {n:?}");
                std::process::exit(2);
            }
        },
        _ => None,
    };
    let seconds: f64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let threads = std::thread::available_parallelism().map_or(2, usize::from);
    let pepper = b"bench-pepper-0123456789abcdef0123456789";
    let params = match Params::new(
        Argon2Config::MIN_MEMORY_KIB,
        Argon2Config::MIN_ITERATIONS,
        1,
        Some(32),
    ) {
        Ok(params) => params,
        Err(err) => {
            eprintln!("error: Argon2 parameters: {err}");
            std::process::exit(1);
        }
    };
    if let Some(count) = count {
        hash_times(&params, pepper, count);
        return;
    }
    let hashes = AtomicU64::new(0);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let Ok(argon2) = Argon2::new_with_secret(
                    pepper,
                    Algorithm::Argon2id,
                    Version::V0x13,
                    params.clone(),
                ) else {
                    return;
                };
                let mut out = [0u8; 32];
                while Instant::now() < deadline {
                    if argon2
                        .hash_password_into(
                            b"correct horse battery staple",
                            b"saltsaltsaltsalt",
                            &mut out,
                        )
                        .is_ok()
                    {
                        hashes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let elapsed = started.elapsed().as_secs_f64();
    let total = hashes.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "threads": threads,
            "hashes": total,
            "seconds": elapsed,
            "per_second": total as f64 / elapsed,
        })
    );
}

fn hash_times(params: &Params, pepper: &[u8], count: u64) {
    let Ok(argon2) =
        Argon2::new_with_secret(pepper, Algorithm::Argon2id, Version::V0x13, params.clone())
    else {
        eprintln!("error: Argon2 parameters");
        std::process::exit(1);
    };
    let mut out = [0u8; 32];
    for _ in 0..count {
        if let Err(err) = argon2.hash_password_into(
            b"correct horse battery staple",
            b"saltsaltsaltsalt",
            &mut out,
        ) {
            eprintln!("error: hashing: {err}");
            std::process::exit(1);
        }
    }
}
