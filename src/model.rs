//! Plain domain vocabulary shared by every layer: intent statuses, waiting reasons and event
//! types, with their wire spellings. Nothing here knows about SQL, HTTP or the rules of which
//! status may follow which (that table lives in `service::lifecycle`).

use std::fmt;

/// The status of an intent (AXP `intent.lifecycle.v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    Created,
    Submitted,
    Delivered,
    Acknowledged,
    InProgress,
    Waiting,
    Completed,
    Failed,
    Canceled,
    TimedOut,
}

impl Status {
    pub const ALL: [Status; 10] = [
        Status::Created,
        Status::Submitted,
        Status::Delivered,
        Status::Acknowledged,
        Status::InProgress,
        Status::Waiting,
        Status::Completed,
        Status::Failed,
        Status::Canceled,
        Status::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "CREATED",
            Status::Submitted => "SUBMITTED",
            Status::Delivered => "DELIVERED",
            Status::Acknowledged => "ACKNOWLEDGED",
            Status::InProgress => "IN_PROGRESS",
            Status::Waiting => "WAITING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::Canceled => "CANCELED",
            Status::TimedOut => "TIMED_OUT",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Terminal statuses never change again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Status::Completed | Status::Failed | Status::Canceled | Status::TimedOut
        )
    }

    /// The event type recorded when an intent enters this status.
    pub fn event_type(self) -> &'static str {
        match self {
            Status::Created => "intent.created",
            Status::Submitted => "intent.submitted",
            Status::Delivered => "intent.delivered",
            Status::Acknowledged => "intent.acknowledged",
            Status::InProgress => "intent.in_progress",
            Status::Waiting => "intent.waiting",
            Status::Completed => "intent.completed",
            Status::Failed => "intent.failed",
            Status::Canceled => "intent.canceled",
            Status::TimedOut => "intent.timed_out",
        }
    }

    /// The coarse status older AXME clients read (`legacy_status`).
    pub fn legacy(self) -> &'static str {
        match self {
            Status::Created | Status::Submitted | Status::Delivered | Status::Acknowledged => {
                "accepted"
            }
            Status::InProgress => "running",
            Status::Waiting => "blocked",
            Status::Completed => "done",
            Status::Failed | Status::Canceled | Status::TimedOut => "failed",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a WAITING intent waits. A WAITING intent always carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WaitingReason {
    Human,
    Tool,
    Agent,
    Time,
}

impl WaitingReason {
    pub const ALL: [WaitingReason; 4] = [
        WaitingReason::Human,
        WaitingReason::Tool,
        WaitingReason::Agent,
        WaitingReason::Time,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WaitingReason::Human => "WAITING_FOR_HUMAN",
            WaitingReason::Tool => "WAITING_FOR_TOOL",
            WaitingReason::Agent => "WAITING_FOR_AGENT",
            WaitingReason::Time => "WAITING_FOR_TIME",
        }
    }

    pub fn parse(s: &str) -> Option<WaitingReason> {
        WaitingReason::ALL.into_iter().find(|w| w.as_str() == s)
    }
}

/// How an agent receives the intents addressed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryMode {
    Stream,
    Poll,
    /// Signed webhook push (`push` is accepted as a synonym).
    Http,
    Inbox,
    Internal,
}

impl DeliveryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Stream => "stream",
            DeliveryMode::Poll => "poll",
            DeliveryMode::Http => "http",
            DeliveryMode::Inbox => "inbox",
            DeliveryMode::Internal => "internal",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryMode> {
        Some(match s {
            "stream" => DeliveryMode::Stream,
            "poll" => DeliveryMode::Poll,
            "http" | "push" => DeliveryMode::Http,
            "inbox" => DeliveryMode::Inbox,
            "internal" => DeliveryMode::Internal,
            _ => return None,
        })
    }
}

/// What a push delivery carries: the intent to its `http` handler, or an event to an observer's
/// subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryKind {
    Handler,
    Subscription,
}

impl DeliveryKind {
    pub const ALL: [DeliveryKind; 2] = [DeliveryKind::Handler, DeliveryKind::Subscription];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryKind::Handler => "handler",
            DeliveryKind::Subscription => "subscription",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryKind> {
        DeliveryKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where a push delivery stands: waiting for an attempt, delivered, failed without being worth
/// retrying (its intent ended), or dead-lettered after its last attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    DeadLettered,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 4] = [
        DeliveryStatus::Pending,
        DeliveryStatus::Delivered,
        DeliveryStatus::Failed,
        DeliveryStatus::DeadLettered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::DeadLettered => "dead_lettered",
        }
    }

    pub fn parse(s: &str) -> Option<DeliveryStatus> {
        DeliveryStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// What an API key may do: everything (key management included), or act for the agents it is
/// bound to (`service::access`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyRole {
    Admin,
    Agent,
}

impl KeyRole {
    pub const ALL: [KeyRole; 2] = [KeyRole::Admin, KeyRole::Agent];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyRole::Admin => "admin",
            KeyRole::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<KeyRole> {
        KeyRole::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// Why an owner sees an intent in its inbox (a thread's role): it handles it, it is a human
/// task of the owner (`task`, an `approver`, a `delegate` it was handed to), the owner handed
/// the task on (`delegated`), or the intent answers to the owner (`reply_to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ThreadRole {
    Handler,
    Task,
    Approver,
    Delegate,
    Delegated,
    ReplyTo,
}

impl ThreadRole {
    pub const ALL: [ThreadRole; 6] = [
        ThreadRole::Handler,
        ThreadRole::Task,
        ThreadRole::Approver,
        ThreadRole::Delegate,
        ThreadRole::Delegated,
        ThreadRole::ReplyTo,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ThreadRole::Handler => "handler",
            ThreadRole::Task => "task",
            ThreadRole::Approver => "approver",
            ThreadRole::Delegate => "delegate",
            ThreadRole::Delegated => "delegated",
            ThreadRole::ReplyTo => "reply_to",
        }
    }

    pub fn parse(s: &str) -> Option<ThreadRole> {
        ThreadRole::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether the thread is a task of its owner (listed by `/v1/me/tasks`, decided by approve
    /// or reject). `store::threads` spells the same set in SQL for the task listing.
    pub fn is_task(self) -> bool {
        matches!(
            self,
            ThreadRole::Task | ThreadRole::Approver | ThreadRole::Delegate
        )
    }
}

/// What a runtime timer does when it fires: remind the handler (and set the next reminder or
/// the escalation), escalate to a new handler, or complete an intent waiting for time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    Remind,
    Escalate,
    Complete,
}

impl TimerKind {
    pub const ALL: [TimerKind; 3] = [TimerKind::Remind, TimerKind::Escalate, TimerKind::Complete];

    pub fn as_str(self) -> &'static str {
        match self {
            TimerKind::Remind => "remind",
            TimerKind::Escalate => "escalate",
            TimerKind::Complete => "complete",
        }
    }

    pub fn parse(s: &str) -> Option<TimerKind> {
        TimerKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where one run of a workflow step stands: running, or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepStatus {
    Running,
    Completed,
    Failed,
    TimedOut,
    Canceled,
}

impl StepStatus {
    pub const ALL: [StepStatus; 5] = [
        StepStatus::Running,
        StepStatus::Completed,
        StepStatus::Failed,
        StepStatus::TimedOut,
        StepStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Running => "running",
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
            StepStatus::TimedOut => "timed_out",
            StepStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<StepStatus> {
        StepStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An approve or reject decision on a human task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    Reject,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Reject => "reject",
        }
    }

    /// The spellings a task's `allowed_outcomes` may use for this decision.
    pub fn outcomes(self) -> [&'static str; 2] {
        match self {
            Decision::Approve => ["approve", "approved"],
            Decision::Reject => ["reject", "rejected"],
        }
    }
}

/// Event types that record something other than a status change.
pub mod event_type {
    pub const TRANSFER: &str = "intent.transfer";
    pub const REMINDER: &str = "intent.reminder";
    pub const ESCALATED: &str = "intent.escalated";
    pub const DELIVERY_FAILED: &str = "intent.delivery_failed";
}

/// The addresses of the built-in internal agents (served by `runtime::builtin`). The domain
/// names them for the rules that single them out (the approval agent opens its own task).
pub mod builtin {
    pub const DELAY: &str = "agent://internal/delay";
    pub const APPROVAL: &str = "agent://internal/approval";
    pub const NOTIFY: &str = "agent://internal/notify";
    /// The handler of a scenario's intent: the workflow engine (`service::workflow`), which
    /// carries each step to its agent or human on an intent of its own.
    pub const WORKFLOW: &str = "agent://internal/workflow";
}

/// How a push the address guard refused says so in its error (`webhook::target`), which agent
/// keys are shown as it is (`http::wire`).
pub const PUSH_REFUSED: &str = "refused by axme";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_spellings_round_trip() {
        for s in Status::ALL {
            assert_eq!(Status::parse(s.as_str()), Some(s));
            assert_eq!(
                s.event_type(),
                format!("intent.{}", s.as_str().to_lowercase())
            );
        }
        assert_eq!(Status::parse("completed"), None);
    }

    #[test]
    fn delivery_spellings_round_trip() {
        for k in DeliveryKind::ALL {
            assert_eq!(DeliveryKind::parse(k.as_str()), Some(k));
        }
        for s in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(DeliveryStatus::parse("PENDING"), None);
    }

    #[test]
    fn waiting_reasons_round_trip() {
        for w in WaitingReason::ALL {
            assert_eq!(WaitingReason::parse(w.as_str()), Some(w));
        }
        assert_eq!(WaitingReason::parse("WAITING"), None);
    }
}
