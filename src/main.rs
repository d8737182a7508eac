//! The `axme` binary: parses flags; `serve` binds the listener and hands over to
//! `server::Server`, every other subcommand is a client of a server (`cli::run`).

#![forbid(unsafe_code)]

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use axme::config::{Cli, Command, LogFormat, ServeConfig};
use axme::server::Server;
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => serve(config),
        Command::Client(command) => axme::cli::run(command),
    }
}

fn serve(config: ServeConfig) -> ExitCode {
    init_logging(&config.log, config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("axme: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("axme: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: ServeConfig) -> Result<(), String> {
    let server = Server::open(&config)
        .await
        .map_err(|e| format!("cannot open {}: {e:?}", config.data.display()))?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;
    let mut out = std::io::stdout().lock();
    if let Some(key) = &server.generated_key {
        let _ = writeln!(out, "admin API key (shown once, store it now): {key}");
    }
    if let Some(path) = &server.generated_key_file {
        let _ = writeln!(
            out,
            "admin API key written to {} (readable by its owner only)",
            path.display()
        );
    }
    let _ = writeln!(
        out,
        "axme {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    let _ = out.flush();
    drop(out);
    tracing::info!(%addr, data = %config.data.display(), "serving");
    server
        .run(listener, shutdown_signal())
        .await
        .map_err(|e| format!("{e}"))
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// Logs go to stderr, as text or as one JSON object per line with the fields at the top level.
fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into a file or a journal.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
