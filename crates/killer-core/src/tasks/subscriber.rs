//! Pub/sub on the cancel channel, for millisecond delivery. After each
//! (re)subscription the poller reloads everything recorded, since messages
//! published meanwhile are lost; an ACL without the channel is said once,
//! and the poll delivers alone.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{sleep, timeout};
use tracing::{debug, warn};

use crate::backoff::Backoff;
use crate::error::Error;
use crate::link::Link;
use crate::report::now_ms;
use crate::schema::SWITCHES_CHANGED;
use crate::shared::Shared;
use crate::tasks::stops::cancel_seen;
use crate::tasks::switches;
use crate::tasks::{BACKOFF_CAP, BACKOFF_FIRST};

/// How often a SUBSCRIBE refused by an ACL is tried again.
const NOPERM_RETRY: Duration = Duration::from_secs(60);

pub(crate) async fn subscriber(shared: &Arc<Shared>, link: &Link) {
    let mut backoff = Backoff::new(BACKOFF_FIRST, BACKOFF_CAP);
    let mut refused = false;
    loop {
        let why = listen(shared, link, &mut backoff).await;
        let mut pause = backoff.next_delay();
        if why.is_no_permission() {
            // An ACL without `&killer:*`: the poll still applies every
            // cancel, within poll_interval. Said once; asked again rarely.
            if !refused {
                warn!(event = "subscriber.refused", "Redis refused SUBSCRIBE to {} ({why}); cancels arrive by the poll within poll_interval instead of at once. Allow the channel: ACL rule &{}*", shared.keys.channel(), shared.settings.key_prefix);
            }
            refused = true;
            pause = NOPERM_RETRY;
        } else {
            link.reset().await;
            debug!(
                event = "subscriber.down",
                "cancel notifications interrupted: {why}"
            );
        }
        tokio::select! {
            _ = sleep(pause) => {}
            _ = shared.resubscribe.notified() => {}
        }
    }
}

/// Listens until the subscription breaks; returns why.
async fn listen(shared: &Arc<Shared>, link: &Link, backoff: &mut Backoff) -> Error {
    let t = shared.settings.network_timeout;
    let client = match link.client().await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let mut pubsub = match timeout(t, client.get_async_pubsub()).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => return link.error(e),
        Err(_) => return Error::Connection("subscribe timed out".into()),
    };
    match timeout(t, pubsub.subscribe(shared.keys.channel())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return link.error(e),
        Err(_) => return Error::Connection("subscribe timed out".into()),
    }
    backoff.reset();
    // Anything published while we were not listening is in the durable record.
    shared.resync.notify_one();
    let mut messages = pubsub.on_message();
    loop {
        tokio::select! {
            msg = messages.next() => match msg {
                Some(msg) => match msg.get_payload::<String>() {
                    Ok(id) if id == SWITCHES_CHANGED => {
                        tokio::spawn(switches::reload_soon(shared.clone()));
                    }
                    Ok(jid) => cancel_seen(shared, &jid, shared.ttl(), now_ms()),
                    Err(e) => debug!(event = "subscriber.bad_message", "ignoring a message: {e}"),
                },
                None => return Error::Connection("subscription closed".into()),
            },
            _ = shared.resubscribe.notified() => {
                return Error::Connection("re-subscribing after Redis came back".into())
            }
        }
    }
}
