//! Assembling and running the server: open the store, make sure there is an admin key, accept
//! connections until the shutdown future resolves, then shut down gracefully — stop accepting,
//! let open requests finish (up to the grace period), drain the writer and checkpoint the WAL.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ServeConfig;
use crate::delivery::{self, PushSettings};
use crate::http::sse::Gauges;
use crate::http::{self, AppState, Limits};
use crate::metrics::Metrics;
use crate::runtime;
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
    /// How long terminal intents are kept (`None`: forever).
    retention: Option<Duration>,
    /// The admin key generated for a new database, to be shown to the operator once.
    pub generated_key: Option<String>,
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
        let generated_key = match auth::bootstrap(&store, config.api_key.as_deref()).await? {
            Bootstrap::Generated(k) => Some(k),
            Bootstrap::Stored | Bootstrap::Unchanged => None,
        };
        let keys = Keys::load(&store).await?;
        let (shutdown_tx, shutdown) = watch::channel(false);
        Ok(Server {
            state: Arc::new(AppState {
                store,
                keys,
                limits: Limits::for_payload(config.max_payload_bytes),
                streams: config.stream_settings(),
                shared_reads: Default::default(),
                shared_events: Default::default(),
                push_policy: config.push_settings().policy,
                gauges: Gauges::default(),
                metrics: Arc::new(Metrics::new(http::metrics::route_names())),
                metrics_public: config.metrics_public,
                shutdown,
            }),
            shutdown_tx,
            push: config.push_settings(),
            grace: Duration::from_secs(config.shutdown_grace_seconds),
            retention: config.retention.0,
            generated_key,
        })
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
        let graceful = GracefulShutdown::new();
        let maintenance = tokio::spawn(maintenance(self.state.store.clone()));
        let timers = tokio::spawn(runtime::timers(
            self.state.store.clone(),
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
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let stream = match accepted {
                        Ok((stream, _)) => stream,
                        Err(e) => {
                            // Out of file descriptors and the like: back off instead of spinning.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let state = self.state.clone();
                    let conn = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .header_read_timeout(Duration::from_secs(30))
                        .keep_alive(true)
                        .serve_connection(
                            TokioIo::new(stream),
                            service_fn(move |req| http::handle(state.clone(), req)),
                        );
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
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

/// Housekeeping every hour: drop idempotency records past their retention.
async fn maintenance(store: Store) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
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
