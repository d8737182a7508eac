//! The client subcommands of the `axme` binary, for people at a terminal and for scripts: send
//! and follow intents, listen as an agent, decide human tasks, manage agents and API keys, invite
//! people, take
//! backups, check health. The client talks to a server only over its HTTP API (with ureq); it
//! never opens the server's database and imports nothing of `http`, `service` or `store`.
//!
//! Output is aligned lines and tables by default; `--json` prints the server's JSON instead
//! (one document, or one line per event for streams). Errors go to stderr as one line. Exit
//! codes: 0 success, 1 failure (unreachable server, refused key, 4xx/5xx, bad input), 2 wrong
//! usage, 3 an intent that ended other than COMPLETED (`watch`, `send --wait`), 4 `--timeout`
//! passed before the intent ended.

mod client;
mod intents;
mod manage;
mod ops;
mod scenarios;
mod term;

use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

/// How a client subcommand reaches the server; given after the subcommand
/// (`axme send --server URL ...`) or through the environment.
#[derive(Clone, Args)]
pub struct Conn {
    /// Base URL of the axme server.
    #[arg(
        long,
        env = "AXME_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,

    /// API key, sent as `x-api-key`.
    #[arg(long, env = "AXME_API_KEY", hide_env_values = true, global = true)]
    pub api_key: Option<String>,

    /// Print the server's JSON (one line per event for streams) instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("server", &self.server)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("json", &self.json)
            .finish()
    }
}

/// The client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Send an intent (and with --wait, follow it until it ends).
    Send(SendArgs),
    /// Follow an intent's timeline live until it ends (exit 0 if COMPLETED, 3 otherwise).
    Watch(WatchArgs),
    /// Print the intents of an agent's feed as they arrive (this hands them over: DELIVERED).
    Listen(ListenArgs),
    /// Human tasks: list, approve, reject.
    Tasks(TasksArgs),
    /// Scenario bundles: validate one, or apply it (and with --watch, follow its intent).
    Scenarios(ScenariosArgs),
    /// The agent registry: add (or update), list, remove.
    Agents(AgentsArgs),
    /// API keys (admin): create, list, revoke.
    Keys(KeysArgs),
    /// Invite a newcomer: prints a one-time link that becomes a user and a key when accepted.
    Invite(InviteArgs),
    /// Write an online backup of the server's database to a file.
    Backup(BackupArgs),
    /// Check that the server answers and is healthy (exit 0), for systemd and containers.
    Healthcheck(HealthArgs),
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The agent to send to (`agent://...`, or bare `team/worker`).
    #[arg(long)]
    pub to: String,
    /// The intent type, e.g. `demo.task.v1`.
    #[arg(long = "type", value_name = "TYPE")]
    pub intent_type: String,
    /// The payload: a JSON object, `@FILE` to read it from a file, or `@-` from stdin.
    #[arg(long, default_value = "{}")]
    pub payload: String,
    /// The sender (default: the API key's own agent).
    #[arg(long)]
    pub from: Option<String>,
    /// The correlation id (default: a new UUID).
    #[arg(long, value_name = "UUID")]
    pub correlation_id: Option<String>,
    /// Follow the intent until it ends and print its result.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit 4; the intent goes on).
    #[arg(long, value_name = "S", requires = "wait")]
    pub timeout: Option<u64>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The intent to follow.
    pub intent_id: String,
}

#[derive(Debug, Args)]
pub struct ListenArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The agent whose feed to print.
    pub address: String,
    /// Start after this feed cursor (default: the beginning of the feed).
    #[arg(long, default_value_t = 0)]
    pub since: i64,
    /// Only items whose intent is now in one of these statuses (e.g. `SUBMITTED,DELIVERED`).
    #[arg(long)]
    pub status: Option<String>,
    /// Stop after this many items.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after the first item (same as --count 1).
    #[arg(long, conflicts_with = "count")]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct TasksArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Act as this owner (sent as `x-owner-agent`).
    #[arg(long, global = true, value_name = "ADDR")]
    pub owner: Option<String>,
    #[command(subcommand)]
    pub action: TaskAction,
}

#[derive(Debug, Subcommand)]
pub enum TaskAction {
    /// The pending human tasks.
    List,
    /// Approve a task (its thread id is its intent id).
    Approve(Decision),
    /// Reject a task.
    Reject(Decision),
}

#[derive(Debug, Args)]
pub struct Decision {
    pub thread_id: String,
    /// A comment stored with the decision.
    #[arg(long)]
    pub comment: Option<String>,
    /// The task's form as a JSON object (e.g. '{"acknowledged":true}'): sent as the
    /// `task_result` of a resume, checked against the step's `form_schema`.
    #[arg(long, value_name = "JSON")]
    pub result: Option<String>,
}

#[derive(Debug, Args)]
pub struct ScenariosArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub action: ScenarioAction,
}

#[derive(Debug, Subcommand)]
pub enum ScenarioAction {
    /// Check a bundle without applying it: every problem by its JSON path (exit 1 if any).
    Validate {
        /// The bundle (a JSON file; `-` reads stdin).
        file: PathBuf,
    },
    /// Provision the bundle's agents, compile its workflow and create its intent.
    Apply {
        /// The bundle (a JSON file; `-` reads stdin).
        file: PathBuf,
        /// Follow the intent's timeline until it ends (exit 0 if COMPLETED, 3 otherwise).
        #[arg(long, short)]
        watch: bool,
        /// Sent as `Idempotency-Key`: applying again with it answers the first intent.
        #[arg(long, value_name = "KEY")]
        idempotency_key: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub action: AgentAction,
}

#[derive(Debug, Subcommand)]
pub enum AgentAction {
    /// Register an agent, or update its binding.
    Add(AddAgent),
    /// Every registered agent.
    List,
    /// Retire an agent.
    Rm {
        /// The agent's address.
        address: String,
    },
}

#[derive(Debug, Args)]
pub struct AddAgent {
    /// The agent's address.
    pub address: String,
    /// How it receives its intents.
    #[arg(long, value_parser = ["stream", "poll", "http", "push", "inbox", "internal"])]
    pub mode: String,
    /// Where pushes go (mode http).
    #[arg(long, value_name = "URL")]
    pub webhook_url: Option<String>,
    /// A name for people.
    #[arg(long, value_name = "NAME")]
    pub display_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub action: KeyAction,
}

#[derive(Debug, Subcommand)]
pub enum KeyAction {
    /// Create a key; it is printed once.
    Create(CreateKey),
    /// Every key, revoked ones included (never the keys themselves).
    List,
    /// Revoke a key; requests with it fail from now on.
    Revoke {
        /// The key's id (from `keys list`).
        key_id: String,
    },
}

#[derive(Debug, Args)]
pub struct CreateKey {
    /// A name for the key; also its default agent name (`agent://NAME`).
    #[arg(long)]
    pub name: String,
    /// What the key may do.
    #[arg(long, value_parser = ["admin", "agent"], default_value = "admin")]
    pub role: String,
    /// An agent the key acts for (role agent; repeat for several).
    #[arg(long = "agent", value_name = "ADDR")]
    pub agents: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InviteArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Who invites: the address the invite is from (an agent key must act for it).
    #[arg(long, value_name = "ADDR")]
    pub owner: String,
    /// Who the invite is for, shown to the newcomer.
    #[arg(long, value_name = "TEXT")]
    pub hint: Option<String>,
    /// Seconds the link stays valid (60 to 1209600; default 7 days).
    #[arg(long, value_name = "S")]
    pub ttl: Option<u64>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The file to write (replaced atomically if it exists).
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Seconds to wait for an answer.
    #[arg(long, value_name = "S", default_value_t = 5)]
    pub timeout: u64,
}

/// Exit codes besides 0 (success) and 2 (usage, from clap).
pub mod exit {
    /// A request failed, or the input was wrong.
    pub const FAILURE: u8 = 1;
    /// The intent ended FAILED, CANCELED or TIMED_OUT.
    pub const NOT_COMPLETED: u8 = 3;
    /// `--timeout` passed before the intent ended.
    pub const TIMEOUT: u8 = 4;
}

/// Why a client command stopped short: a one-line message and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure {
            code: exit::FAILURE,
            message: message.into(),
        }
    }
}

/// Runs a client subcommand and returns the process's exit code.
pub fn run(command: ClientCommand) -> ExitCode {
    let outcome = match command {
        ClientCommand::Send(a) => intents::send(a),
        ClientCommand::Watch(a) => intents::watch(a),
        ClientCommand::Listen(a) => intents::listen(a),
        ClientCommand::Tasks(a) => manage::tasks(a),
        ClientCommand::Scenarios(a) => scenarios::run(a),
        ClientCommand::Agents(a) => manage::agents(a),
        ClientCommand::Keys(a) => manage::keys(a),
        ClientCommand::Invite(a) => manage::invite(a),
        ClientCommand::Backup(a) => ops::backup(a),
        ClientCommand::Healthcheck(a) => ops::healthcheck(a),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            if !f.message.is_empty() {
                eprintln!("axme: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}
