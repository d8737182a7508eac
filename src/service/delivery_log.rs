//! The delivery log (`/v1/deliveries`) as a key may see it: a listing, one delivery with its
//! attempts, a replay. An agent key sees only pushes to its own agents and subscriptions
//! (`Access::delivery`), and lists only the deliveries of one intent it may read. Each operation
//! runs its access check inside the read or transaction that reads the rows.

use super::access::Access;
use super::deliveries::{self, RetryPolicy, WithAttempts};
use crate::store::deliveries::ListFilter;
use crate::store::Store;
use crate::Error;

/// One page of the log, newest first, and the cursor of the next page.
pub async fn list(
    store: &Store,
    access: &Access,
    filter: ListFilter,
) -> Result<(Vec<WithAttempts>, Option<i64>), Error> {
    let access = access.clone();
    store
        .read(move |c| {
            if !access.is_admin() {
                match &filter.intent_id {
                    Some(id) => {
                        access.read(c, id)?;
                    }
                    None => access.require_filter(&[None], "listing deliveries")?,
                }
            }
            let (mut rows, next) = deliveries::list(c, filter)?;
            rows.retain(|row| access.delivery(c, &row.0).is_ok());
            Ok((rows, next))
        })
        .await
}

/// One delivery with its attempts (404 when the key may not see it).
pub async fn get(store: &Store, access: &Access, delivery_id: &str) -> Result<WithAttempts, Error> {
    let (access, id) = (access.clone(), delivery_id.to_string());
    store
        .read(move |c| {
            let (d, a) = deliveries::get_with_attempts(c, &id)?;
            access.delivery(c, &d)?;
            Ok((d, a))
        })
        .await
}

/// Queues a delivery again (see `deliveries::replay`) and returns it as it is after.
pub async fn replay(
    store: &Store,
    access: &Access,
    delivery_id: &str,
    policy: &RetryPolicy,
) -> Result<WithAttempts, Error> {
    let (access, id, policy) = (access.clone(), delivery_id.to_string(), policy.clone());
    store
        .write(move |c| {
            access.delivery(c, &deliveries::get(c, &id)?)?;
            deliveries::replay(c, &id, &policy)?;
            deliveries::get_with_attempts(c, &id)
        })
        .await
}
