//! `axme tasks`, `axme agents`, `axme keys`, `axme invite`: human tasks (`/v1/me/tasks`, the
//! inbox's approve/reject), the agent registry (`/v1/agents`), API keys (`/v1/keys`) and invites
//! (`/v1/invites/create`).

use serde_json::{json, Value};

use super::client::{segment, Client};
use super::term;
use super::{
    AgentAction, AgentsArgs, CreateKey, Decision, Failure, InviteArgs, KeyAction, KeysArgs,
    TaskAction, TasksArgs,
};

/// The elements of an array field, or none.
fn items<'a>(v: &'a Value, name: &str) -> &'a [Value] {
    v[name].as_array().map(Vec::as_slice).unwrap_or(&[])
}

pub fn tasks(a: TasksArgs) -> Result<(), Failure> {
    let client = Client::new(&a.conn)?;
    let owner = a.owner.as_deref();
    let with_owner = |req: ureq::Request| match owner {
        Some(o) => req.set("x-owner-agent", o),
        None => req,
    };
    match a.action {
        TaskAction::List => {
            let v = client.call(with_owner(client.request("GET", "/v1/me/tasks")), None)?;
            if a.conn.json {
                term::print_json(&v);
                return Ok(());
            }
            let tasks = items(&v, "tasks");
            if tasks.is_empty() {
                println!("no pending tasks");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = tasks
                .iter()
                .map(|t| {
                    let due = t["due_at"].as_str().map(term::when);
                    vec![
                        term::field(t, "intent_id"),
                        term::truncate(&term::field(&t["human_task"], "title"), 48),
                        term::field(&t["human_task"], "task_type"),
                        term::field(t, "from_agent"),
                        term::when(t["assigned_at"].as_str().unwrap_or("-")),
                        due.unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            print!(
                "{}",
                term::table(
                    &[
                        "THREAD_ID",
                        "TITLE",
                        "TYPE",
                        "FROM",
                        "ASSIGNED (UTC)",
                        "DUE (UTC)"
                    ],
                    &rows
                )
            );
            Ok(())
        }
        TaskAction::Approve(d) => decide(&client, with_owner, "approve", d, a.conn.json),
        TaskAction::Reject(d) => decide(&client, with_owner, "reject", d, a.conn.json),
    }
}

fn decide(
    client: &Client,
    with_owner: impl Fn(ureq::Request) -> ureq::Request,
    verb: &str,
    d: Decision,
    json: bool,
) -> Result<(), Failure> {
    let (path, body) = match &d.result {
        // A form goes in as AXME's CLI sends it: a resume whose task_result carries the outcome.
        Some(form) => {
            let mut result: Value = serde_json::from_str(form)
                .ok()
                .filter(Value::is_object)
                .ok_or_else(|| Failure::new("--result must be a JSON object"))?;
            let outcome = if verb == "approve" {
                "approved"
            } else {
                "rejected"
            };
            result["outcome"] = json!(outcome);
            if let Some(c) = &d.comment {
                result["comment"] = json!(c);
            }
            let path = format!("/v1/intents/{}/resume", segment(&d.thread_id));
            (path, json!({"task_result": result}))
        }
        None => {
            let body = match &d.comment {
                Some(c) => json!({"comment": c}),
                None => json!({}),
            };
            (format!("/v1/inbox/{}/{verb}", segment(&d.thread_id)), body)
        }
    };
    let v = client.call(with_owner(client.request("POST", &path)), Some(&body))?;
    if json {
        term::print_json(&v);
    } else {
        let done = if verb == "approve" {
            "approved"
        } else {
            "rejected"
        };
        match v["thread"]["status"].as_str() {
            Some(s) => println!("{done} {} (thread {s})", d.thread_id),
            None => println!("{done} {}", d.thread_id),
        }
    }
    Ok(())
}

pub fn agents(a: AgentsArgs) -> Result<(), Failure> {
    let client = Client::new(&a.conn)?;
    let json = a.conn.json;
    match a.action {
        AgentAction::Add(add) => {
            let mut body = json!({"address": add.address, "delivery_mode": add.mode});
            if let Some(u) = add.webhook_url {
                body["webhook_url"] = Value::String(u);
            }
            if let Some(n) = add.display_name {
                body["display_name"] = Value::String(n);
            }
            let v = client.post("/v1/agents", &body)?;
            if json {
                term::print_json(&v);
                return Ok(());
            }
            let agent = &v["agent"];
            println!(
                "agent {} registered ({})",
                term::field(agent, "address"),
                term::field(agent, "delivery_mode")
            );
            if let Some(secret) = agent["webhook_secret"].as_str() {
                println!("webhook secret (shown once, store it now): {secret}");
            }
            Ok(())
        }
        AgentAction::List => {
            let v = client.get("/v1/agents")?;
            if json {
                term::print_json(&v);
                return Ok(());
            }
            let agents = items(&v, "agents");
            if agents.is_empty() {
                println!("no agents registered");
                return Ok(());
            }
            let rows: Vec<Vec<String>> = agents
                .iter()
                .map(|g| {
                    vec![
                        term::field(g, "address"),
                        term::field(g, "delivery_mode"),
                        term::field(g, "display_name"),
                        term::field(g, "webhook_url"),
                        term::when(g["updated_at"].as_str().unwrap_or("-")),
                    ]
                })
                .collect();
            print!(
                "{}",
                term::table(
                    &["ADDRESS", "MODE", "NAME", "WEBHOOK_URL", "UPDATED (UTC)"],
                    &rows
                )
            );
            Ok(())
        }
        AgentAction::Rm { address } => {
            let v = client.delete(&format!("/v1/agents/{}", segment(&address)))?;
            if json {
                term::print_json(&v);
            } else {
                println!("agent {} retired", term::field(&v, "address"));
            }
            Ok(())
        }
    }
}

pub fn keys(a: KeysArgs) -> Result<(), Failure> {
    let client = Client::new(&a.conn)?;
    let json = a.conn.json;
    match a.action {
        KeyAction::Create(c) => create_key(&client, c, json),
        KeyAction::List => {
            let v = client.get("/v1/keys")?;
            if json {
                term::print_json(&v);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = items(&v, "keys")
                .iter()
                .map(|k| {
                    let agents: Vec<&str> = items(k, "agents")
                        .iter()
                        .filter_map(Value::as_str)
                        .collect();
                    vec![
                        term::field(k, "key_id"),
                        term::field(k, "name"),
                        term::field(k, "role"),
                        term::when(k["created_at"].as_str().unwrap_or("-")),
                        k["revoked_at"]
                            .as_str()
                            .map(term::when)
                            .unwrap_or_else(|| "-".into()),
                        if agents.is_empty() {
                            "-".into()
                        } else {
                            agents.join(",")
                        },
                    ]
                })
                .collect();
            print!(
                "{}",
                term::table(
                    &[
                        "KEY_ID",
                        "NAME",
                        "ROLE",
                        "CREATED (UTC)",
                        "REVOKED (UTC)",
                        "AGENTS"
                    ],
                    &rows
                )
            );
            Ok(())
        }
        KeyAction::Revoke { key_id } => {
            let v = client.post(&format!("/v1/keys/{}/revoke", segment(&key_id)), &json!({}))?;
            if json {
                term::print_json(&v);
            } else {
                println!(
                    "key {} ({}) revoked at {}",
                    term::field(&v["key"], "key_id"),
                    term::field(&v["key"], "name"),
                    term::when(v["key"]["revoked_at"].as_str().unwrap_or("-"))
                );
            }
            Ok(())
        }
    }
}

fn create_key(client: &Client, c: CreateKey, json: bool) -> Result<(), Failure> {
    let mut body = json!({"name": c.name, "role": c.role});
    if !c.agents.is_empty() {
        body["agents"] = json!(c.agents);
    }
    let v = client.post("/v1/keys", &body)?;
    if json {
        term::print_json(&v);
        return Ok(());
    }
    let key = &v["key"];
    let agents: Vec<&str> = items(key, "agents")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut line = format!(
        "key {} \"{}\" created (role {}",
        term::field(key, "key_id"),
        term::field(key, "name"),
        term::field(key, "role")
    );
    if !agents.is_empty() {
        line.push_str(&format!(", agents {}", agents.join(", ")));
    }
    println!("{line})");
    println!(
        "API key (shown once, store it now): {}",
        term::field(&v, "api_key")
    );
    Ok(())
}

/// `axme invite --owner ADDR [--hint TEXT] [--ttl S]`: the link, its token and its expiry.
pub fn invite(a: InviteArgs) -> Result<(), Failure> {
    let client = Client::new(&a.conn)?;
    let mut body = json!({"owner_agent": a.owner});
    if let Some(h) = a.hint {
        body["recipient_hint"] = json!(h);
    }
    if let Some(t) = a.ttl {
        body["ttl_seconds"] = json!(t);
    }
    let v = client.post("/v1/invites/create", &body)?;
    if a.conn.json {
        term::print_json(&v);
        return Ok(());
    }
    println!("{}", term::field(&v, "invite_url"));
    eprintln!(
        "one-time invite from {} until {} (UTC); accept it with POST {{\"nick\": \"@name\"}} to the link + /accept",
        term::field(&v, "owner_agent"),
        term::when(v["expires_at"].as_str().unwrap_or("-")),
    );
    Ok(())
}
