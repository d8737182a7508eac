//! Durable state in one SQLite file. All SQL of the program lives under this module: one
//! function per query, named for what it does, each taking the [`Tx`] handle (`tx.rs`: the
//! storage boundary and why it is a handle).
//!
//! Concurrency model:
//! - **One writer thread** owns the only read-write connection. Callers hand it a closure with
//!   [`Store::write`]; the thread runs every closure that is waiting in one transaction (group
//!   commit), each inside its own savepoint so a failing closure leaves no trace while the others
//!   still commit, and answers every caller only after `COMMIT` has returned — so an answered
//!   write is on disk (WAL, `synchronous=FULL` by default).
//! - **Readers** use a small pool of read-only connections on blocking threads
//!   ([`Store::read`]); in WAL mode they never wait behind the writer.
//! - **A checkpointer thread** moves the WAL into the database file in the background (PASSIVE,
//!   never blocking the writer), and asks the writer to restart the log when it grows long
//!   (see `wal`), so the writer's commits never pay for checkpoints and the log stays bounded.
//!
//! The store never imports hyper or anything of the HTTP layer, and never runs on a tokio worker
//! thread: async callers only await channels.

pub mod agents;
pub mod backup;
pub mod completions;
pub mod deliveries;
pub mod events;
pub mod idempotency;
pub mod intents;
pub mod keys;
pub mod leases;
pub mod live_bytes;
pub mod media;
pub mod migrations;
pub mod notify;
pub mod retention;
pub mod schemas;
pub mod service_accounts;
pub mod stats;
pub mod subscriptions;
pub mod threads;
pub mod timers;
mod tx;
pub mod users;
pub mod wal;
pub mod workflows;
mod writer;

pub use tx::Tx;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use self::notify::{Hub, Subscription, Topic};

use crate::metrics::StoreMetrics;

use crate::Error;

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: the WAL is fsynced at every commit; an answered write survives power
    /// loss.
    Full,
    /// `synchronous=NORMAL`: survives a crash of the process, may lose the last commits on power
    /// loss. Faster on slow disks.
    Normal,
}

/// Settings for [`Store::open`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub durability: Durability,
    /// Read connections kept open for reuse.
    pub readers: usize,
    /// The most closures one transaction commits together.
    pub max_batch: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Full,
            readers: 16,
            max_batch: 512,
        }
    }
}

/// A closure run by the writer thread inside the batch transaction. It returns whether it
/// succeeded (so the writer knows whether to roll back its savepoint) and what to do once the
/// batch's fate is known. Called with `None` when the batch failed before the job could run.
type Job = Box<dyn FnOnce(Option<&Tx>) -> (bool, Completion) + Send>;
/// Called by the writer thread after `COMMIT` (or after the batch failed) with the outcome.
type Completion = Box<dyn FnOnce(Result<(), Error>) + Send>;

/// A handle on the database. Cheap to clone; all clones share the writer and the readers.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Jobs for the writer thread; the writer thread holds the receiver and exits when every
    /// sender is gone (see [`Store::shutdown`]).
    jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// Idle read connections; a reader takes one on a blocking thread and puts it back.
    readers: Mutex<Vec<Connection>>,
    max_readers: usize,
    /// One permit per pooled read connection: async readers wait here for a connection instead
    /// of each opening a fresh one (which costs a schema parse) on a blocking thread of its own.
    read_slots: Arc<tokio::sync::Semaphore>,
    durability: Durability,
    /// Who waits for which commits; the writer thread publishes to it after `COMMIT`. Streams
    /// and long polls subscribe here instead of polling SQLite.
    hub: Arc<Hub>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    checkpointer: Mutex<Option<wal::Checkpointer>>,
    /// Held shared by online backups while they read (see `backup`), tried by the writer.
    snapshot_gate: wal::SnapshotGate,
    /// Recorded by the writer thread (batch sizes, commit times, events written).
    metrics: Arc<StoreMetrics>,
}

impl Store {
    /// Opens (creating if needed) the database at `path`, brings its schema up to date and starts
    /// the writer and checkpointer threads.
    pub fn open(path: &Path, opts: StoreOptions) -> Result<Store, Error> {
        make_private(path)?;
        let mut conn = open_connection(path, opts.durability, false)?;
        migrations::migrate(&mut conn)?;
        // The writer commits; the checkpointer checkpoints.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        let hub = Arc::new(Hub::default());
        let (job_tx, job_rx) = mpsc::channel::<Job>(opts.max_batch * 8);

        let max_batch = opts.max_batch.max(1);
        let checkpointer = wal::Checkpointer::start(path, opts.durability)?;
        let publisher = hub.clone();
        let restart_due = checkpointer.restart_due.clone();
        let snapshot_gate = wal::SnapshotGate::default();
        let gate = snapshot_gate.clone();
        let metrics = Arc::new(StoreMetrics::default());
        let recorder = metrics.clone();
        let writer = std::thread::Builder::new()
            .name("axme-writer".into())
            .spawn(move || {
                writer::run(
                    conn,
                    job_rx,
                    publisher,
                    max_batch,
                    restart_due,
                    gate,
                    recorder,
                )
            })
            .map_err(|e| Error::internal(format!("spawn writer: {e}")))?;

        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                jobs: Mutex::new(Some(job_tx)),
                readers: Mutex::new(Vec::new()),
                max_readers: opts.readers.max(1),
                read_slots: Arc::new(tokio::sync::Semaphore::new(opts.readers.max(1))),
                durability: opts.durability,
                hub,
                writer: Mutex::new(Some(writer)),
                checkpointer: Mutex::new(Some(checkpointer)),
                snapshot_gate,
                metrics,
            }),
        })
    }

    /// Runs `f` in the writer's next transaction and returns its result once committed.
    /// If `f` fails, everything it wrote is rolled back and its error returned; other callers'
    /// writes in the same batch are unaffected.
    pub async fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T, Error> + Send + 'static,
    {
        self.write_settled(f, |_| {}).await
    }

    /// Like [`write`](Self::write); `settled` runs on the writer thread with the outcome once the
    /// transaction committed or failed, before any later write runs: where in-memory state
    /// changed together with the rows is kept or undone (the clock's re-anchoring).
    pub async fn write_settled<T, F, S>(&self, f: F, settled: S) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T, Error> + Send + 'static,
        S: FnOnce(&Result<T, Error>) + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let res = conn.map(f);
            let ok = matches!(res, Some(Ok(_)));
            let done: Completion = Box::new(move |committed| {
                let out = match (committed, res) {
                    (_, Some(Err(e))) => Err(e),
                    (Err(e), _) => Err(e),
                    (Ok(()), Some(Ok(v))) => Ok(v),
                    (Ok(()), None) => Err(Error::internal("write was not run")),
                };
                settled(&out);
                let _ = tx.send(out);
            });
            (ok, done)
        });
        let sender = self
            .inner
            .jobs
            .lock()
            .map_err(|_| Error::internal("writer lock poisoned"))?
            .clone()
            .ok_or_else(|| Error::Unavailable {
                reason: "the server is shutting down".into(),
            })?;
        sender.send(job).await.map_err(|_| Error::Unavailable {
            reason: "the server is shutting down".into(),
        })?;
        rx.await
            .map_err(|_| Error::internal("the writer dropped a write (it panicked)"))?
    }

    /// Runs `f` on a read connection on a blocking thread.
    pub async fn read<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Tx) -> Result<T, Error> + Send + 'static,
    {
        let slot = self
            .inner
            .read_slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::internal("the read slots are closed"))?;
        let store = self.clone();
        let out = tokio::task::spawn_blocking(move || store.read_blocking(f)).await;
        // Released only once the blocking thread is free again, so reads never need more
        // blocking threads than there are pooled connections.
        drop(slot);
        out.map_err(|e| Error::internal(format!("reader task: {e}")))?
    }

    /// Runs `f` on a read connection on the current thread (for blocking contexts only).
    pub fn read_blocking<T>(&self, f: impl FnOnce(&Tx) -> Result<T, Error>) -> Result<T, Error> {
        let pooled = self.inner.readers.lock().ok().and_then(|mut p| p.pop());
        let conn = match pooled {
            Some(c) => c,
            None => open_connection(&self.inner.path, self.inner.durability, true)?,
        };
        let out = f(&Tx::sqlite(&conn));
        if let Ok(mut pool) = self.inner.readers.lock() {
            if pool.len() < self.inner.max_readers {
                pool.push(conn);
            }
        }
        out
    }

    /// Subscribes to the commits of a topic. Subscribe *before* reading the database, so that
    /// nothing committed between the read and the wait goes unnoticed.
    pub fn subscribe(&self, topic: Topic) -> Subscription {
        self.inner.hub.subscribe(topic)
    }

    /// Resolves after a commit that wrote or changed deliveries (the push scheduler's wake-up).
    pub async fn deliveries_changed(&self) {
        self.inner.hub.deliveries_changed().await;
    }

    /// How many commits have been published to subscribers so far (see `Hub::generation`).
    pub fn commit_generation(&self) -> u64 {
        self.inner.hub.generation()
    }

    /// What the writer thread recorded about its transactions.
    pub fn metrics(&self) -> &StoreMetrics {
        &self.inner.metrics
    }

    /// How many subscriptions (streams, long polls) are waiting for commits.
    pub fn subscriptions(&self) -> usize {
        self.inner.hub.subscriptions()
    }

    /// Stops taking writes, lets the writer finish what is queued, stops the checkpointer and
    /// checkpoints the WAL into the database file. Idempotent.
    pub fn shutdown(&self) {
        if let Ok(mut jobs) = self.inner.jobs.lock() {
            jobs.take();
        }
        if let Some(t) = self.inner.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = t.join();
        }
        if let Some(mut c) = self
            .inner
            .checkpointer
            .lock()
            .ok()
            .and_then(|mut c| c.take())
        {
            c.stop();
        }
        if let Ok(mut pool) = self.inner.readers.lock() {
            pool.clear();
        }
        match open_connection(&self.inner.path, self.inner.durability, false) {
            Ok(conn) => {
                if let Err(e) = wal::checkpoint(&conn, "TRUNCATE") {
                    tracing::warn!(error = %e, "final checkpoint failed");
                }
            }
            Err(e) => tracing::warn!(error = %e, "final checkpoint: cannot open database"),
        }
    }
}

/// The page cache of the writer connection (and of any connection not opened read-only), KiB.
const WRITER_CACHE_KIB: i64 = 16_000;
/// The page cache of each pooled read connection, KiB.
const READER_CACHE_KIB: i64 = 2_000;

/// Opens one connection with the PRAGMAs every connection of the program uses.
/// Creates the database file readable and writable by its owner only (0600), or narrows an
/// existing one and its `-wal` and `-shm` to that: they hold webhook secrets and every payload.
/// SQLite creates the `-wal` and `-shm` files with the database file's mode.
fn make_private(path: &Path) -> Result<(), Error> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let shown = path.to_string_lossy();
    if shown.starts_with("file:") || shown == ":memory:" {
        return Ok(());
    }
    let fail = |what: &Path, e: std::io::Error| {
        Error::internal(format!("make {} private (0600): {e}", what.display()))
    };
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(fail(path, e)),
    }
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{shown}{suffix}"));
        match std::fs::metadata(&file) {
            Ok(m) if m.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                    .map_err(|e| fail(&file, e))?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(&file, e)),
        }
    }
    Ok(())
}

/// Creates `path` new, readable and writable by its owner only (a backup copy).
pub fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

pub fn open_connection(
    path: &Path,
    durability: Durability,
    read_only: bool,
) -> Result<Connection, Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags)?;
    apply_pragmas(&conn, durability)?;
    if read_only {
        conn.pragma_update(None, "query_only", true)?;
        // Readers are many (16 by default) and read mostly what was just written, which the
        // operating system's page cache holds anyway: a small page cache each keeps the
        // server's memory bounded by a few tens of MiB however large the database grows.
        conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    }
    Ok(conn)
}

/// The PRAGMAs of every connection: WAL, the chosen durability, a busy timeout, foreign keys.
pub fn apply_pragmas(conn: &Connection, durability: Durability) -> Result<(), Error> {
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::internal(format!(
            "could not switch the database to WAL mode (got {mode})"
        )));
    }
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // After the log restarts, trim its file back to 64 MiB.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    Ok(())
}
