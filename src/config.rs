//! Every setting of the server in one place: its flag, its `AXME_*` environment variable, its
//! default and its help text. Secrets never appear in `Debug` output.

use std::fmt;
use std::path::PathBuf;

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::delivery::PushSettings;
use crate::http::sse::StreamSettings;
use crate::service::deliveries::RetryPolicy;

use crate::store::Durability;

mod parse;
use parse::{parse_durability, parse_public_url, parse_retention, parse_schedule};

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

// Parsed once at start and matched at once: the size of the larger variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeConfig),
    #[command(flatten)]
    Client(crate::cli::ClientCommand),
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

    /// Admin API key to store if the database does not have it yet (at least 32 visible
    /// characters, 16 of them different). Without it, a new database gets a generated key,
    /// printed once (or written to --api-key-file).
    #[arg(long, env = "AXME_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// A file holding the admin API key (kept out of the command line and the log): read if it
    /// exists; otherwise a new database's generated key is written to it, readable by its owner
    /// only (0600), instead of to stdout.
    #[arg(long, env = "AXME_API_KEY_FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,

    /// How hard a commit waits for the disk: `full` survives power loss, `normal` survives a
    /// crash of the process.
    #[arg(long, env = "AXME_DURABILITY", default_value = "full", value_parser = parse_durability)]
    pub durability: Durability,

    /// Largest intent payload in bytes of JSON (bigger ones get 413).
    #[arg(long, env = "AXME_MAX_PAYLOAD_BYTES", default_value_t = 128 * 1024)]
    pub max_payload_bytes: usize,

    /// Log filter (`error`, `warn`, `info`, `debug`, or a tracing directive).
    #[arg(long, env = "AXME_LOG", default_value = "info")]
    pub log: String,

    /// How log lines are written: `text` for people, `json` (one object per line) for log
    /// collectors.
    #[arg(long, env = "AXME_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Serve `/metrics` without an API key (for a Prometheus on a trusted network).
    #[arg(long, env = "AXME_METRICS_PUBLIC")]
    pub metrics_public: bool,

    /// How long a terminal intent is kept after its last change before it is removed with its
    /// events, deliveries and the rest (units ms, s, m, h, d); `0` or `off` keeps everything.
    #[arg(long, env = "AXME_RETENTION", default_value = "30d", value_parser = parse_retention)]
    pub retention: Retention,

    /// Seconds that graceful shutdown waits for open requests before closing them.
    #[arg(long, env = "AXME_SHUTDOWN_GRACE_SECONDS", default_value_t = 10)]
    pub shutdown_grace_seconds: u64,

    /// Seconds without a frame after which a stream sends a keepalive comment.
    #[arg(long, env = "AXME_STREAM_KEEPALIVE_SECONDS", default_value_t = 15)]
    pub stream_keepalive_seconds: u64,

    /// Longest life of one stream connection in seconds (minus up to 10% jitter); clients
    /// reconnect with Last-Event-ID and lose nothing.
    #[arg(long, env = "AXME_STREAM_MAX_LIFETIME_SECONDS", default_value_t = 1800)]
    pub stream_max_lifetime_seconds: u64,

    /// Seconds a stream waits for a slow consumer to make room before cutting it off.
    #[arg(long, env = "AXME_STREAM_WRITE_DEADLINE_SECONDS", default_value_t = 10)]
    pub stream_write_deadline_seconds: u64,

    /// Frames queued per stream connection.
    #[arg(long, env = "AXME_STREAM_QUEUE", default_value_t = 256)]
    pub stream_queue: usize,

    /// Bytes queued per stream connection (one frame larger than this still goes out alone); a
    /// reader that leaves it full past the write deadline is cut off and its connection closed.
    #[arg(long, env = "AXME_STREAM_BUFFER_BYTES", default_value_t = 1024 * 1024)]
    pub stream_buffer_bytes: usize,

    /// Most open stream connections (more get 503 with Retry-After).
    #[arg(long, env = "AXME_MAX_STREAMS", default_value_t = 10_000)]
    pub max_streams: usize,

    /// Most long polls waiting at once (more get 503 with Retry-After).
    #[arg(long, env = "AXME_MAX_WAITERS", default_value_t = 10_000)]
    pub max_waiters: usize,

    /// Most open stream connections of one agent key (more get 429).
    #[arg(long, env = "AXME_MAX_STREAMS_PER_KEY", default_value_t = 100)]
    pub max_streams_per_key: usize,

    /// Most long polls (waiting event polls, feed polls and claims) of one agent key at once
    /// (more get 429).
    #[arg(long, env = "AXME_MAX_WAITERS_PER_KEY", default_value_t = 100)]
    pub max_waiters_per_key: usize,

    /// Most open connections; past it a connection gets `/health` or 503 and is closed. Kept
    /// under three quarters of the open-file limit (raised to its hard limit at start).
    #[arg(long, env = "AXME_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Seconds a request's body may take to arrive after its head (then 408 and the connection
    /// closes).
    #[arg(long, env = "AXME_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,

    /// Requests one agent key may have in flight at once (more get 429).
    #[arg(long, env = "AXME_MAX_IN_FLIGHT_PER_KEY", default_value_t = 256)]
    pub max_in_flight_per_key: usize,

    /// Active webhook subscriptions one owner may hold (more get 429); each multiplies the
    /// events it matches into pushes. 0 turns the cap off.
    #[arg(long, env = "AXME_MAX_SUBSCRIPTIONS_PER_OWNER", default_value_t = 100)]
    pub max_subscriptions_per_owner: usize,

    /// Payload bytes the live (not yet terminal) intents sent by one agent key's addresses may
    /// hold together; a create past it gets 429 until some of them end. 0 turns the quota off.
    /// Admin keys have none.
    #[arg(long, env = "AXME_MAX_LIVE_BYTES_PER_KEY", default_value_t = crate::http::DEFAULT_LIVE_BYTES_PER_KEY)]
    pub max_live_bytes_per_key: u64,

    /// Push deliveries one event may produce (its handler and every subscription it matches),
    /// all written in the event's transaction; a create or publish past it gets 429, a later
    /// event is cut at it. 0 turns the cap off.
    #[arg(long, env = "AXME_MAX_FANOUT_PER_EVENT", default_value_t = crate::service::outbox::DEFAULT_MAX_FANOUT)]
    pub max_fanout_per_event: usize,

    /// Requests per second one agent key may make on average (bursts of twice that); more get
    /// 429 with Retry-After. 0 turns the limit off. Admin keys are not limited.
    #[arg(long, env = "AXME_RATE_LIMIT", default_value_t = 1000)]
    pub rate_limit: u64,

    /// Delays between push attempts (units ms, s, m, h, d); the number of steps plus one is the
    /// default number of attempts.
    #[arg(long, env = "AXME_PUSH_RETRY_SCHEDULE", default_value = "5s,5m,30m,2h,5h,10h,14h,20h,24h",
          value_parser = parse_schedule)]
    pub push_retry_schedule: Schedule,

    /// Seconds one push attempt may take in all.
    #[arg(long, env = "AXME_PUSH_TIMEOUT", default_value_t = 15)]
    pub push_timeout: u64,

    /// Seconds a push may take to connect.
    #[arg(long, env = "AXME_PUSH_CONNECT_TIMEOUT", default_value_t = 5)]
    pub push_connect_timeout: u64,

    /// Threads sending pushes.
    #[arg(long, env = "AXME_PUSH_WORKERS", default_value_t = 16)]
    pub push_workers: usize,

    /// Pushes in flight to one endpoint (scheme, host, port) at most, so a slow or dead one
    /// cannot hold up the others.
    #[arg(long, env = "AXME_PUSH_ENDPOINT_CONCURRENCY", default_value_t = 4)]
    pub push_endpoint_concurrency: usize,

    /// Pushes one owner (a subscription's owner, or the agent a push goes to) may have on workers
    /// at once, so one owner's slow endpoints leave workers to the others; 0 means half of
    /// --push-workers.
    #[arg(long, env = "AXME_PUSH_WORKERS_PER_OWNER", default_value_t = 0)]
    pub push_workers_per_owner: usize,

    /// Also refuse pushes to loopback and private addresses (link-local and cloud metadata
    /// addresses are always refused).
    #[arg(long, env = "AXME_PUSH_DENY_PRIVATE")]
    pub push_deny_private: bool,

    /// Seconds to wait at least after a 429 or a timeout, whatever the schedule says.
    #[arg(long, env = "AXME_PUSH_THROTTLE_FLOOR_SECONDS", default_value_t = 60)]
    pub push_throttle_floor_seconds: u64,

    /// The URL clients reach this server at (e.g. `https://axme.example.com`), the base of invite
    /// and upload links. Without it, `http://` and the address the server is bound to.
    #[arg(long, env = "AXME_PUBLIC_URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,

    /// Directory of uploaded media files (default `<data>.media`); back it up after the database.
    #[arg(long, env = "AXME_MEDIA_DIR")]
    pub media_dir: Option<PathBuf>,

    /// The largest media upload, in bytes.
    #[arg(long, env = "AXME_MEDIA_MAX_BYTES", default_value_t = 100 * 1024 * 1024)]
    pub media_max_bytes: i64,

    /// What all media uploads of the server together may hold, in bytes.
    #[arg(long, env = "AXME_MEDIA_QUOTA_BYTES", default_value_t = 10 * 1024 * 1024 * 1024)]
    pub media_quota_bytes: i64,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `--retention`: how long terminal intents are kept; `None` keeps them forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention(pub Option<Duration>);

/// The delays of `--push-retry-schedule`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedule(pub Vec<Duration>);

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("data", &self.data)
            .field("listen", &self.listen)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("durability", &self.durability)
            .field("max_payload_bytes", &self.max_payload_bytes)
            .field("log", &self.log)
            .field("log_format", &self.log_format)
            .field("metrics_public", &self.metrics_public)
            .field("retention", &self.retention)
            .field("shutdown_grace_seconds", &self.shutdown_grace_seconds)
            .field("stream", &self.stream_settings())
            .field("push", &self.push_settings())
            .field("public_url", &self.public_url)
            .field("media", &self.media_settings())
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
            api_key_file: None,
            durability: Durability::Full,
            max_payload_bytes: 128 * 1024,
            log: "info".into(),
            log_format: LogFormat::Text,
            metrics_public: false,
            retention: Retention(Some(Duration::from_secs(30 * 86_400))),
            shutdown_grace_seconds: 10,
            stream_keepalive_seconds: 15,
            stream_max_lifetime_seconds: 1800,
            stream_write_deadline_seconds: 10,
            stream_queue: 256,
            stream_buffer_bytes: 1024 * 1024,
            max_streams: 10_000,
            max_waiters: 10_000,
            max_streams_per_key: 100,
            max_waiters_per_key: 100,
            max_connections: 10_000,
            request_timeout_seconds: 30,
            max_in_flight_per_key: 256,
            max_subscriptions_per_owner: 100,
            max_live_bytes_per_key: crate::http::DEFAULT_LIVE_BYTES_PER_KEY,
            max_fanout_per_event: crate::service::outbox::DEFAULT_MAX_FANOUT,
            rate_limit: 1000,
            push_retry_schedule: parse_schedule("5s,5m,30m,2h,5h,10h,14h,20h,24h")
                .unwrap_or_default(),
            push_timeout: 15,
            push_connect_timeout: 5,
            push_workers: 16,
            push_endpoint_concurrency: 4,
            push_workers_per_owner: 0,
            push_deny_private: false,
            push_throttle_floor_seconds: 60,
            public_url: None,
            media_dir: None,
            media_max_bytes: 100 * 1024 * 1024,
            media_quota_bytes: 10 * 1024 * 1024 * 1024,
        }
    }

    /// The push binding's settings.
    pub fn push_settings(&self) -> PushSettings {
        PushSettings {
            policy: RetryPolicy {
                schedule: self.push_retry_schedule.0.clone(),
                throttle_floor: Duration::from_secs(self.push_throttle_floor_seconds),
                retry_after_cap: Duration::from_secs(24 * 3600),
            },
            timeout: Duration::from_secs(self.push_timeout.max(1)),
            connect_timeout: Duration::from_secs(self.push_connect_timeout.max(1)),
            workers: self.push_workers.max(1),
            per_endpoint: self.push_endpoint_concurrency.max(1),
            per_owner: match self.push_workers_per_owner {
                0 => self.push_workers.max(1).div_ceil(2),
                n => n,
            },
            deny_private: self.push_deny_private,
        }
    }

    /// Where media uploads live and how much they may hold.
    pub fn media_settings(&self) -> crate::service::media::MediaSettings {
        let dir = self.media_dir.as_deref();
        crate::service::media::MediaSettings::new(
            dir,
            &self.data,
            self.media_max_bytes,
            self.media_quota_bytes,
        )
    }

    /// The stream and long-poll tunables.
    pub fn stream_settings(&self) -> StreamSettings {
        StreamSettings {
            keepalive: Duration::from_secs(self.stream_keepalive_seconds.max(1)),
            max_lifetime: Duration::from_secs(self.stream_max_lifetime_seconds.max(1)),
            write_deadline: Duration::from_secs(self.stream_write_deadline_seconds.max(1)),
            queue: self.stream_queue.max(1),
            buffer_bytes: self.stream_buffer_bytes.max(1),
            retry_ms: 2000,
            max_streams: self.max_streams,
            max_waiters: self.max_waiters,
            max_streams_per_key: self.max_streams_per_key.max(1),
            max_waiters_per_key: self.max_waiters_per_key.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_url_is_an_http_url_kept_without_its_trailing_slash() {
        let ok = |s: &str| parse_public_url(s).ok();
        assert_eq!(
            ok("https://a.example/").as_deref(),
            Some("https://a.example")
        );
        assert_eq!(
            ok("http://10.0.0.2:80").as_deref(),
            Some("http://10.0.0.2:80")
        );
        for bad in [
            "a.example",
            "ftp://x",
            "https://",
            "https://a b",
            "http://x/?q",
        ] {
            assert!(ok(bad).is_none(), "{bad}");
        }
    }

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
        let cli = Cli::try_parse_from([
            "axme",
            "serve",
            "--push-retry-schedule",
            "500ms,2s,1m",
            "--push-deny-private",
        ])
        .expect("parses");
        let Command::Serve(c) = cli.command else {
            panic!("serve parsed as another command")
        };
        assert_eq!(
            c.push_settings().policy.schedule,
            vec![
                Duration::from_millis(500),
                Duration::from_secs(2),
                Duration::from_secs(60)
            ]
        );
        assert!(c.push_deny_private);
        assert!(Cli::try_parse_from(["axme", "serve", "--push-retry-schedule", "5x"]).is_err());
    }

    #[test]
    fn retention_is_one_duration_or_off() {
        let parse = |args: &[&str]| {
            let mut argv = vec!["axme", "serve"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).map(|cli| {
                let Command::Serve(c) = cli.command else {
                    panic!("serve parses as the serve command");
                };
                (c.retention, c.log_format, c.metrics_public)
            })
        };
        assert_eq!(
            parse(&[]).expect("defaults"),
            (
                Retention(Some(Duration::from_secs(30 * 86_400))),
                LogFormat::Text,
                false
            )
        );
        let hours = Retention(Some(Duration::from_secs(12 * 3600)));
        assert_eq!(parse(&["--retention", "12h"]).expect("12h").0, hours);
        assert_eq!(
            parse(&["--retention", "off"]).expect("off").0,
            Retention(None)
        );
        assert_eq!(parse(&["--retention", "0"]).expect("0").0, Retention(None));
        assert!(parse(&["--retention", "1d,2d"]).is_err());
        assert!(parse(&["--retention", "soon"]).is_err());
        let json = parse(&["--log-format", "json", "--metrics-public"]).expect("json");
        assert_eq!((json.1, json.2), (LogFormat::Json, true));
        assert!(parse(&["--log-format", "xml"]).is_err());
    }
}
