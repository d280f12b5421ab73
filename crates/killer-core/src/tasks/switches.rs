//! Switched-off classes: reloaded whole when the durable record or the
//! channel says they changed (and at every full load), then acted on by
//! [`crate::tasks::stops::switches_seen`]. No command per poll.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tracing::debug;

use crate::error::Result;
use crate::schema::commands;
use crate::shared::Shared;
use crate::switch;
use crate::tasks::stops::switches_seen;

/// Reads the switches hash (one round trip) and applies it.
pub(crate) async fn reload(shared: &Arc<Shared>) -> Result<()> {
    let mut con = shared.link.get().await?;
    let ((secs, micros), raw): ((u64, u64), HashMap<String, String>) =
        commands::load_switches(&shared.keys)
            .query_async(&mut con)
            .await?;
    let server_now = secs * 1000 + micros / 1000;
    switches_seen(shared, switch::from_redis(raw, server_now, Instant::now()));
    Ok(())
}

/// As [`reload`], for pub/sub: a failure is left to the poll, which sees
/// the same change in the durable record.
pub(crate) async fn reload_soon(shared: Arc<Shared>) {
    if let Err(e) = reload(&shared).await {
        debug!(
            event = "switches.reload_failed",
            "switched-off classes not reloaded now (the poll will): {e}"
        );
    }
}
