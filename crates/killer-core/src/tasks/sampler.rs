//! The memory sampler on the watcher's thread: feeds the recycler a sample
//! every `check_interval` (or at once when a job ends over the limit), and
//! does the I/O the recycler asks for: a restart slot from Redis, a GC from
//! the dispatcher, and Sidekiq's own signals to this very process.
//!
//! Acting through Sidekiq's own signals to our own pid (TSTP = quiet,
//! TERM = stop with Sidekiq's `-t` timeout) behaves the same on Sidekiq 6,
//! 7 and 8 and takes effect at once; remote `quiet!`/`stop!` wait for a
//! heartbeat. SIGKILL is the last resort, never before Sidekiq's own
//! timeout + 5 s has passed since TERM.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::sleep;
use tracing::{error, info, warn};

use crate::event::{Event, LogLevel};
use crate::memory_watch::MemoryWatch;
use crate::recycle::{mb, Action, Input, Permit, Step};
use crate::report::{now_ms, RecycleEvent};
use crate::schema::{commands, Keys};
use crate::shared::Shared;
use crate::stop::{self, signal_self};
use crate::tasks::reporter::record_recycle;

/// A process whose heartbeat is older than this is not counted as alive
/// (Sidekiq 6 beats every 5 s, 7 and 8 every 10 s).
const FRESH_HEARTBEAT: Duration = Duration::from_secs(30);
const LAST_WORDS: Duration = Duration::from_millis(500);
/// Bounds the slot's release at exit: the slot expires by itself anyway.
const SLOT_RELEASE_WAIT: Duration = Duration::from_millis(300);

pub(crate) async fn sampler(shared: Arc<Shared>, watch: Arc<MemoryWatch>) {
    let mut read_failed = false;
    loop {
        tokio::select! {
            _ = sleep(watch.settings.check_interval) => {}
            _ = watch.wake.notified() => {}
        }
        let busy = shared.registry().running();
        let (mut step, bytes) = match watch.next_step(busy) {
            Ok(v) => {
                read_failed = false;
                v
            }
            Err(e) => {
                if !read_failed {
                    warn!(event = "memory.read_failed", "cannot read memory: {e}");
                }
                read_failed = true;
                continue;
            }
        };
        loop {
            log_step(&shared, &watch, &step, bytes);
            match step.action {
                None => break,
                Some(Action::RunGc) => {
                    let _ = shared.events.send(Event::RunGc);
                    break;
                }
                Some(Action::AskPermit) => {
                    let permit = ask_permit(&shared, &watch).await;
                    step = watch.feed(Input::Permit(permit));
                }
                Some(Action::Quiet) => {
                    let running = MemoryWatch::growth(shared.registry().measured_jobs(), bytes);
                    warn!(
                        event = "memory.growers",
                        rss_mb = mb(bytes),
                        "jobs that grew this process most: {}",
                        watch.growers_line(&running)
                    );
                    let reason = watch.state().recycler.reason().to_owned();
                    let _ = shared.events.send(Event::Recycling {
                        reason,
                        bytes,
                        running,
                    });
                    signal_self(libc::SIGTSTP);
                    break;
                }
                Some(Action::Terminate) => {
                    // The reaper backs up the Kill step below, one second
                    // later, in case Sidekiq's shutdown stops this watcher
                    // and then hangs.
                    let limits = &watch.settings.limits;
                    stop::terminate(limits.kill_after + Duration::from_secs(1), "recycling");
                    break;
                }
                Some(Action::Kill) => {
                    // The line above is the last thing the operator will
                    // read; give the dispatcher a moment to write it.
                    sleep(LAST_WORDS).await;
                    signal_self(libc::SIGKILL);
                    break;
                }
            }
        }
    }
}

/// Logs a recycle step and adds it to the cluster's recycle history.
fn log_step(shared: &Arc<Shared>, watch: &MemoryWatch, step: &Step, bytes: u64) {
    let Some((level, message)) = &step.log else {
        return;
    };
    let state = watch.state().recycler.phase().name();
    record_recycle(
        shared,
        RecycleEvent {
            at: now_ms(),
            hostname: watch.settings.hostname.clone(),
            pid: std::process::id(),
            state,
            bytes,
            limit: watch.settings.limits.soft,
            message: message.clone(),
        },
    );
    let _ = shared.events.send(Event::RecycleStep {
        state,
        message: message.clone(),
        bytes,
        limit: watch.settings.limits.soft,
        top: watch.top_growers(),
    });
    let (rss_mb, limit_mb) = (mb(bytes), mb(watch.settings.limits.soft));
    match level {
        LogLevel::Error => error!(event = "memory", state, rss_mb, limit_mb, "{message}"),
        LogLevel::Warn => warn!(event = "memory", state, rss_mb, limit_mb, "{message}"),
        _ => info!(event = "memory", state, rss_mb, limit_mb, "{message}"),
    }
}

async fn ask_permit(shared: &Arc<Shared>, watch: &MemoryWatch) -> Permit {
    let s = &watch.settings;
    if let Some(why) = &s.cannot_signal {
        return Permit::Denied(why.clone());
    }
    let mut con = match shared.link.get().await {
        Ok(c) => c,
        Err(e) => return Permit::Unknown(e.to_string()),
    };
    let limits = &s.limits;
    let slot_ttl = limits.drain_timeout + limits.kill_after + Duration::from_secs(30);
    let who = (s.hostname.as_str(), std::process::id());
    let answer = request_restart_slot(
        &mut con,
        &shared.keys,
        who,
        s.min_live_processes,
        s.max_concurrent_restarts,
        slot_ttl,
    )
    .await;
    match answer {
        Ok(Permit::Granted) => {
            watch.holding_slot.store(true, Ordering::SeqCst);
            Permit::Granted
        }
        Ok(other) => other,
        Err(e) => {
            shared.link.reset().await;
            Permit::Unknown(e.to_string())
        }
    }
}

/// Asks Redis, atomically, for one of `max_concurrent_restarts` slots for
/// the process `who` (hostname, pid), granted only while at least
/// `min_live` other processes in Sidekiq's process set have a fresh
/// heartbeat and are neither quiet nor recycling.
pub async fn request_restart_slot<C: redis::aio::ConnectionLike>(
    con: &mut C,
    keys: &Keys,
    who: (&str, u32),
    min_live: u32,
    max_concurrent: u32,
    slot_ttl: Duration,
) -> redis::RedisResult<Permit> {
    let (granted, why): (i64, String) = commands::request_restart_slot(
        keys,
        who,
        min_live,
        max_concurrent,
        slot_ttl,
        FRESH_HEARTBEAT,
    )
    .invoke_async(con)
    .await?;
    Ok(if granted == 1 {
        Permit::Granted
    } else {
        Permit::Denied(why)
    })
}

/// Gives the restart slot back as the process exits, so the next process
/// over its limit need not wait for the slot's TTL.
pub(crate) async fn release_slot(shared: &Shared, watch: &MemoryWatch) {
    if !watch.holding_slot.swap(false, Ordering::SeqCst) {
        return;
    }
    let me = format!("{}:{}", watch.settings.hostname, std::process::id());
    let release = async {
        let mut con = shared.link.get().await?;
        commands::release_restart_slot(&shared.keys, &me)
            .query_async::<i64>(&mut con)
            .await
            .map_err(|e| shared.link.error(e))
    };
    let released = match tokio::time::timeout(SLOT_RELEASE_WAIT, release).await {
        Ok(r) => r.map(|_| ()),
        Err(_) => Err(crate::error::Error::Connection("no answer".into())),
    };
    if let Err(e) = released {
        warn!(
            event = "memory.slot_release_failed",
            "could not release the restart slot ({e}); it expires by itself"
        );
    }
}
