//! The storage boundary: [`Tx`], the handle through which `service` reaches the database inside
//! one transaction (a write job of the writer thread) or one read snapshot (a pooled reader).
//! Service code names only `Tx` and the query functions of `store`; it never sees the backend.
//!
//! Why a handle and not a trait: every query is already one function of `store` taking the
//! handle, so a second backend (PostgreSQL, for several nodes on one database) is a second
//! variant of `Tx` over which those functions dispatch, with its SQL beside SQLite's in the
//! same function; the hundreds of service call sites stay as they are, no generic parameter or
//! `dyn` object spreads through the domain, and SQLite's single writer with group commit keeps
//! its exact code path (a borrowed connection, no extra allocation or indirection per query).

use std::ops::Deref;

use rusqlite::Connection;

/// A database handle valid for one transaction or read snapshot. Cheap: it borrows the
/// connection its writer or reader owns.
pub struct Tx<'c> {
    conn: &'c Connection,
}

impl<'c> Tx<'c> {
    /// A handle on a SQLite connection that is inside a transaction (or a read snapshot).
    pub fn sqlite(conn: &'c Connection) -> Tx<'c> {
        Tx { conn }
    }
}

/// The SQLite connection, for the query functions of `store` (the only code that runs SQL;
/// `tests/tidy.rs` keeps it so).
impl Deref for Tx<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}
