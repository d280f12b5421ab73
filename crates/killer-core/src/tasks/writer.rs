//! Job statuses (`cancelled` / `finished`), written only for jobs someone
//! asked to cancel, so plain jobs cost no Redis command at all. A write
//! that fails is retried on a new connection (after a failover, to the new
//! master) until Redis takes it.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::sleep;
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::error::Result;
use crate::link::Link;
use crate::report::now_ms;
use crate::schema::commands;
use crate::shared::{Shared, StatusWrite};
use crate::tasks::{BACKOFF_CAP, BACKOFF_FIRST};

pub(crate) async fn writer(
    shared: &Arc<Shared>,
    link: &Link,
    mut writes: mpsc::UnboundedReceiver<StatusWrite>,
) {
    let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_CAP);
    while let Some(w) = writes.recv().await {
        let mut failures = 0u32;
        loop {
            match write_status(shared, link, &w).await {
                Ok(()) => {
                    backoff.reset();
                    break;
                }
                Err(e) => {
                    // A new connection each time: after a failover, to the
                    // new master.
                    link.reset().await;
                    failures += 1;
                    if failures == 3 {
                        warn!(jid = %w.ids.join(","), event = "status.retry", "cannot record the job's status yet ({e}); retrying until Redis takes it");
                    } else {
                        debug!(
                            event = "status.retry",
                            "status write failed ({e}); retrying"
                        );
                    }
                    sleep(backoff.next_delay()).await;
                }
            }
        }
    }
    // Every sender is gone only when the watcher is being dropped.
    std::future::pending::<()>().await;
}

async fn write_status(shared: &Arc<Shared>, link: &Link, w: &StatusWrite) -> Result<()> {
    let mut con = link.get().await?;
    let () = commands::write_status(
        &shared.keys,
        &w.ids,
        w.status,
        &w.class,
        now_ms(),
        shared.settings.cancel_ttl,
    )
    .query_async(&mut con)
    .await?;
    Ok(())
}
