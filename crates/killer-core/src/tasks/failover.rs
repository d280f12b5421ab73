//! Behind Sentinel: every connection is reset as soon as a sentinel
//! announces `+switch-master` for our master, so nothing keeps talking to
//! the old one (READONLY answers and lost connections do the same, later).

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::time::{sleep, timeout};
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::error::{Error, Result};
use crate::link::Link;
use crate::redis_config::Server;
use crate::schema::commands;
use crate::shared::Shared;
use crate::tasks::{BACKOFF_CAP, BACKOFF_FIRST};

/// With sentinels: resets every connection as soon as a sentinel announces
/// `+switch-master` for our master, so that nothing keeps talking to the
/// old one (READONLY and lost connections do the same, later).
pub(crate) async fn failover_watch(shared: &Arc<Shared>, link: &Link) {
    let Server::Sentinel(sentinels) = &link.config().server else {
        return std::future::pending().await;
    };
    let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_CAP);
    loop {
        let why = match watch_sentinel(shared, link, &sentinels.master, &mut backoff).await {
            Ok(()) => "sentinel subscription closed".to_owned(),
            Err(e) => e.to_string(),
        };
        debug!(event = "sentinel.down", "failover watch interrupted: {why}");
        sleep(backoff.next_delay()).await;
    }
}

async fn watch_sentinel(
    shared: &Arc<Shared>,
    link: &Link,
    master: &str,
    backoff: &mut Backoff,
) -> Result<()> {
    let t = shared.settings.network_timeout;
    let client = match link.sentinel().await {
        Some(c) => c?,
        None => return Ok(()),
    };
    let mut pubsub = timeout(t, client.get_async_pubsub())
        .await
        .map_err(|_| Error::Connection("sentinel subscribe timed out".into()))?
        .map_err(|e| link.error(e))?;
    timeout(t, pubsub.subscribe(commands::SWITCH_MASTER))
        .await
        .map_err(|_| Error::Connection("sentinel subscribe timed out".into()))?
        .map_err(|e| link.error(e))?;
    backoff.reset();
    let mut messages = pubsub.on_message();
    while let Some(msg) = messages.next().await {
        // "<master name> <old ip> <old port> <new ip> <new port>"
        let Ok(text) = msg.get_payload::<String>() else {
            continue;
        };
        if text.split(' ').next() == Some(master) {
            warn!(
                event = "redis.failover",
                "sentinels moved master {master} ({text}); reconnecting to the new master"
            );
            link.reset().await;
            shared.resubscribe.notify_one();
        }
    }
    Ok(())
}
