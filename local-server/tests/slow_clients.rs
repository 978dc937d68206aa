//! Connection hygiene of the local server over real TCP: a client that trickles header
//! bytes, sends nothing, or idles on a kept-alive connection is closed within
//! `HTTP_HEADER_TIMEOUT_SECS`; hundreds of such sockets do not stop the API answering; and
//! past `HTTP_MAX_CONNECTIONS` new connections wait instead of failing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::support;

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::{Duration, Instant},
};

use support::Server;

fn server(dir: &std::path::Path, extra: &[(&str, &str)]) -> Server {
    let mut env = vec![
        ("DATABASE_URL", "sqlite://./slow.db"),
        ("HTTP_HEADER_TIMEOUT_SECS", "1"),
        ("RATE_LIMIT_PER_SECOND", "0"),
    ];
    env.extend_from_slice(extra);
    Server::start(dir, &env, &[])
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// How long until the server closes `stream` (reads return end of file or reset),
/// discarding anything it sends first.
fn closed_after(mut stream: TcpStream) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[test]
fn trickled_headers_silence_and_idle_keep_alive_are_all_closed_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[]);

    // Half a request line and one header, then nothing more.
    let mut partial = connect(server.port);
    partial
        .write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n")
        .unwrap();
    // Nothing at all.
    let silent = connect(server.port);
    // One full request, answered, then an idle keep-alive connection.
    let mut idle = connect(server.port);
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    for (what, stream) in [
        ("partial headers", partial),
        ("silent", silent),
        ("idle", idle),
    ] {
        let after = closed_after(stream);
        assert!(after < Duration::from_secs(4), "{what}: open for {after:?}");
    }

    // A client trickling one header byte every 300 ms never completes its headers within the
    // timeout, however steadily it sends.
    let mut trickle = connect(server.port);
    let started = Instant::now();
    let mut closed = false;
    for byte in b"GET /health HTTP/1.1\r\nx-slow: ".iter().cycle().take(40) {
        if trickle.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    if !closed {
        assert!(closed_after(trickle) + started.elapsed() < Duration::from_secs(8));
    }
}

#[test]
fn hundreds_of_slow_sockets_do_not_stop_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[("HTTP_HEADER_TIMEOUT_SECS", "5")]);
    let mut slow = Vec::new();
    for _ in 0..300 {
        let mut stream = connect(server.port);
        stream.write_all(b"GET /health HTTP/1.1\r\n").unwrap();
        slow.push(stream);
    }
    for _ in 0..5 {
        let started = Instant::now();
        let health = server.get("/health");
        assert_eq!(health.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    drop(slow);
}

#[test]
fn past_the_connection_cap_new_connections_wait_and_are_then_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(dir.path(), &[("HTTP_MAX_CONNECTIONS", "4")]);
    // Four silent connections take every slot until the header timeout closes them.
    let holders: Vec<TcpStream> = (0..4).map(|_| connect(server.port)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let health = server.get("/health");
    let waited = started.elapsed();
    assert_eq!(health.status, 200);
    assert!(
        waited >= Duration::from_millis(500),
        "served at once ({waited:?}): the cap did not hold"
    );
    assert!(waited < Duration::from_secs(4), "{waited:?}");
    drop(holders);
    // And the process is still serving.
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn a_trickled_body_holds_no_slot_and_gets_408_when_its_time_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let server = server(
        dir.path(),
        &[("HTTP_BODY_TIMEOUT_SECS", "1"), ("CONCURRENCY_LIMIT", "2")],
    );
    // Twice the concurrency limit in stalled bodies: headers complete, body never does.
    let stalled: Vec<TcpStream> = (0..4)
        .map(|_| {
            let mut stream = connect(server.port);
            stream
                .write_all(
                    b"POST /v1/auth/logout HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
                )
                .unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // They hold no concurrency slot: a request that needs one is served at once.
    let version = server.get("/version");
    assert_eq!(version.status, 200, "{}", version.body);
    for mut stream in stalled {
        let started = Instant::now();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 408"),
            "not a 408 after {:?}: {answer}",
            started.elapsed()
        );
        assert!(answer.contains("application/problem+json"), "{answer}");
        assert!(answer.contains("request_timeout"), "{answer}");
    }
}
