//! The durable record, polled: every `poll_interval`, one ZRANGEBYSCORE
//! over the requests recorded since its cursor, so a lost message costs at
//! most one interval and the Redis cost per process is one command per
//! interval, whatever the concurrency. After (re)connecting it reloads
//! everything recorded. It owns telling that Redis is down, and back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::sleep;
use tracing::{debug, error, info, warn};

use crate::backoff::Backoff;
use crate::error::Result;
use crate::link::Link;
use crate::schema::{commands, SWITCHES_CHANGED};
use crate::shared::Shared;
use crate::tasks::stops::cancel_seen;
use crate::tasks::{switches, BACKOFF_CAP};

/// The incremental poll re-reads this much before its cursor, so a request
/// scored a little in the past (Redis clock stepping back) is still seen.
const POLL_OVERLAP_MS: f64 = 2000.0;

pub(crate) async fn poller(
    shared: &Arc<Shared>,
    link: &Link,
    loaded: crossbeam_channel::Sender<()>,
) {
    // None: reload every request still within its TTL.
    let mut cursor: Option<f64> = None;
    let mut down = false;
    let mut first = Some(loaded);
    // While Redis is down, tries are spaced out (poll_interval up to 5 s).
    let mut backoff = Backoff::new(shared.settings.poll_interval, BACKOFF_CAP);
    let mut pause = shared.settings.poll_interval;
    let mut eviction_checked = false;
    loop {
        if first.is_none() {
            tokio::select! {
                _ = sleep(pause) => {}
                _ = shared.resync.notified() => cursor = None,
            }
        }
        let polled = match cursor {
            None => load_all(shared, link).await,
            Some(c) => load_since(shared, link, c).await,
        };
        match polled {
            Ok(next) => {
                cursor = Some(next);
                pause = shared.settings.poll_interval;
                backoff.reset();
                if !eviction_checked {
                    eviction_checked = true;
                    warn_if_evicting(link).await;
                }
                if down {
                    down = false;
                    info!(
                        event = "redis.up",
                        "Redis reachable again ({}); cancels recorded meanwhile now apply",
                        link.config()
                    );
                    shared.resubscribe.notify_one();
                }
            }
            Err(e) => {
                link.reset().await;
                cursor = None;
                pause = backoff.next_delay().max(shared.settings.poll_interval);
                if !down {
                    down = true;
                    // One line that says what to check; quiet until it is back.
                    error!(event = "redis.down", "{e}; jobs keep running, Killer retries, and cancels apply once Redis answers");
                } else {
                    debug!(event = "redis.retry", "Redis still unavailable: {e}");
                }
            }
        }
        shared.registry().expire(Instant::now());
        // Loaded, or failed to: either way Watcher::start may return.
        if let Some(loaded) = first.take() {
            let _ = loaded.send(());
        }
    }
}

/// Warns once if Redis may evict keys: under memory pressure an evicting
/// policy would drop Killer's durable record (and Sidekiq's jobs), as
/// Sidekiq itself warns. INFO rather than CONFIG, which managed Redis
/// often disables; an INFO refused says nothing.
async fn warn_if_evicting(link: &Link) {
    let Ok(mut con) = link.get().await else {
        return;
    };
    let info: redis::RedisResult<String> = commands::memory_info().query_async(&mut con).await;
    let Some(policy) = info.ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("maxmemory_policy:"))
            .map(|p| p.trim().to_owned())
    }) else {
        return;
    };
    if policy != "noeviction" {
        warn!(event = "redis.eviction", "Redis's maxmemory-policy is {policy}: under memory pressure it may evict Killer's records of cancels (and Sidekiq's jobs). Set maxmemory-policy noeviction, as Sidekiq asks");
    }
}

/// Loads every request still within its TTL, aged by the Redis clock.
/// Returns the next cursor.
async fn load_all(shared: &Arc<Shared>, link: &Link) -> Result<f64> {
    let mut con = link.get().await?;
    let ((secs, micros), entries): ((u64, u64), Vec<(String, f64)>) =
        commands::load_all(&shared.keys)
            .query_async(&mut con)
            .await?;
    let server_now = (secs * 1000 + micros / 1000) as f64;
    let ttl_ms = shared.settings.cancel_ttl.as_millis() as f64;
    for (jid, score) in entries {
        let left = score + ttl_ms - server_now;
        if left > 0.0 && jid != SWITCHES_CHANGED {
            cancel_seen(
                shared,
                &jid,
                Duration::from_millis(left as u64),
                score as u64,
            );
        }
    }
    switches::reload(shared).await?;
    Ok(server_now - POLL_OVERLAP_MS)
}

/// One command: the requests scored at or after `cursor`.
async fn load_since(shared: &Arc<Shared>, link: &Link, cursor: f64) -> Result<f64> {
    let mut con = link.get().await?;
    let entries: Vec<(String, f64)> = commands::load_since(&shared.keys, cursor)
        .query_async(&mut con)
        .await?;
    let mut next = cursor;
    let mut switched = false;
    for (jid, score) in entries {
        if jid == SWITCHES_CHANGED {
            switched = true;
        } else {
            cancel_seen(shared, &jid, shared.ttl(), score as u64);
        }
        next = next.max(score - POLL_OVERLAP_MS);
    }
    // Failing here fails the poll: the cursor stays, the change is seen again.
    if switched {
        switches::reload(shared).await?;
    }
    Ok(next)
}
