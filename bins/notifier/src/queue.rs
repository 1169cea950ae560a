//! Queuing planned notifications in one transaction: each is new, joins an
//! open group (whose body is then made again, listing every incident it
//! tells of), or was queued before.

use std::time::Duration;

use awfdrs_runtime::Context;
use awfdrs_store::{NewNotification, Queued, StoreError, Work};

use crate::bodies;

/// The grouping window of `ctx`.
pub(crate) fn window(ctx: &Context) -> Duration {
    Duration::from_millis(ctx.config.notifications.group_window_ms)
}

/// How long a notification with a group key waits for others to join.
pub(crate) fn group_wait(ctx: &Context) -> Duration {
    Duration::from_millis(ctx.config.notifications.group_wait_ms)
}

/// Queues `planned` in `work`; returns how many made a notification, and
/// how many joined a group.
pub(crate) async fn queue(
    work: &mut Work,
    planned: &[NewNotification],
    window: Duration,
) -> Result<(usize, usize), StoreError> {
    let (mut made, mut joined) = (0, 0);
    for n in planned {
        match work.queue_notification(n, window).await? {
            Queued::New => made += 1,
            Queued::Joined {
                id,
                kind,
                lead_body,
            } => {
                let members = work.group_members(id).await?;
                let lead = serde_json::from_str(&lead_body).unwrap_or_default();
                let body = bodies::grouped(&kind, &lead, &members);
                work.regroup(id, &body, members.len()).await?;
                joined += 1;
            }
            Queued::Known => {}
        }
    }
    Ok((made, joined))
}

/// Queues `planned` in a transaction of its own, retried while the
/// failure is transient; returns how many made or changed a notification.
pub(crate) async fn commit(
    ctx: &Context,
    planned: &[NewNotification],
) -> Result<usize, StoreError> {
    let window = window(ctx);
    let once = || async {
        let mut work = ctx.store.begin_work().await?;
        let counts = queue(&mut work, planned, window).await?;
        // Notifications are delivered from their rows: no outbox rows.
        let _none = work.commit().await?;
        Ok::<_, StoreError>(counts)
    };
    let (made, joined) = awfdrs_runtime::retry_transient("notification transaction", once).await?;
    ctx.metrics.notifications_grouped.inc_by(joined as u64);
    Ok(made + joined)
}
