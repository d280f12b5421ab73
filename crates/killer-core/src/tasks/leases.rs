//! A lease's life on the watcher's runtime: taken with SET NX PX, renewed
//! every ttl/3 by a compare-and-expire script, released with
//! compare-and-delete. A renewal that finds another token ends the lease at
//! once; one that fails (a dropped connection, READONLY from a master that a
//! failover demoted) is retried on a fresh connection, re-resolved through
//! the sentinels, for as long as the key surely still holds. Then the holder
//! hears of the loss through the dispatcher (Event::LeaseLost) and must stop.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
    let sent = Instant::now();
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
        sent,
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

/// Renews lease `id` until it is released or lost. `renewed`: when the last
/// command that set its expiry was *sent*, so the key holds until at least
/// `renewed + ttl` by Redis's clock whatever the round trip took.
async fn renew(
    shared: Arc<Shared>,
    id: u64,
    name: String,
    key: String,
    token: String,
    ttl: Duration,
    mut renewed: Instant,
) {
    let period = ttl / 3;
    // Given up this long before the key could expire: the holder must hear
    // of the loss while the lease is still its own.
    let margin = period / 2;
    let mut wait = period;
    let why = loop {
        sleep(wait).await;
        let left = ttl.saturating_sub(renewed.elapsed()).saturating_sub(margin);
        if left.is_zero() {
            break "no renewal landed in time".to_owned();
        }
        let sent = Instant::now();
        let attempt = async {
            let mut con = shared.link.get().await?;
            let answer: i64 = commands::renew_lease(&key, &token, ttl)
                .invoke_async(&mut con)
                .await?;
            Ok::<_, Error>(answer)
        };
        let failure = match timeout(period.min(left), attempt).await {
            Ok(Ok(1)) => {
                renewed = sent;
                wait = period;
                continue;
            }
            Ok(Ok(_)) => break "another holder has it (or it expired)".to_owned(),
            Ok(Err(e)) => format!("renewal failed: {e}"),
            Err(_) => format!(
                "renewal took longer than {:.1}s",
                period.min(left).as_secs_f64()
            ),
        };
        shared.link.reset().await;
        wait = wait_after_error(period);
        if renewed.elapsed() + margin + wait >= ttl {
            break failure;
        }
        warn!(event = "lease.retry", lease = %name, "lease {name}: {failure}; retrying on a new connection");
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

/// How long a failed renewal waits before the next try: a failover takes
/// Sentinel a moment to announce, a reconnect a round trip.
fn wait_after_error(period: Duration) -> Duration {
    (period / 4).min(Duration::from_millis(250))
}
