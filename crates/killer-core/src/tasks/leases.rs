//! A lease's life on the watcher's runtime: taken with SET NX PX, renewed
//! every ttl/3 by a compare-and-expire script, released with
//! compare-and-delete. A renewal that fails, times out or finds another
//! token ends the lease at once: the holder hears it through the dispatcher
//! (Event::LeaseLost) and must stop.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{sleep, timeout};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::lease::{validate_lease, Held};
use crate::schema::commands;
use crate::shared::Shared;

/// Tries once to take lease `name`. Some(id) when taken (renewed from now
/// on until `release` or loss), None when another holder has it.
pub(crate) async fn acquire(
    shared: &Arc<Shared>,
    name: &str,
    ttl: Duration,
) -> Result<Option<u64>> {
    validate_lease(name, ttl)?;
    let key = shared.keys.lease(name);
    let (id, token) = shared.leases.next();
    let mut con = shared.link.get().await?;
    let set: Option<String> = commands::take_lease(&shared.keys, name, &token, ttl)
        .query_async(&mut con)
        .await?;
    if set.is_none() {
        return Ok(None);
    }
    let renewal = tokio::spawn(renew(
        shared.clone(),
        id,
        name.to_owned(),
        key.clone(),
        token.clone(),
        ttl,
    ));
    shared.leases.held().insert(
        id,
        Held {
            key,
            token,
            renewal: renewal.abort_handle(),
        },
    );
    info!(
        event = "lease.acquired",
        lease = name,
        "holding lease {name} (ttl {:.1}s)",
        ttl.as_secs_f64()
    );
    Ok(Some(id))
}

/// Ends lease `id` and deletes its key if it is still ours.
pub(crate) async fn release(shared: &Arc<Shared>, id: u64) -> Result<()> {
    let Some(held) = shared.leases.held().remove(&id) else {
        return Ok(()); // already lost
    };
    held.renewal.abort();
    let mut con = shared.link.get().await?;
    let _: i64 = commands::release_lease(&held.key, &held.token)
        .invoke_async(&mut con)
        .await?;
    Ok(())
}

async fn renew(
    shared: Arc<Shared>,
    id: u64,
    name: String,
    key: String,
    token: String,
    ttl: Duration,
) {
    let period = ttl / 3;
    let why = loop {
        sleep(period).await;
        let attempt = async {
            let mut con = shared.link.get().await?;
            let renewed: i64 = commands::renew_lease(&key, &token, ttl)
                .invoke_async(&mut con)
                .await?;
            Ok::<_, Error>(renewed)
        };
        match timeout(period, attempt).await {
            Ok(Ok(1)) => continue,
            Ok(Ok(_)) => break "another holder has it (or it expired)".to_owned(),
            Ok(Err(e)) => {
                shared.link.reset().await;
                break format!("renewal failed: {e}");
            }
            Err(_) => break format!("renewal took longer than {:.1}s", period.as_secs_f64()),
        }
    };
    shared.leases.held().remove(&id);
    warn!(event = "lease.lost", lease = %name, "lost lease {name}: {why}");
    let _ = shared.events.send(Event::LeaseLost {
        id,
        name,
        reason: why,
    });
    crate::tasks::express::for_lease(&shared);
}
