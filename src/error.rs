//! The one error type of the domain. Every layer returns it; the HTTP layer turns it into a status
//! code and the AXME error body in exactly one place (`http::response`). Variants say what went
//! wrong in domain terms, never in terms of a library, so a client always gets a precise answer:
//! the field that was wrong, the rule it broke, or the conflict it ran into.

use std::fmt;

/// What went wrong, in terms a client can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The request body is not JSON, or not the JSON shape a route reads at all (400).
    Malformed { reason: String },
    /// A field broke a schema rule (422). `field` is a dotted path such as `human_task.title`.
    Invalid {
        code: &'static str,
        field: String,
        reason: String,
    },
    /// A header or query parameter is wrong in a way that is not a schema rule (400).
    BadRequest { field: String, reason: String },
    /// No credential, or one that is not a live key (401).
    Unauthorized { reason: String },
    /// The credential is valid but may not do this (403).
    Forbidden { reason: String },
    /// The path exists, but not with this method (405).
    MethodNotAllowed { allow: Vec<&'static str> },
    /// The thing named does not exist (or the caller may not know it does) (404).
    NotFound { what: &'static str, id: String },
    /// The request conflicts with the current state: an illegal lifecycle move, a terminal
    /// intent, an idempotency key reused with another body (409).
    Conflict { code: &'static str, message: String },
    /// A body or field is over its size limit (413).
    TooLarge { field: String, limit: usize },
    /// The key sent more requests than its rate allows (429 with `Retry-After` seconds).
    RateLimited { limit: u64, retry_after: u64 },
    /// The key holds as many of something (open streams) as it may (429).
    TooMany { reason: String },
    /// The key (or the event) is at a quota of the server: `limit` names it, `value` is its
    /// setting and `flag` the flag that sets it (429 with `Retry-After`).
    QuotaExceeded {
        limit: &'static str,
        value: u64,
        flag: &'static str,
        reason: String,
    },
    /// The request target (path and query) is longer than the server reads (414).
    UriTooLong { limit: usize },
    /// The request head (request line and headers) is larger than the server reads (431).
    HeadTooLarge { limit: usize },
    /// The request body did not arrive within the request deadline (408; the connection closes).
    RequestTimeout { seconds: u64 },
    /// The server cannot take writes right now (disk full, read-only database, shutting down)
    /// (503).
    Unavailable { reason: String },
    /// A bug or an unexpected storage failure (500). The message is logged, not shown in full.
    Internal { reason: String },
}

impl Error {
    /// A schema violation of `field` under the AXP code `schema_invalid`.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Invalid {
            code: "schema_invalid",
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn internal(reason: impl Into<String>) -> Error {
        Error::Internal {
            reason: reason.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Error {
        Error::Conflict {
            code,
            message: message.into(),
        }
    }

    /// The AXP error code of this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Malformed { .. } => "invalid_json",
            Error::Invalid { code, .. } => code,
            Error::BadRequest { .. } => "bad_request",
            Error::Unauthorized { .. } => "auth_failed",
            Error::Forbidden { .. } => "forbidden",
            Error::NotFound { what, .. } => match *what {
                "intent" => "intent_not_found",
                "agent" => "agent_not_found",
                "route" => "route_not_found",
                "thread" => "thread_not_found",
                "key" => "key_not_found",
                "service_account" => "service_account_not_found",
                "user" => "user_not_found",
                "invite" => "invite_not_found",
                "upload" => "upload_not_found",
                "schema" => "schema_not_found",
                _ => "not_found",
            },
            Error::MethodNotAllowed { .. } => "method_not_allowed",
            Error::Conflict { code, .. } => code,
            Error::TooLarge { .. } => "payload_too_large",
            Error::RateLimited { .. } | Error::TooMany { .. } => "rate_limited",
            Error::QuotaExceeded { .. } => "quota_exceeded",
            Error::UriTooLong { .. } => "uri_too_long",
            Error::RequestTimeout { .. } => "request_timeout",
            Error::HeadTooLarge { .. } => "request_head_too_large",
            Error::Unavailable { .. } => "unavailable",
            Error::Internal { .. } => "internal_error",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Malformed { reason } => write!(f, "malformed request body: {reason}"),
            Error::Invalid { field, reason, .. } => write!(f, "{field}: {reason}"),
            Error::BadRequest { field, reason } => write!(f, "{field}: {reason}"),
            Error::Unauthorized { reason } => write!(f, "{reason}"),
            Error::Forbidden { reason } => write!(f, "{reason}"),
            Error::NotFound { what, id } => write!(f, "{what} not found: {id}"),
            Error::MethodNotAllowed { allow } => {
                write!(
                    f,
                    "method not allowed; this path accepts {}",
                    allow.join(", ")
                )
            }
            Error::Conflict { message, .. } => write!(f, "{message}"),
            Error::TooLarge { field, limit } => {
                write!(f, "{field} is larger than the limit of {limit} bytes")
            }
            Error::RateLimited { limit, retry_after } => write!(
                f,
                "rate limit of {limit} requests per second exceeded; retry in {retry_after} s"
            ),
            Error::TooMany { reason } => write!(f, "{reason}"),
            Error::QuotaExceeded { reason, .. } => write!(f, "{reason}"),
            Error::UriTooLong { limit } => {
                write!(
                    f,
                    "the request path and query are longer than {limit} bytes"
                )
            }
            Error::HeadTooLarge { limit } => {
                write!(f, "the request head is larger than {limit} bytes")
            }
            Error::RequestTimeout { seconds } => write!(
                f,
                "the request body did not arrive within {seconds} s (--request-timeout-seconds)"
            ),
            Error::Unavailable { reason } => write!(f, "service unavailable: {reason}"),
            Error::Internal { .. } => write!(f, "internal error"),
        }
    }
}

impl std::error::Error for Error {}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        use rusqlite::ErrorCode;
        if let rusqlite::Error::SqliteFailure(ref code, _) = e {
            match code.code {
                ErrorCode::DiskFull => {
                    return Error::Unavailable {
                        reason: "the database disk is full".into(),
                    }
                }
                ErrorCode::ReadOnly => {
                    return Error::Unavailable {
                        reason: "the database is read-only".into(),
                    }
                }
                // EROFS, EIO, ENOSPC reported by a write or a sync: the storage under the
                // database failed, not the request. The transaction was rolled back.
                ErrorCode::SystemIoFailure => {
                    return Error::Unavailable {
                        reason: format!(
                            "the database storage failed ({}); nothing of this request was \
                             stored",
                            io_error_name(code.extended_code)
                        ),
                    }
                }
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    return Error::Unavailable {
                        reason: "the database is busy".into(),
                    }
                }
                _ => {}
            }
        }
        Error::internal(format!("sqlite: {e}"))
    }
}

/// The name of an `SQLITE_IOERR_*` extended result code, for an operator reading the error.
fn io_error_name(extended: std::ffi::c_int) -> String {
    use rusqlite::ffi;
    let name = match extended {
        ffi::SQLITE_IOERR_WRITE => "write error",
        ffi::SQLITE_IOERR_FSYNC | ffi::SQLITE_IOERR_DIR_FSYNC => "sync error",
        ffi::SQLITE_IOERR_READ | ffi::SQLITE_IOERR_SHORT_READ => "read error",
        ffi::SQLITE_IOERR_TRUNCATE => "truncate error",
        ffi::SQLITE_IOERR_SHMOPEN | ffi::SQLITE_IOERR_SHMSIZE | ffi::SQLITE_IOERR_SHMMAP => {
            "shared-memory error"
        }
        _ => "I/O error",
    };
    format!("{name}, SQLite code {extended}")
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Error {
        Error::internal(format!("json: {e}"))
    }
}
