//! Exclusive leases: work only while you own a named resource.
//!
//! A lease is a Redis key holding a token unique to this holder (SET NX
//! PX). A task on the watcher's runtime renews it every ttl/3 with a
//! compare-and-expire script. A renewal that fails, times out, or finds
//! another token ends the lease at once: the holder is told through the
//! dispatcher (Event::LeaseLost) and must stop; it never keeps working on a
//! lease it cannot prove it still has. Release is compare-and-delete.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;
use tokio::task::AbortHandle;
use tokio::time::{sleep, timeout};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::watcher::Shared;

pub const MAX_LEASE_NAME_BYTES: usize = 200;

/// KEYS[1] lease; ARGV[1] token, ARGV[2] ttl ms. 1 if still ours (renewed).
const RENEW_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"#;

/// KEYS[1] lease; ARGV[1] token. Deletes the key only if it is still ours.
const RELEASE_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"#;

struct Held {
    key: String,
    token: String,
    renewal: AbortHandle,
}

#[derive(Default)]
pub(crate) struct Leases {
    next_id: AtomicU64,
    held: Mutex<HashMap<u64, Held>>,
}

impl Leases {
    fn held(&self) -> MutexGuard<'_, HashMap<u64, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub fn validate_lease(name: &str, ttl: Duration) -> Result<()> {
    if name.is_empty() || name.len() > MAX_LEASE_NAME_BYTES {
        return Err(Error::InvalidArgument(format!(
            "a lease name must be 1 to {MAX_LEASE_NAME_BYTES} bytes, got {name:?}"
        )));
    }
    if ttl < Duration::from_millis(300) {
        return Err(Error::InvalidArgument(format!(
            "ttl must be at least 0.3 seconds, got {}",
            ttl.as_secs_f64()
        )));
    }
    Ok(())
}

fn unique_token(id: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{}:{}:{nanos:x}:{id}", host(), std::process::id())
}

fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".into())
}

/// Tries once to take lease `name`. Some(id) when taken (renewed from now
/// on until `release` or loss), None when another holder has it.
pub(crate) async fn acquire(
    shared: &Arc<Shared>,
    name: &str,
    ttl: Duration,
) -> Result<Option<u64>> {
    validate_lease(name, ttl)?;
    let key = shared.keys.lease(name);
    let id = shared.leases.next_id.fetch_add(1, Ordering::Relaxed) + 1;
    let token = unique_token(id);
    let mut con = shared.link.get().await?;
    let set: Option<String> = redis::cmd("SET")
        .arg(&key)
        .arg(&token)
        .arg("NX")
        .arg("PX")
        .arg(ttl.as_millis() as u64)
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
    let _: i64 = Script::new(RELEASE_SCRIPT)
        .key(&held.key)
        .arg(&held.token)
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
            let renewed: i64 = Script::new(RENEW_SCRIPT)
                .key(&key)
                .arg(&token)
                .arg(ttl.as_millis() as u64)
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
}
