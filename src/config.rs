//! Every setting of the server in one place: its flag, its `AXME_*` environment variable, its
//! default and its help text. Secrets never appear in `Debug` output.

use std::fmt;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::store::Durability;

/// The command line of the `axme` binary.
#[derive(Debug, Parser)]
#[command(
    name = "axme",
    version,
    about = "Self-hosted intent server, wire-compatible with the AXME API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeConfig),
}

/// Settings of `axme serve`.
#[derive(Clone, Args)]
pub struct ServeConfig {
    /// SQLite database file; created with its schema on first start.
    #[arg(long, env = "AXME_DATA", default_value = "./axme.db")]
    pub data: PathBuf,

    /// Address to listen on (use 0.0.0.0:8080 to accept connections from other hosts).
    #[arg(long, env = "AXME_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Admin API key to store if the database does not have it yet (at least 16 characters).
    /// Without it, a new database gets a generated key, printed once.
    #[arg(long, env = "AXME_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// How hard a commit waits for the disk: `full` survives power loss, `normal` survives a
    /// crash of the process.
    #[arg(long, env = "AXME_DURABILITY", value_enum, default_value = "full")]
    pub durability: Durability,

    /// Largest intent payload in bytes of JSON (bigger ones get 413).
    #[arg(long, env = "AXME_MAX_PAYLOAD_BYTES", default_value_t = 128 * 1024)]
    pub max_payload_bytes: usize,

    /// Log filter (`error`, `warn`, `info`, `debug`, or a tracing directive).
    #[arg(long, env = "AXME_LOG", default_value = "info")]
    pub log: String,

    /// Seconds that graceful shutdown waits for open requests before closing them.
    #[arg(long, env = "AXME_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("data", &self.data)
            .field("listen", &self.listen)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("durability", &self.durability)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("log", &self.log)
            .field("shutdown_grace_seconds", &self.shutdown_grace_seconds)
            .finish()
    }
}

impl ServeConfig {
    /// Defaults for a server on `data`, as if started with no flags (for embedding and tests).
    pub fn new(data: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            data: data.into(),
            listen: "127.0.0.1:8080".into(),
            api_key: None,
            durability: Durability::Full,
            max_payload_bytes: 128 * 1024,
            log: "info".into(),
            shutdown_grace_seconds: 10,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_api_key() {
        let mut c = ServeConfig::new("x.db");
        c.api_key = Some("super-secret-key-123".into());
        let shown = format!("{c:?}");
        assert!(!shown.contains("super-secret"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
