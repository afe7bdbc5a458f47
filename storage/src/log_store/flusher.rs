//! Group commit: one thread per store turns many `sync` requests into one fsync.
//!
//! # Why this is correct
//!
//! 1. A request is queued only after the write it covers has returned (`sync` is called
//!    after `append`/`put_meta`/... returned, by contract).
//! 2. The thread drains the queue *before* it starts the flush, so every write covered by a
//!    drained request happened before the flush started.
//! 3. sled's `flush` makes "all previous writes" durable (one fsync for the whole page
//!    cache, i.e. every tree and every group), and after a crash sled recovers a consistent
//!    prefix of its log with atomic batches.
//!
//! Hence when a callback receives `Ok`, its writes and everything written before them
//! survive a crash, and nothing written later can survive without them (no holes).
//! Requests that arrive while a flush runs simply wait for the next one, so under load one
//! fsync serves many requests from many groups.
//!
//! On a flush error the store is poisoned: the failing batch gets the error, every later
//! request and operation gets [`Error::Poisoned`]. Retrying is wrong: after a failed fsync
//! the kernel may have dropped the dirty pages, and a later "successful" fsync would then
//! acknowledge writes that are gone.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::log_store::{LogStoreStats, SyncCallback};

/// State shared by the store's callers and its flusher thread.
#[derive(Default)]
pub(crate) struct Shared {
    poisoned: AtomicBool,
    /// The first failure, for the log and for operators; later failures are consequences.
    cause: Mutex<Option<String>>,
    /// Test hook: make the next flush fail as if the disk had returned EIO.
    fail_next_flush: AtomicBool,
    flushes: AtomicU64,
    synced_requests: AtomicU64,
    failed_requests: AtomicU64,
    flushed_bytes: AtomicU64,
}

impl Shared {
    pub(crate) fn is_poisoned(&self) -> bool {
        self.poisoned.load(Ordering::Acquire)
    }

    /// Fails with [`Error::Poisoned`] once the store has failed.
    pub(crate) fn check(&self) -> Result<()> {
        if self.is_poisoned() {
            Err(Error::Poisoned)
        } else {
            Ok(())
        }
    }

    /// Marks the store failed. Idempotent; only the first cause is kept.
    pub(crate) fn poison(&self, cause: &dyn std::fmt::Display) {
        let mut first = self.cause.lock().unwrap_or_else(|e| e.into_inner());
        if first.is_none() {
            tracing::error!(%cause, "log store poisoned: refusing all further work");
            *first = Some(cause.to_string());
        }
        self.poisoned.store(true, Ordering::Release);
    }

    pub(crate) fn cause(&self) -> Option<String> {
        self.cause.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn inject_flush_failure(&self) {
        self.fail_next_flush.store(true, Ordering::Release);
    }

    pub(crate) fn stats(&self) -> LogStoreStats {
        LogStoreStats {
            flushes: self.flushes.load(Ordering::Relaxed),
            synced_requests: self.synced_requests.load(Ordering::Relaxed),
            failed_requests: self.failed_requests.load(Ordering::Relaxed),
            flushed_bytes: self.flushed_bytes.load(Ordering::Relaxed),
            poisoned: self.is_poisoned(),
        }
    }
}

/// The flush operation the thread performs: one fsync covering every earlier write, returning
/// the number of bytes written. An error must be fail-stop for the backend.
pub(crate) type FlushFn = Box<dyn FnMut() -> std::result::Result<usize, sled::Error> + Send>;

/// Handle to the flusher thread. Dropping it completes every queued request (with a final
/// flush) and joins the thread, so a dropped store holds no more references to the database.
pub(crate) struct Flusher {
    tx: Option<Sender<SyncCallback>>,
    handle: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl Flusher {
    /// Starts the thread. `linger` is an optional pause after the first request arrives, to let
    /// more requests join the batch; zero (the default) flushes at once.
    pub(crate) fn start(shared: Arc<Shared>, flush: FlushFn, linger: Duration) -> Result<Self> {
        let (tx, rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name("strato-wal-flush".into())
            .spawn(move || run(rx, flush, &thread_shared, linger))?;
        Ok(Self {
            tx: Some(tx),
            handle: Some(handle),
            shared,
        })
    }

    /// Queues a request; completes it at once with an error if the store is failed or closed.
    pub(crate) fn submit(&self, done: SyncCallback) {
        if self.shared.is_poisoned() {
            complete(&self.shared, done, Err(Error::Poisoned));
            return;
        }
        match &self.tx {
            Some(tx) => {
                if let Err(mpsc::SendError(done)) = tx.send(done) {
                    // The thread is gone (it only exits when the sender is dropped, so this
                    // means it panicked): nobody can make this write durable.
                    complete(&self.shared, done, Err(Error::Closed));
                }
            }
            None => complete(&self.shared, done, Err(Error::Closed)),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Closing the channel lets the thread drain, flush and complete what is queued, then exit.
        drop(self.tx.take());
        if let Some(handle) = self.handle.take() {
            if handle.join().is_err() {
                tracing::error!("log store flusher thread panicked");
            }
        }
    }
}

fn run(rx: Receiver<SyncCallback>, mut flush: FlushFn, shared: &Shared, linger: Duration) {
    let mut batch: Vec<SyncCallback> = Vec::new();
    // `recv` fails only once every sender is gone and the queue is empty: clean shutdown.
    while let Ok(first) = rx.recv() {
        batch.push(first);
        batch.extend(rx.try_iter());
        if !linger.is_zero() {
            std::thread::sleep(linger);
            batch.extend(rx.try_iter());
        }

        let result = flush_once(&mut flush, shared);
        for done in batch.drain(..) {
            let res = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(e.clone()),
            };
            complete(shared, done, res.map_err(FlushError::into_error));
        }
    }
}

/// Cloneable form of a flush failure, so every callback of a failed batch gets the cause.
#[derive(Clone)]
enum FlushError {
    Sled(sled::Error),
    Poisoned,
}

impl FlushError {
    fn into_error(self) -> Error {
        match self {
            FlushError::Sled(e) => Error::Sled(e),
            FlushError::Poisoned => Error::Poisoned,
        }
    }
}

fn flush_once(flush: &mut FlushFn, shared: &Shared) -> std::result::Result<(), FlushError> {
    if shared.is_poisoned() {
        // A write failed since the last flush: its state is unknown, so nothing queued can be
        // acknowledged, even if this flush would succeed.
        return Err(FlushError::Poisoned);
    }
    let res = if shared.fail_next_flush.swap(false, Ordering::AcqRel) {
        Err(sled::Error::Io(std::io::Error::other(
            "injected flush failure",
        )))
    } else {
        flush()
    };
    match res {
        Ok(bytes) => {
            shared.flushes.fetch_add(1, Ordering::Relaxed);
            shared
                .flushed_bytes
                .fetch_add(bytes as u64, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => {
            shared.poison(&format_args!("flush failed: {e}"));
            Err(FlushError::Sled(e))
        }
    }
}

/// Runs one callback, counting it. A panicking callback must not take the flusher thread
/// down (every other request would then hang or fail), so the panic is caught and logged.
fn complete(shared: &Shared, done: SyncCallback, res: Result<()>) {
    let counter = if res.is_ok() {
        &shared.synced_requests
    } else {
        &shared.failed_requests
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if catch_unwind(AssertUnwindSafe(move || done(res))).is_err() {
        tracing::error!("a log store sync callback panicked");
    }
}
