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
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::task::AbortHandle;

use crate::error::{Error, Result};

pub const MAX_LEASE_NAME_BYTES: usize = 200;

pub(crate) struct Held {
    pub(crate) key: String,
    pub(crate) token: String,
    pub(crate) renewal: AbortHandle,
}

/// The leases this process holds, by id.
#[derive(Default)]
pub(crate) struct Leases {
    next_id: AtomicU64,
    held: Mutex<HashMap<u64, Held>>,
}

impl Leases {
    pub(crate) fn held(&self) -> MutexGuard<'_, HashMap<u64, Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new holding's id, and the token no other holder has.
    pub(crate) fn next(&self) -> (u64, String) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        (id, unique_token(id))
    }
}

/// The shortest lease: renewed every ttl/3, it must outlast a round trip.
pub const MIN_LEASE_TTL: Duration = Duration::from_millis(300);

pub fn validate_lease(name: &str, ttl: Duration) -> Result<()> {
    if name.is_empty() || name.len() > MAX_LEASE_NAME_BYTES {
        return Err(Error::InvalidArgument(format!(
            "a lease name must be 1 to {MAX_LEASE_NAME_BYTES} bytes, got {name:?}"
        )));
    }
    if ttl < MIN_LEASE_TTL {
        return Err(Error::InvalidArgument(format!(
            "ttl must be at least {} seconds, got {}",
            MIN_LEASE_TTL.as_secs_f64(),
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
