//! Task emails against a real SMTP conversation: a sink on 127.0.0.1 started by the test
//! speaks SMTP to the server's mail task. A human step with `notify_email` sends its assignee a
//! mail whose magic link opens the decision page without a key; the link decides once; an
//! expired link says so; a relay that refuses a mail gets it again.

use crate::common;
use crate::workflow_support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use workflow_support::*;

/// A tiny SMTP server: accepts every mail (after refusing the first `refuse` at RCPT with a
/// 451) and hands each message's DATA to the test.
struct Sink {
    port: u16,
    mails: mpsc::Receiver<String>,
}

impl Sink {
    fn start(refuse: usize) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink");
        let port = listener.local_addr().expect("addr").port();
        let (tx, mails) = mpsc::channel();
        let refused = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (tx, refused) = (tx.clone(), refused.clone());
                std::thread::spawn(move || {
                    let mut w = conn.try_clone().expect("clone");
                    let mut r = BufReader::new(conn);
                    let mut say = |s: &str| w.write_all(s.as_bytes()).is_ok();
                    say("220 sink ready\r\n");
                    let mut line = String::new();
                    while r.read_line(&mut line).unwrap_or(0) > 0 {
                        let cmd = line.trim_end().to_ascii_uppercase();
                        let ok = if cmd.starts_with("EHLO") {
                            say("250-sink\r\n250 8BITMIME\r\n")
                        } else if cmd.starts_with("RCPT")
                            && refused.fetch_add(1, Ordering::SeqCst) < refuse
                        {
                            say("451 try again later\r\n")
                        } else if cmd == "DATA" {
                            say("354 go on\r\n");
                            let mut data = String::new();
                            let mut l = String::new();
                            while r.read_line(&mut l).unwrap_or(0) > 0 && l != ".\r\n" {
                                data.push_str(&l);
                                l.clear();
                            }
                            let _ = tx.send(data);
                            say("250 queued\r\n")
                        } else if cmd == "QUIT" {
                            say("221 bye\r\n");
                            break;
                        } else {
                            say("250 ok\r\n")
                        };
                        if !ok {
                            break;
                        }
                        line.clear();
                    }
                });
            }
        });
        Sink { port, mails }
    }

    fn next(&self, within: Duration) -> String {
        self.mails.recv_timeout(within).expect("a mail arrives")
    }
}

fn server_with(sink: &Sink) -> Server {
    let url = format!("smtp://127.0.0.1:{}", sink.port);
    Server::start_args(&["--smtp-url", &url, "--smtp-from", "axme@test.local"])
}

fn human_step(deadline: Option<i64>) -> Value {
    let mut step = json!({"step_id": "signoff", "tool_id": "tool.approval.human_signoff",
        "assigned_to": "ops", "human_task": {"title": "Ship 4.0?", "description": "Go or no go",
        "notify_email": "ops@example.com"}});
    if let Some(d) = deadline {
        step["step_deadline_seconds"] = json!(d);
    }
    json!({"scenario_id": "test.email.v1", "humans": [{"role": "ops"}],
           "workflow": {"steps": [step]},
           "intent": {"type": "intent.demo.email.v1", "payload": {}}})
}

/// The path of the magic link in a mail (`/ui/decide/<token>`).
fn link_path(mail: &str, s: &Server) -> String {
    let line = mail
        .lines()
        .find(|l| l.contains("/ui/decide/"))
        .unwrap_or_else(|| panic!("no link in {mail}"));
    line.trim()
        .strip_prefix(&s.base)
        .unwrap_or_else(|| panic!("the link {line} is not on {}", s.base))
        .to_string()
}

fn form_post(s: &Server, path: &str, form: &str) -> Resp {
    let r = s
        .req_anon("POST", path)
        .set("content-type", "application/x-www-form-urlencoded");
    send(r, Some(form.to_string()))
}

#[test]
fn a_task_email_carries_a_link_that_decides_the_step_once_without_a_key() {
    let sink = Sink::start(0);
    let s = server_with(&sink);
    let id = apply(&s, &human_step(None))["intent_id"]
        .as_str()
        .expect("intent_id")
        .to_string();
    let mail = sink.next(Duration::from_secs(20));
    assert!(mail.contains("To: ops@example.com\r\n"), "{mail}");
    assert!(mail.contains("From: axme@test.local\r\n"), "{mail}");
    assert!(mail.contains("Subject: Ship 4.0?\r\n"), "{mail}");
    assert!(mail.contains("Go or no go"), "{mail}");
    let path = link_path(&mail, &s);
    let token = path.trim_start_matches("/ui/decide/");
    assert!(token.len() >= 40, "{token}");

    let page = send(s.req_anon("GET", &path), None);
    assert_eq!(page.status, 200, "{}", page.text);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.header("referrer-policy"), Some("no-referrer"));
    assert!(
        page.text.contains("Ship 4.0?") && page.text.contains("Approve"),
        "{}",
        page.text
    );
    assert_eq!(intent(&s, &id)["status"], "WAITING");

    let done = form_post(&s, &path, "outcome=approved&comment=ship+it");
    assert_eq!(done.status, 200, "{}", done.text);
    assert!(done.text.contains("Recorded: approved"), "{}", done.text);
    let wf = wait_status(&s, &id, "COMPLETED", None);
    let step = &wf["result"]["steps"]["signoff"];
    assert_eq!(step["outcome"], "approved", "{wf}");
    assert_eq!(step["decided_by"], "mailto:ops@example.com", "{wf}");
    assert_eq!(step["task_result"]["comment"], "ship it", "{wf}");

    // Once: the second use decides nothing and says why.
    let again = form_post(&s, &path, "outcome=rejected");
    assert_eq!(again.status, 410, "{}", again.text);
    assert!(again.text.contains("was used at"), "{}", again.text);
    let page = send(s.req_anon("GET", &path), None);
    assert_eq!(page.status, 410, "{}", page.text);
    let unknown = send(s.req_anon("GET", "/ui/decide/not-a-token"), None);
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert!(unknown.text.contains("not known"), "{}", unknown.text);
}

#[test]
fn an_expired_task_link_says_when_it_expired_and_decides_nothing() {
    let sink = Sink::start(0);
    let s = server_with(&sink);
    let id = apply(&s, &human_step(Some(1)))["intent_id"]
        .as_str()
        .expect("intent_id")
        .to_string();
    let path = link_path(&sink.next(Duration::from_secs(20)), &s);
    let page = poll_until(Duration::from_secs(20), "the link to expire", || {
        let p = send(s.req_anon("GET", &path), None);
        (p.status == 410).then_some(p)
    });
    assert!(page.text.contains("This link expired at"), "{}", page.text);
    let r = form_post(&s, &path, "outcome=approved");
    assert_eq!(r.status, 410, "{}", r.text);
    assert_eq!(
        wait_status(&s, &id, "TIMED_OUT", None)["status"],
        "TIMED_OUT"
    );
}

#[test]
fn a_mail_the_relay_refuses_is_sent_again_and_a_bad_form_leaves_the_link_good() {
    let sink = Sink::start(1);
    let s = server_with(&sink);
    let mut bundle = human_step(None);
    bundle["workflow"]["steps"][0]["human_task"]["form_schema"] = json!({"type": "object",
        "required": ["acknowledged"], "properties": {"acknowledged": {"type": "boolean"}}});
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .expect("intent_id")
        .to_string();
    // The first attempt got a 451; the retry comes after its backoff (5 s).
    let path = link_path(&sink.next(Duration::from_secs(30)), &s);
    let bad = form_post(
        &s,
        &path,
        "outcome=approved&form=%7B%22acknowledged%22%3A1%7D",
    );
    assert_eq!(bad.status, 422, "{}", bad.text);
    assert!(bad.text.contains("Not recorded"), "{}", bad.text);
    let good = form_post(
        &s,
        &path,
        "outcome=approved&form=%7B%22acknowledged%22%3Atrue%7D",
    );
    assert_eq!(good.status, 200, "{}", good.text);
    let wf = wait_status(&s, &id, "COMPLETED", None);
    assert_eq!(
        wf["result"]["steps"]["signoff"]["task_result"]["acknowledged"],
        true
    );
}

#[test]
fn each_reminder_of_a_task_sends_its_mail_again_with_a_link_of_its_own() {
    let sink = Sink::start(0);
    let s = server_with(&sink);
    let mut bundle = human_step(None);
    let step = &mut bundle["workflow"]["steps"][0];
    step["remind_after_seconds"] = json!(1);
    step["remind_interval_seconds"] = json!(1);
    step["max_reminders"] = json!(1);
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .expect("intent_id")
        .to_string();
    let first = sink.next(Duration::from_secs(20));
    let reminder = sink.next(Duration::from_secs(20));
    assert!(first.contains("Subject: Ship 4.0?\r\n"), "{first}");
    assert!(
        reminder.contains("Subject: Reminder: Ship 4.0?\r\n"),
        "{reminder}"
    );
    let (a, b) = (link_path(&first, &s), link_path(&reminder, &s));
    assert_ne!(a, b, "every mail carries its own token");
    // Either link decides; after that the other says the task no longer waits.
    assert_eq!(form_post(&s, &b, "outcome=approved").status, 200);
    wait_status(&s, &id, "COMPLETED", None);
    let other = send(s.req_anon("GET", &a), None);
    assert_eq!(other.status, 410, "{}", other.text);
    assert!(other.text.contains("no longer waits"), "{}", other.text);
}
