//! What the operator endpoints read from the store: the schema version `/health` reports and the
//! gauges `/metrics` samples on each scrape. Reads only; no rules.

use crate::store::stats::{self, Snapshot};
use crate::store::{migrations, Tx};
use crate::Error;

/// The schema version of the open database (`/health`); fails when the database cannot be read.
pub fn schema_version(tx: &Tx) -> Result<i64, Error> {
    migrations::current_version(tx)
}

/// The store's gauges at `now_ms` (intents by status, queue depths, held leases).
pub fn gauges(tx: &Tx, now_ms: i64) -> Result<Snapshot, Error> {
    stats::snapshot(tx, now_ms)
}
