//! The mail settings of `axme serve` (flattened into `ServeConfig`): the SMTP relay human tasks
//! with `notify_email` are sent through, and their sender. The relay's password never shows in
//! `Debug` output or logs (`SmtpUrl` redacts it).

use std::fmt;

use clap::Args;

use crate::runtime::smtp_url::SmtpUrl;

/// Where task emails go out, and from whom.
#[derive(Clone, Args)]
pub struct MailSettings {
    /// SMTP relay for human tasks' emails: `smtp://[user:pass@]host[:port]` (default port 25)
    /// or `smtps://…` (TLS from the first byte, default port 465). Without it no email is sent.
    #[arg(long, env = "AXME_SMTP_URL", value_parser = SmtpUrl::parse)]
    pub smtp_url: Option<SmtpUrl>,

    /// The `From:` address of task emails.
    #[arg(long, env = "AXME_SMTP_FROM", default_value = "axme@localhost")]
    pub smtp_from: String,
}

impl Default for MailSettings {
    fn default() -> MailSettings {
        MailSettings {
            smtp_url: None,
            smtp_from: "axme@localhost".into(),
        }
    }
}

impl fmt::Debug for MailSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailSettings")
            .field("smtp_url", &self.smtp_url)
            .field("smtp_from", &self.smtp_from)
            .finish()
    }
}
