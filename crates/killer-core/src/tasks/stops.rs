//! Stopping a running job: a cancel learned by the subscriber or the poll,
//! or a deadline passing, becomes a raise for the dispatcher, then the
//! ladder: raised again every `grace` while the job runs on, and past
//! `hard_timeout` the process recycles (with Killer::MemoryMiddleware).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::time::{sleep, timeout};
use tracing::{error, info, warn};

use crate::error::Error;
use crate::event::{Event, StopReason};
use crate::registry::Reaction;
use crate::schema::{commands, JobStatus, MAX_CANCELS};
use crate::shared::Shared;
use crate::switch::Active;
use crate::tasks::express;

/// A request for `jid`, recorded at `at_ms` (ms since the epoch), is known
/// to exist for `remaining` more time.
pub(crate) fn cancel_seen(shared: &Arc<Shared>, jid: &str, remaining: Duration, at_ms: u64) {
    let now = Instant::now();
    let (reaction, dropped, class) = {
        let mut registry = shared.registry();
        let reaction = registry.request_cancel_at(jid, now + remaining, at_ms, now);
        let class = match reaction {
            Reaction::Interrupt(token) => registry.class_of(token).unwrap_or_default(),
            _ => String::new(),
        };
        (reaction, registry.dropped(), class)
    };
    if dropped > 0 && !shared.cap_warned.swap(true, Ordering::Relaxed) {
        warn!(event = "cancel.cap", "more than {MAX_CANCELS} cancel requests are known; the oldest for jobs not running here are dropped first (a job they named may run)");
    }
    match reaction {
        Reaction::Interrupt(token) => {
            // The raise first: the log line must not cost it a GVL turn.
            let _ = shared.events.send(Event::Cancel {
                token,
                jid: jid.to_owned(),
                attempt: 1,
                why: StopReason::Cancel,
                class: class.clone(),
                requested_at: Some(at_ms),
            });
            express::for_job(shared, token);
            tokio::spawn(log_delivery(shared.clone(), jid.to_owned()));
            tokio::spawn(insist(
                shared.clone(),
                token,
                Delivery {
                    jid: jid.to_owned(),
                    why: StopReason::Cancel,
                    class,
                    requested_at: Some(at_ms),
                },
            ));
        }
        Reaction::AlreadyFinished => {
            info!(
                jid,
                event = "cancel.too_late",
                "cancel arrived after the job finished"
            );
            shared.write(vec![jid.to_owned()], JobStatus::Finished, "");
        }
        Reaction::None => {}
    }
}

/// The switched-off classes as Redis holds them now: the running jobs of a
/// class newly switched off get `Killer::Cancelled`, as for a jid cancel.
pub(crate) fn switches_seen(shared: &Arc<Shared>, switches: HashMap<String, Active>) {
    // Said once per change, in each process: from this line on, its jobs
    // follow the new set (a resume, say, is in effect here).
    let mut classes: Vec<&String> = switches.keys().collect();
    classes.sort();
    let now_off = if classes.is_empty() {
        "no class is cancelled now".to_owned()
    } else {
        format!(
            "classes cancelled now: {}",
            classes
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let (stopped, changed) = {
        let mut registry = shared.registry();
        let changed = registry.switches_differ(&switches);
        (registry.set_switches(switches, Instant::now()), changed)
    };
    if changed {
        info!(event = "switches.changed", "{now_off}");
    }
    for s in stopped {
        let requested_at = Some(s.switch.at_ms);
        let _ = shared.events.send(Event::Cancel {
            token: s.token,
            jid: s.jid.clone(),
            attempt: 1,
            why: StopReason::Cancel,
            class: s.class.clone(),
            requested_at,
        });
        express::for_job(shared, s.token);
        info!(
            jid = %s.jid,
            event = "cancel.class",
            "class {} cancelled{}; raising Killer::Cancelled in the job",
            s.class,
            s.switch.who()
        );
        tokio::spawn(insist(
            shared.clone(),
            s.token,
            Delivery {
                jid: s.jid,
                why: StopReason::Cancel,
                class: s.class,
                requested_at,
            },
        ));
    }
}

/// Raises `Killer::Timeout` into job `token` once it has run `after`,
/// then insists as for a cancel. Aborted when the job ends first; nothing
/// if a cancel reached the job first.
pub(crate) async fn deadline(shared: Arc<Shared>, token: u64, after: Duration) {
    sleep(after).await;
    shared.timers().remove(&token);
    let (stop, class) = {
        let mut registry = shared.registry();
        let Some(stop) = registry.stop(token, StopReason::Timeout) else {
            return;
        };
        (stop, registry.class_of(token).unwrap_or_default())
    };
    let _ = shared.events.send(Event::Cancel {
        token,
        jid: stop.id.clone(),
        attempt: 1,
        why: StopReason::Timeout,
        class: class.clone(),
        requested_at: None,
    });
    express::for_job(&shared, token);
    warn!(
        jid = %stop.id,
        event = "timeout.delivered",
        "job ran past its timeout of {:.1}s; raising Killer::Timeout",
        after.as_secs_f64()
    );
    let delivery = Delivery {
        jid: stop.id,
        why: StopReason::Timeout,
        class,
        requested_at: None,
    };
    insist(shared, token, delivery).await;
}

/// The delivery's log line, naming who asked and why (one read of the
/// job's status, after the raise so that it costs the job nothing).
async fn log_delivery(shared: Arc<Shared>, jid: String) {
    let asked = async {
        let mut con = shared.link.get().await?;
        let fields: (Option<String>, Option<String>) = commands::requester(&shared.keys, &jid)
            .query_async(&mut con)
            .await?;
        Ok::<_, Error>(fields)
    };
    let (by, reason) = match timeout(shared.settings.network_timeout, asked).await {
        Ok(Ok((by, reason))) => (by.unwrap_or_default(), reason.unwrap_or_default()),
        _ => (String::new(), String::new()),
    };
    let mut who = String::new();
    if !by.is_empty() {
        who.push_str(&format!(" by {by}"));
    }
    if !reason.is_empty() {
        who.push_str(&format!(" ({reason})"));
    }
    info!(
        jid = %jid,
        event = "cancel.delivered",
        "cancel requested{who}; raising Killer::Cancelled in the job"
    );
}

/// A stop on its way to a job, as each raise repeats it.
struct Delivery {
    jid: String,
    why: StopReason,
    class: String,
    requested_at: Option<u64>,
}

/// Raises again every `grace` while the job is still running: it may
/// rescue Exception, or sit in native code that holds the GVL.
async fn insist(shared: Arc<Shared>, token: u64, delivery: Delivery) {
    let Delivery {
        jid,
        why,
        class,
        requested_at,
    } = delivery;
    let exception = match why {
        StopReason::Cancel => "Killer::Cancelled",
        StopReason::Timeout => "Killer::Timeout",
    };
    let grace = shared.settings.grace;
    let first = Instant::now();
    let mut escalated = false;
    for attempt in 2.. {
        sleep(grace).await;
        if !shared.registry().is_running(token) {
            return;
        }
        if let Some(limit) = shared
            .settings
            .hard_timeout
            .filter(|l| !escalated && first.elapsed() >= *l)
        {
            escalated = true;
            let reason = format!(
                "job {jid} ignored {exception} for {:.0}s (hard_timeout)",
                limit.as_secs_f64()
            );
            match shared.memory() {
                Some(watch) => {
                    error!(jid = %jid, event = "cancel.escalated", "{reason}; recycling the process");
                    watch.force(reason);
                }
                None => {
                    error!(jid = %jid, event = "cancel.escalated", "{reason}; add Killer::MemoryMiddleware so Killer can recycle the process")
                }
            }
        }
        let _ = shared.events.send(Event::Cancel {
            token,
            jid: jid.clone(),
            attempt,
            why,
            class: class.clone(),
            requested_at,
        });
        warn!(jid = %jid, event = "cancel.ignored", attempt, "job still running {:.1}s after {exception} (rescued Exception? native code holding the GVL?); raising again", grace.as_secs_f64());
    }
}
