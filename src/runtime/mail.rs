//! The mail task: once a second (or sooner when woken by nothing: mails are rare) it takes the
//! due task emails from the outbox (`service::email`, one write that also counts the attempt),
//! hands each to the SMTP relay on a blocking thread, outside any transaction, and records
//! what the relay said. A crash between the two leaves the attempt counted and the mail due
//! again after its backoff: a mail may go out twice, never not at all while attempts remain.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::smtp::{self, Message};
use super::smtp_url::SmtpUrl;
use crate::service::email;
use crate::store::Store;

/// Mails taken per pass.
const BATCH: usize = 16;
const PASS: Duration = Duration::from_secs(1);

/// Sends due task emails until `shutdown` flips; does nothing without `--smtp-url`.
pub async fn run(
    store: Store,
    relay: Option<SmtpUrl>,
    from: String,
    public_url: String,
    mut shutdown: watch::Receiver<bool>,
) {
    let Some(url) = relay else {
        return;
    };
    let settings = Arc::new((url, from));
    loop {
        let base = public_url.clone();
        let due = store.write(move |c| email::take_due(c, &base, BATCH)).await;
        let due = due.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "taking due mails failed; retrying");
            Vec::new()
        });
        for m in due {
            let s = settings.clone();
            let sent = tokio::task::spawn_blocking(move || {
                let msg = Message {
                    from: &s.1,
                    to: &m.to,
                    subject: &m.subject,
                    text: &m.text,
                };
                (m.id, smtp::send(&s.0, &msg))
            })
            .await;
            let Ok((id, outcome)) = sent else {
                continue;
            };
            let recorded = match outcome {
                Ok(()) => store.write(move |c| email::sent(c, id)).await,
                Err(e) => {
                    tracing::warn!(mail = id, error = %e, "the SMTP relay did not take a mail");
                    store.write(move |c| email::failed(c, id, &e)).await
                }
            };
            if let Err(e) = recorded {
                tracing::warn!(mail = id, error = %e, "recording a mail's outcome failed");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(PASS) => {}
            _ = shutdown.changed() => return,
        }
    }
}
