//! Per-request limits: admission (concurrency + bounded queue), the epoch ticker behind the
//! guest deadline and cancellation, and the request body cap.

use crate::access::Access;
use crate::cors::Cors;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits the server applies to each request.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body accepted (bytes); larger ones get 413 without being read.
    pub max_body_bytes: u64,
    /// Cap on a store's linear memory (bytes).
    pub max_memory_bytes: usize,
    /// Wall-clock deadline of a guest call; a guest still running then is trapped.
    pub timeout: Duration,
    /// Requests running at once.
    pub max_concurrent: usize,
    /// Requests waiting for a slot; beyond that, 503.
    pub max_queue: usize,
    /// `Retry-After` seconds sent with 503.
    pub retry_after_secs: u64,
    /// Longest wait for the client: for the whole request head, and between two pieces of the
    /// body. A stalled head closes the connection; a stalled body gets 408.
    pub read_timeout: Duration,
    /// After SIGTERM/SIGINT, how long the requests already admitted may take to finish before
    /// they are stopped.
    pub shutdown_grace: Duration,
    /// API keys and per-client limits, decided from the request head ([`Access`]).
    pub access: Arc<Access>,
    /// Browser origins allowed to call the API ([`Cors`]).
    pub cors: Cors,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 25 * 1024 * 1024,
            max_memory_bytes: 1024 * 1024 * 1024,
            timeout: Duration::from_secs(300),
            max_concurrent: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            max_queue: 32,
            retry_after_secs: 5,
            read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            access: Arc::default(),
            cors: Cors::default(),
        }
    }
}

/// Concurrency limit with a bounded queue.
pub struct Admission {
    slots: Arc<Semaphore>,
    /// Requests admitted (running or waiting).
    admitted: Arc<AtomicUsize>,
    capacity: usize,
    max_concurrent: usize,
}

/// An admitted request; waits for a slot with [`Ticket::wait`]. Leaves the queue when dropped.
pub struct Ticket {
    slots: Arc<Semaphore>,
    admitted: Arc<AtomicUsize>,
}

/// A running request's slot (and its place in the admission count).
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    _ticket: Ticket,
}

impl Admission {
    pub fn new(max_concurrent: usize, max_queue: usize) -> Self {
        let max_concurrent = max_concurrent.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max_concurrent)),
            admitted: Arc::new(AtomicUsize::new(0)),
            capacity: max_concurrent + max_queue,
            max_concurrent,
        }
    }

    /// Admits a request unless `max_concurrent + max_queue` are already admitted.
    pub fn try_admit(&self) -> Option<Ticket> {
        self.admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.capacity).then_some(n + 1))
            .ok()
            .map(|_| Ticket { slots: self.slots.clone(), admitted: self.admitted.clone() })
    }

    /// Requests admitted right now (running + waiting).
    pub fn admitted(&self) -> usize {
        self.admitted.load(Ordering::Acquire)
    }

    /// Requests holding a slot right now (running).
    pub fn running(&self) -> usize {
        self.max_concurrent.saturating_sub(self.slots.available_permits())
    }
}

impl Ticket {
    /// Waits for a free slot.
    pub async fn wait(self) -> Slot {
        let permit = self.slots.clone().acquire_owned().await.expect("the semaphore is never closed");
        Slot { _permit: permit, _ticket: self }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Epoch period: the deadline is counted in these ticks.
pub const EPOCH_TICK: Duration = Duration::from_millis(100);

/// Starts the thread that advances the engine's epoch every [`EPOCH_TICK`]; it stops when the
/// engine is dropped.
pub fn start_epoch_ticker(engine: &wasmtime::Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        })
        .expect("cannot start the epoch thread");
}

/// Why a guest was stopped before it finished (the error its call ends with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancelled {
    /// The client closed the connection before the response (logged as status 499).
    ClientGone,
    /// The shutdown's grace period ran out, or a second signal came.
    Shutdown,
}

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cancelled::ClientGone => "cancelled: the client closed the connection",
            Cancelled::Shutdown => "cancelled: the server is shutting down",
        })
    }
}

impl std::error::Error for Cancelled {}

impl Cancelled {
    /// The `reason` label of `whisper_cancelled_total`.
    pub fn label(self) -> &'static str {
        match self {
            Cancelled::ClientGone => "client_gone",
            Cancelled::Shutdown => "shutdown",
        }
    }
}

/// A flag that stops a running guest at its next epoch tick (see [`watch_deadline`]).
#[derive(Clone, Debug, Default)]
pub struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// Checks the store at every epoch tick ([`EPOCH_TICK`]): the guest traps with
/// [`Trap::Interrupt`](wasmtime::Trap::Interrupt) once `timeout` has passed, and ends with
/// [`Cancelled`] as soon as `client` (its client went away) or `shutdown` (the server stops) is
/// set. A wasi-nn compute is not interrupted: the check happens when the guest next runs, so a
/// cancelled request stops within one compute and one tick.
pub fn watch_deadline<T>(store: &mut wasmtime::Store<T>, timeout: Duration, client: CancelFlag, shutdown: CancelFlag) {
    let deadline = Instant::now() + timeout;
    store.epoch_deadline_callback(move |_| {
        if client.is_cancelled() {
            return Err(wasmtime::Error::new(Cancelled::ClientGone));
        }
        if shutdown.is_cancelled() {
            return Err(wasmtime::Error::new(Cancelled::Shutdown));
        }
        if Instant::now() >= deadline {
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        Ok(wasmtime::UpdateDeadline::Continue(1))
    });
    store.set_epoch_deadline(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn admits_up_to_slots_plus_queue() {
        let admission = Admission::new(1, 1);
        let running = admission.try_admit().unwrap().wait().await;
        let queued = admission.try_admit().unwrap();
        assert!(admission.try_admit().is_none());
        drop(running);
        let _running = queued.wait().await;
        assert_eq!(admission.admitted(), 1);
        assert_eq!(admission.running(), 1);
        assert!(admission.try_admit().is_some());
    }
}
