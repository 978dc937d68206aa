//! What a piece of work logs, captured for a test: [`capture_logs`].
//!
//! One subscriber serves the whole test binary, installed as the global default the first
//! time a test captures, and it routes each line to the capture it belongs to. A subscriber
//! scoped to the test's thread (`with_default`) could not be relied on: `tracing` caches each
//! call site's interest the first time it is hit, and when a test on another thread hit a
//! call site first, while the scoped subscriber was the only one registered, that thread's
//! "no subscriber" was cached as "never" for every thread — the capture then missed the line
//! at random (`user registered`, `admin_route_refused`). Here every call site's interest is
//! "sometimes" and the decision is made per line, so the order in which tests run cannot
//! change what a capture sees.
//!
//! A line belongs to a capture when it is emitted on the capture's thread while the capture
//! runs, or inside a span that was opened there, as its current span or its explicit parent
//! (so lines from `spawn_blocking` threads or other workers count too, when the work carries
//! its span along). Lines of no capture are dropped before anything is formatted, and while
//! no capture runs nothing is recorded at all.

use std::{
    cell::RefCell,
    future::Future,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicUsize, Ordering},
    },
};

use tracing::{Event, Metadata, Subscriber, span};
use tracing_subscriber::{
    fmt::MakeWriter,
    layer::{Context, Layer, SubscriberExt as _},
    registry::LookupSpan,
};

/// Runs `work` on a fresh current-thread runtime and returns its output with every line it
/// logged, at every level, formatted as the plain `fmt` layer does (no colours).
pub fn capture_logs<T>(work: impl Future<Output = T>) -> (T, String) {
    install();
    let buffer = Buffer::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("building a runtime");
    let output = {
        let _active = Active::enter(buffer.clone());
        runtime.block_on(work)
    };
    // The runtime's leftover tasks are dropped here, still without the capture: their
    // lines, if any, belong to nobody.
    drop(runtime);
    let logs = String::from_utf8_lossy(&buffer.0.lock().expect("log buffer")).into_owned();
    (output, logs)
}

/// One capture's bytes.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// How many captures are running, on any thread: with none, nothing is recorded at all.
static RUNNING: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The capture running on this thread, if any.
    static ACTIVE: RefCell<Option<Buffer>> = const { RefCell::new(None) };
    /// Where the events being formatted on this thread go, innermost last: [`Route`] pushes
    /// an event's capture before the `fmt` layer formats it, and the `fmt` layer pops it when
    /// it asks [`ToCapture`] for a writer, after formatting. An event logged while another is
    /// being formatted (from a field's `Debug`) is pushed and popped in between.
    static TARGETS: RefCell<Vec<Option<Buffer>>> = const { RefCell::new(Vec::new()) };
}

/// This thread's capture for as long as it lives.
struct Active;

impl Active {
    fn enter(buffer: Buffer) -> Self {
        ACTIVE.with(|a| *a.borrow_mut() = Some(buffer));
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        ACTIVE.with(|a| a.borrow_mut().take());
    }
}

/// Installs the binary's one subscriber (once), and makes sure no call site keeps an
/// interest cached before it existed.
fn install() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let subscriber = tracing_subscriber::registry().with(Route).with(
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(ToCapture),
        );
        // A test binary that set a global subscriber of its own keeps it; its captures then
        // see nothing, which their assertions report.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    // Call sites registered before the subscriber was installed, by tests on other
    // threads, cached the interest of "no subscriber" ("never"): recompute them all.
    tracing::callsite::rebuild_interest_cache();
}

/// The capture a span was opened in (a span extension).
#[derive(Clone)]
struct Owner(Buffer);

/// Marks each span with its capture, and decides per line whether anyone wants it.
struct Route;

/// This thread's capture, or else the one `span` (or its nearest marked ancestor, which
/// marked it) was opened in.
fn owner<S>(span: Option<tracing_subscriber::registry::SpanRef<'_, S>>) -> Option<Buffer>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    ACTIVE
        .with(|a| a.borrow().clone())
        .or_else(|| span.and_then(|span| span.extensions().get::<Owner>().map(|o| o.0.clone())))
}

impl<S> Layer<S> for Route
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn register_callsite(&self, _: &'static Metadata<'static>) -> tracing::subscriber::Interest {
        tracing::subscriber::Interest::sometimes()
    }

    /// Spans and events are recorded while any capture runs; which capture an event goes to
    /// (if any) is decided by [`Layer::event_enabled`], which sees its explicit parent.
    fn enabled(&self, _: &Metadata<'_>, _: Context<'_, S>) -> bool {
        RUNNING.load(Ordering::SeqCst) > 0
    }

    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        owner(ctx.event_span(event)).is_some()
    }

    fn on_new_span(&self, attrs: &span::Attributes<'_>, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        // The thread's capture, or else the parent's (explicit or contextual).
        let parent = match attrs.parent() {
            Some(parent) => ctx.span(parent),
            None if attrs.is_contextual() => ctx.lookup_current(),
            None => None,
        };
        if let Some(owner) = owner(parent) {
            span.extensions_mut().insert(Owner(owner));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let owner = owner(ctx.event_span(event));
        TARGETS.with(|t| t.borrow_mut().push(owner));
    }
}

/// The `fmt` layer's writer: the capture [`Route`] chose for the event being written.
struct ToCapture;

enum Writer {
    Capture(Buffer),
    Nowhere,
}

impl std::io::Write for Writer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        match self {
            Writer::Capture(buffer) => buffer.write(bytes),
            Writer::Nowhere => Ok(bytes.len()),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for ToCapture {
    type Writer = Writer;

    fn make_writer(&'a self) -> Writer {
        TARGETS
            .with(|t| t.borrow_mut().pop().flatten())
            .map_or(Writer::Nowhere, Writer::Capture)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn emit(what: &str) {
        tracing::info!(what, "probe line");
    }

    /// The old capture's failure, made to happen every time: another thread hits a call
    /// site first, while the capture runs, then the capture hits it.
    #[test]
    fn a_call_site_first_hit_on_another_thread_is_still_captured() {
        let ((), logs) = capture_logs(async {
            let (done, hit) = mpsc::channel();
            std::thread::spawn(move || {
                emit("elsewhere");
                done.send(()).unwrap();
            });
            hit.recv().unwrap();
            emit("here");
        });
        assert!(logs.contains("probe line what=\"here\""), "{logs}");
        assert!(!logs.contains("elsewhere"), "another thread's line: {logs}");
    }

    /// A span carried to a blocking thread takes its lines into the capture.
    #[test]
    fn lines_of_a_span_carried_to_another_thread_are_captured() {
        let ((), logs) = capture_logs(async {
            let span = tracing::info_span!("request", id = 7);
            tokio::task::spawn_blocking(move || span.in_scope(|| emit("blocking")))
                .await
                .unwrap();
        });
        assert!(logs.contains("probe line what=\"blocking\""), "{logs}");
        assert!(logs.contains("request{id=7}"), "{logs}");
    }

    /// A line whose explicit parent was opened in the capture belongs to it, wherever it is
    /// logged.
    #[test]
    fn a_line_with_an_explicit_parent_of_the_capture_is_captured() {
        let ((), logs) = capture_logs(async {
            let span = tracing::info_span!("job");
            std::thread::spawn(move || tracing::info!(parent: &span, "explicit parent line"))
                .join()
                .unwrap();
        });
        assert!(logs.contains("explicit parent line"), "{logs}");
    }

    /// Captures running at once on several threads each see their own lines only.
    #[test]
    fn concurrent_captures_see_only_their_own_lines() {
        let threads: Vec<_> = (0..4)
            .map(|n| {
                std::thread::spawn(move || {
                    capture_logs(async move {
                        for _ in 0..50 {
                            emit(&format!("capture-{n}"));
                            tokio::task::yield_now().await;
                        }
                    })
                    .1
                })
            })
            .collect();
        for (n, thread) in threads.into_iter().enumerate() {
            let logs = thread.join().unwrap();
            assert_eq!(
                logs.matches(&format!("capture-{n}\"")).count(),
                50,
                "{logs}"
            );
            assert_eq!(logs.lines().count(), 50, "{logs}");
        }
    }
}
