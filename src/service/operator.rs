//! What the operator endpoints read from the store: the schema version `/health` reports and the
//! gauges `/metrics` samples on each scrape. Reads only; no rules.

use crate::store::stats::{self, Snapshot};
use crate::store::{migrations, Store};
use crate::Error;

/// The schema version of the open database (`/health`); fails when the database cannot be read.
pub async fn schema_version(store: &Store) -> Result<i64, Error> {
    store.read(|tx| migrations::current_version(tx)).await
}

/// The store's gauges at `now_ms` (intents by status, queue depths, held leases).
pub async fn gauges(store: &Store, now_ms: i64) -> Result<Snapshot, Error> {
    store.read(move |tx| stats::snapshot(tx, now_ms)).await
}
