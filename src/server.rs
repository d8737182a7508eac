//! Assembling and running the server: open the store, make sure there is an admin key, accept
//! connections until the shutdown future resolves, then shut down gracefully — stop accepting,
//! let open requests finish (up to the grace period), drain the writer and checkpoint the WAL.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServeConfig;
use crate::delivery::{self, PushSettings};
use crate::http::connections::{self, Connections};
use crate::http::sse::Gauges;
use crate::http::{self, AppState, Limits};
use crate::metrics::Metrics;
use crate::runtime;
use crate::runtime::internal::{Handler, HandlerOptions, Registry};
use crate::runtime::observe::{self, Events};
use crate::service::auth::{self, Bootstrap, Keys};
use crate::service::{idempotency, retention};
use crate::store::{Store, StoreOptions};
use crate::Error;

/// A server with its store open, ready to serve.
pub struct Server {
    state: Arc<AppState>,
    push: PushSettings,
    /// Tells streams and long polls that the server is shutting down.
    shutdown_tx: watch::Sender<bool>,
    grace: Duration,
    /// In-process handlers (the internal binding), built-in agents included.
    registry: Registry,
    /// How long terminal intents are kept (`None`: forever).
    retention: Option<Duration>,
    /// The admin key generated for a new database, to be shown to the operator once.
    pub generated_key: Option<String>,
    /// Where the generated admin key was written instead (`--api-key-file`).
    pub generated_key_file: Option<std::path::PathBuf>,
}

impl Server {
    /// Opens the database (creating and migrating it as needed) and bootstraps the admin key.
    pub async fn open(config: &ServeConfig) -> Result<Server, Error> {
        let path = config.data.clone();
        let opts = StoreOptions {
            durability: config.durability,
            ..StoreOptions::default()
        };
        let store = tokio::task::spawn_blocking(move || Store::open(&path, opts))
            .await
            .map_err(|e| Error::internal(format!("open task: {e}")))??;
        let (given, write_to) = admin_key_source(config)?;
        let generated_key = match auth::bootstrap(&store, given.as_deref()).await? {
            Bootstrap::Generated(k) => Some(k),
            Bootstrap::Stored | Bootstrap::Unchanged => None,
        };
        let (generated_key, generated_key_file) = match (generated_key, write_to) {
            (Some(key), Some(path)) => {
                write_key_file(&path, &key)?;
                (None, Some(path))
            }
            (key, _) => (key, None),
        };
        let keys = Keys::load(&store).await?;
        let nofile = raise_open_file_limit();
        let max_connections = connections::cap(config.max_connections, nofile);
        tracing::info!(
            open_file_limit = nofile.unwrap_or(0),
            max_connections,
            "connection cap"
        );
        let (shutdown_tx, shutdown) = watch::channel(false);
        let push = config.push_settings();
        crate::service::outbox::set_max_fanout(config.max_fanout_per_event);
        let mut registry = Registry::default();
        let builtin = HandlerOptions::default();
        registry.insert(
            runtime::builtin::DELAY,
            Arc::new(runtime::builtin::delay),
            builtin,
        )?;
        registry.insert(
            runtime::builtin::APPROVAL,
            Arc::new(runtime::builtin::approval),
            builtin,
        )?;
        let notify_agent = ureq::AgentBuilder::new()
            .timeout_connect(push.connect_timeout)
            .timeout(push.timeout)
            .redirects(0)
            .user_agent(concat!("axme/", env!("CARGO_PKG_VERSION")))
            .resolver(crate::webhook::target::GuardedResolver {
                deny_private: push.deny_private,
            })
            .build();
        registry.insert(
            runtime::builtin::NOTIFY,
            Arc::new(runtime::builtin::notifier(notify_agent)),
            builtin,
        )?;
        // One sender's notifications to slow URLs hold at most a quarter of the calls.
        registry.share_per_sender(runtime::builtin::NOTIFY, builtin.concurrency.div_ceil(4));
        Ok(Server {
            state: Arc::new(AppState {
                store,
                keys: Arc::new(keys),
                limits: Limits {
                    request_timeout: Duration::from_secs(config.request_timeout_seconds.max(1)),
                    max_in_flight_per_key: config.max_in_flight_per_key.max(1),
                    max_subscriptions_per_owner: config.max_subscriptions_per_owner,
                    max_live_bytes_per_key: config.max_live_bytes_per_key,
                    ..Limits::for_payload(config.max_payload_bytes)
                },
                streams: config.stream_settings(),
                shared_reads: Default::default(),
                shared_events: Default::default(),
                push_policy: config.push_settings().policy,
                gauges: Gauges::default(),
                metrics: Arc::new(Metrics::new(http::metrics::route_names())),
                metrics_public: config.metrics_public,
                shutdown,
                rate: crate::http::limits::RateLimiter::new(config.rate_limit),
                per_key_streams: Default::default(),
                per_key_waiters: Default::default(),
                per_key_in_flight: Default::default(),
                connections: Connections::new(max_connections),
                public_url: match &config.public_url {
                    Some(u) => std::sync::OnceLock::from(u.clone()),
                    None => std::sync::OnceLock::new(),
                },
                media: config.media_settings(),
            }),
            shutdown_tx,
            push,
            grace: Duration::from_secs(config.shutdown_grace_seconds),
            registry,
            retention: config.retention.0,
            generated_key,
            generated_key_file,
        })
    }

    /// Registers an in-process handler for `address` (the internal binding): intents to it are
    /// handed to `handler` in this process. Returns the normalized address. Call before `run`.
    pub fn handle(&mut self, address: &str, handler: impl Handler) -> Result<String, Error> {
        self.handle_with(address, handler, HandlerOptions::default())
    }

    /// [`Server::handle`] with explicit concurrency and lease.
    pub fn handle_with(
        &mut self,
        address: &str,
        handler: impl Handler,
        opts: HandlerOptions,
    ) -> Result<String, Error> {
        self.registry.insert(address, Arc::new(handler), opts)
    }

    /// The addresses with an in-process handler, built-in agents included.
    pub fn internal_addresses(&self) -> Vec<String> {
        self.registry.addresses()
    }

    /// Follows lifecycle events in-process (the internal binding for observers).
    pub async fn events(
        &self,
        from: observe::From,
        filter: crate::store::events::FirehoseFilter,
    ) -> Result<Events, Error> {
        Events::subscribe(self.state.store.clone(), from, filter).await
    }

    /// The store, for programs that embed the server.
    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Serves connections from `listener` until `shutdown` resolves, then shuts down gracefully.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), Error> {
        if let Ok(addr) = listener.local_addr() {
            // Without --public-url, links name the address the server is bound to.
            let _ = self.state.public_url.set(format!("http://{addr}"));
        }
        let graceful = GracefulShutdown::new();
        let maintenance = tokio::spawn(maintenance(
            self.state.store.clone(),
            self.state.media.dir.clone(),
        ));
        let timers = tokio::spawn(runtime::timers(
            self.state.store.clone(),
            self.state.shutdown.clone(),
        ));
        register_internal(&self.state.store, &self.registry).await?;
        let internal = tokio::spawn(runtime::internal::run(
            self.state.store.clone(),
            self.registry.clone(),
            self.state.shutdown.clone(),
        ));
        let pusher = tokio::spawn(delivery::run(
            self.state.store.clone(),
            self.push.clone(),
            self.state.metrics.clone(),
            self.state.shutdown.clone(),
        ));
        let retention = self.retention.map(|keep| {
            tokio::spawn(retention::run(
                self.state.store.clone(),
                keep,
                self.state.metrics.clone(),
                self.state.shutdown.clone(),
            ))
        });
        tokio::pin!(shutdown);
        let mut refused = AcceptErrors::default();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        refused.recovered();
                        http::connections::serve(&self.state, stream, &graceful);
                    }
                    // Out of file descriptors and the like: the connections already open go on;
                    // the listener waits, backing off, and the log says so once in a while.
                    Err(e) => tokio::time::sleep(refused.failed(&e)).await,
                },
                _ = &mut shutdown => break,
            }
        }
        drop(listener);
        tracing::info!(
            "shutting down: no new connections; ending streams, waiting for open requests"
        );
        let _ = self.shutdown_tx.send(true);
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(self.grace) => {
                tracing::warn!(grace = ?self.grace, "open connections did not finish in time; closing them");
            }
        }
        maintenance.abort();
        let _ = timers.await;
        let _ = internal.await;
        if let Some(r) = retention {
            let _ = r.await;
        }
        // The pusher saw the shutdown flag: it waits for the attempts in flight and records them.
        if tokio::time::timeout(self.grace, pusher).await.is_err() {
            tracing::warn!("pushes in flight did not finish in time; they stay pending and are sent again on the next start");
        }
        let store = self.state.store.clone();
        tokio::task::spawn_blocking(move || store.shutdown())
            .await
            .map_err(|e| Error::internal(format!("shutdown task: {e}")))?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Records every in-process handler's address in the agent registry as an `internal` agent,
/// so listings show where its intents go.
async fn register_internal(store: &Store, registry: &Registry) -> Result<(), Error> {
    use crate::service::agents::{self, DeliveryMode, RegisterAgent};
    for address in registry.addresses() {
        store
            .write(move |c| {
                let current = crate::store::agents::get(c, &address)?;
                if current.is_some_and(|a| a.delivery_mode == DeliveryMode::Internal) {
                    return Ok(());
                }
                agents::register(
                    c,
                    RegisterAgent {
                        address,
                        mode: DeliveryMode::Internal,
                        display_name: None,
                        webhook_url: None,
                        webhook_secret: None,
                        lease_seconds: None,
                        max_delivery_attempts: None,
                    },
                )
                .map(|_| ())
            })
            .await?;
    }
    Ok(())
}

/// Housekeeping every hour: drop idempotency records past their retention.
async fn maintenance(store: Store, media_dir: std::path::PathBuf) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        // Files of uploads that retention removed, and partial files of ended uploads.
        let (s, dir) = (store.clone(), media_dir.clone());
        let swept = tokio::task::spawn_blocking(move || {
            crate::service::media::collect(&dir, |id| {
                s.read_blocking(|c| crate::store::media::known(c, id))
            })
        })
        .await;
        match swept {
            Ok(Ok(n)) if n > 0 => tracing::info!(files = n, "removed media files no upload needs"),
            Ok(Err(e)) => tracing::warn!(error = %e, "sweeping the media directory failed"),
            _ => {}
        }
        loop {
            match idempotency::prune(&store).await {
                Ok(n) if n > 0 => tokio::task::yield_now().await,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "pruning idempotency records failed");
                    break;
                }
            }
        }
    }
}

/// The admin key given (`--api-key`, or the contents of an existing `--api-key-file`), and the
/// key file to write a generated key to when there is none yet.
fn admin_key_source(
    config: &ServeConfig,
) -> Result<(Option<String>, Option<std::path::PathBuf>), Error> {
    let Some(path) = &config.api_key_file else {
        return Ok((config.api_key.clone(), None));
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let key = text.trim();
            if key.is_empty() {
                return Err(Error::invalid("--api-key-file", "the file is empty"));
            }
            Ok((Some(key.to_string()), None))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, Some(path.clone()))),
        Err(e) => Err(Error::invalid(
            "--api-key-file",
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

/// Writes a generated admin key to a new file readable by its owner only.
fn write_key_file(path: &std::path::Path, key: &str) -> Result<(), Error> {
    use std::io::Write;
    let fail = |e: std::io::Error| {
        Error::internal(format!(
            "cannot write the generated admin key to {}: {e}; remove the new database and \
             start again",
            path.display()
        ))
    };
    let mut file = crate::store::create_private(path).map_err(fail)?;
    file.write_all(format!("{key}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(fail)
}

/// Raises the soft open-file limit to the hard one (a systemd unit without `LimitNOFILE=` starts
/// at 1024) and returns the limit in force, which the connection cap stays below.
fn raise_open_file_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .ok()
                .map(|(soft, _)| soft)
        }
    }
}

/// Failed accepts in a row: how long to wait before the next, and a log line at most every
/// [`AcceptErrors::LOG_EVERY`] (a full descriptor table fails every accept until one closes).
#[derive(Default)]
struct AcceptErrors {
    in_a_row: u32,
    unlogged: u64,
    logged_at: Option<std::time::Instant>,
}

impl AcceptErrors {
    const LOG_EVERY: Duration = Duration::from_secs(10);

    /// Notes a failure; returns the back-off: 10 ms, doubling up to 500 ms.
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        self.in_a_row = self.in_a_row.saturating_add(1);
        self.unlogged += 1;
        if self
            .logged_at
            .is_none_or(|t| t.elapsed() >= Self::LOG_EVERY)
        {
            tracing::warn!(
                error = %e,
                failures = self.unlogged,
                "accept failed; open connections go on, new ones wait"
            );
            self.unlogged = 0;
            self.logged_at = Some(std::time::Instant::now());
        }
        Duration::from_millis(10 << self.in_a_row.min(6)).min(Duration::from_millis(500))
    }

    fn recovered(&mut self) {
        self.in_a_row = 0;
    }
}
