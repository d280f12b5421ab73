//! Every command and script invocation Killer sends, built here beside the
//! keys they touch, so that what Killer does to Redis reads in one place.
//! Callers only run them (`query_async`, `invoke_async`).

use std::sync::LazyLock;
use std::time::Duration;

use redis::{Cmd, Pipeline, Script, ScriptInvocation};

use super::scripts::{CANCEL_SCRIPT, PERMIT_SCRIPT, RELEASE_SCRIPT, RENEW_SCRIPT, SWITCH_SCRIPT};
use super::{
    JobStatus, Keys, HISTORY_CAP, MAX_CANCELS, MAX_SWITCHES, RECYCLES_CAP, RECYCLES_TTL,
    SIDEKIQ_PROCESSES, SWITCHES_CHANGED,
};

static CANCEL: LazyLock<Script> = LazyLock::new(|| Script::new(CANCEL_SCRIPT));
static PERMIT: LazyLock<Script> = LazyLock::new(|| Script::new(PERMIT_SCRIPT));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::new(RENEW_SCRIPT));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(RELEASE_SCRIPT));
static SWITCH: LazyLock<Script> = LazyLock::new(|| Script::new(SWITCH_SCRIPT));

/// Sentinel's announcement of a new master: "<name> <old ip> <old port>
/// <new ip> <new port>".
pub(crate) const SWITCH_MASTER: &str = "+switch-master";

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Records a cancel (durable record, status, audit record); answers
/// `(status, requests dropped to stay under MAX_CANCELS)`.
pub(crate) fn record_cancel(
    keys: &Keys,
    jid: &str,
    ttl: Duration,
    by: &str,
    reason: &str,
) -> ScriptInvocation<'static> {
    let mut call = CANCEL.prepare_invoke();
    call.key(keys.cancels())
        .key(keys.status(jid))
        .key(keys.history())
        .arg(jid)
        .arg(ms(ttl))
        .arg(by)
        .arg(reason)
        .arg(HISTORY_CAP)
        .arg(MAX_CANCELS)
        .arg(keys.status_prefix());
    call
}

/// Wakes every watcher for `jid` (sent after the cancel is recorded).
pub(crate) fn publish_cancel(keys: &Keys, jid: &str) -> Cmd {
    let mut cmd = redis::cmd("PUBLISH");
    cmd.arg(keys.channel()).arg(jid);
    cmd
}

/// Switches `class` off for `duration`, or back on with None; answers
/// `(until ms or 0, 1 if it was off)`. See [`SWITCH_SCRIPT`].
pub(crate) fn record_switch(
    keys: &Keys,
    class: &str,
    duration: Option<Duration>,
    by: &str,
    reason: &str,
    ttl: Duration,
) -> ScriptInvocation<'static> {
    let mut call = SWITCH.prepare_invoke();
    call.key(keys.switches())
        .key(keys.cancels())
        .key(keys.history())
        .arg(class)
        .arg(duration.map_or(-1, |d| i64::try_from(ms(d)).unwrap_or(i64::MAX)))
        .arg(by)
        .arg(reason)
        .arg(HISTORY_CAP)
        .arg(MAX_SWITCHES)
        .arg(SWITCHES_CHANGED)
        .arg(ms(ttl));
    call
}

/// Wakes every watcher to reload the switched-off classes.
pub(crate) fn publish_switches(keys: &Keys) -> Cmd {
    let mut cmd = redis::cmd("PUBLISH");
    cmd.arg(keys.channel()).arg(SWITCHES_CHANGED);
    cmd
}

/// The switched-off classes with the Redis clock: `((secs, micros),
/// {class: JSON})`.
pub(crate) fn load_switches(keys: &Keys) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("TIME").cmd("HGETALL").arg(keys.switches());
    pipe
}

pub(crate) fn status_state(keys: &Keys, jid: &str) -> Cmd {
    let mut cmd = redis::cmd("HGET");
    cmd.arg(keys.status(jid)).arg("state");
    cmd
}

pub(crate) fn status_details(keys: &Keys, jid: &str) -> Cmd {
    let mut cmd = redis::cmd("HGETALL");
    cmd.arg(keys.status(jid));
    cmd
}

/// Who asked for a cancel, and why: `(by, reason)`.
pub(crate) fn requester(keys: &Keys, jid: &str) -> Cmd {
    let mut cmd = redis::cmd("HMGET");
    cmd.arg(keys.status(jid)).arg("by").arg("reason");
    cmd
}

/// The Web tab's lists: the audit trail and the recycle history (the last
/// `limit` of each), then each process's report if `processes` is not
/// empty.
pub(crate) fn overview(keys: &Keys, processes: &[(String, u32)], limit: usize) -> Pipeline {
    let last = limit as isize - 1;
    let mut pipe = redis::pipe();
    pipe.cmd("LRANGE").arg(keys.history()).arg(0).arg(last);
    pipe.cmd("LRANGE").arg(keys.recycles()).arg(0).arg(last);
    if !processes.is_empty() {
        let mget = pipe.cmd("MGET");
        for (host, pid) in processes {
            mget.arg(keys.process(host, *pid));
        }
    }
    pipe
}

/// The status hash of each jid, in order.
pub(crate) fn statuses(keys: &Keys, jids: &[String]) -> Pipeline {
    let mut pipe = redis::pipe();
    for jid in jids {
        pipe.cmd("HGETALL").arg(keys.status(jid));
    }
    pipe
}

/// Every request recorded, with the Redis clock: `((secs, micros),
/// [(jid, score)])`.
pub(crate) fn load_all(keys: &Keys) -> Pipeline {
    let mut pipe = redis::pipe();
    pipe.cmd("TIME")
        .cmd("ZRANGEBYSCORE")
        .arg(keys.cancels())
        .arg("-inf")
        .arg("+inf")
        .arg("WITHSCORES");
    pipe
}

/// The requests scored at or after `cursor` (ms): `[(jid, score)]`.
pub(crate) fn load_since(keys: &Keys, cursor: f64) -> Cmd {
    let mut cmd = redis::cmd("ZRANGEBYSCORE");
    cmd.arg(keys.cancels())
        .arg(cursor)
        .arg("+inf")
        .arg("WITHSCORES");
    cmd
}

/// Sets the status of each id at once (MULTI), with the job's class when
/// known; each status keeps `ttl`.
pub(crate) fn write_status(
    keys: &Keys,
    ids: &[String],
    status: JobStatus,
    class: &str,
    now_ms: u64,
    ttl: Duration,
) -> Pipeline {
    let state = status.as_str();
    let mut pipe = redis::pipe();
    pipe.atomic();
    for id in ids {
        let key = keys.status(id);
        let hset = pipe
            .cmd("HSET")
            .arg(&key)
            .arg("state")
            .arg(state)
            .arg(format!("{state}_at"))
            .arg(now_ms);
        if !class.is_empty() {
            hset.arg("class").arg(class);
        }
        hset.ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ms(ttl)).ignore();
    }
    pipe
}

/// Takes lease `name` for `ttl` if nobody holds it: "OK" or nil.
pub(crate) fn take_lease(keys: &Keys, name: &str, token: &str, ttl: Duration) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(keys.lease(name))
        .arg(token)
        .arg("NX")
        .arg("PX")
        .arg(ms(ttl));
    cmd
}

/// 1 if the lease at `key` is still `token`'s (and now lasts `ttl` more).
pub(crate) fn renew_lease(key: &str, token: &str, ttl: Duration) -> ScriptInvocation<'static> {
    let mut call = RENEW.prepare_invoke();
    call.key(key).arg(token).arg(ms(ttl));
    call
}

/// Deletes the lease at `key` only if it is still `token`'s.
pub(crate) fn release_lease(key: &str, token: &str) -> ScriptInvocation<'static> {
    let mut call = RELEASE.prepare_invoke();
    call.key(key).arg(token);
    call
}

/// This process's report for the Web tab, kept for `ttl`.
pub(crate) fn write_report(
    keys: &Keys,
    hostname: &str,
    pid: u32,
    json: String,
    ttl: Duration,
) -> Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(keys.process(hostname, pid))
        .arg(json)
        .arg("PX")
        .arg(ms(ttl));
    cmd
}

/// Appends a recycle step to the cluster's capped, expiring history.
pub(crate) fn record_recycle(keys: &Keys, json: String) -> Pipeline {
    let key = keys.recycles();
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("LPUSH")
        .arg(&key)
        .arg(json)
        .ignore()
        .cmd("LTRIM")
        .arg(&key)
        .arg(0)
        .arg(RECYCLES_CAP - 1)
        .ignore()
        .cmd("PEXPIRE")
        .arg(&key)
        .arg(ms(RECYCLES_TTL))
        .ignore();
    pipe
}

/// A restart slot for `who` (hostname, pid): `(1|0, why)`. See
/// [`super::scripts::PERMIT_SCRIPT`].
pub(crate) fn request_restart_slot(
    keys: &Keys,
    who: (&str, u32),
    min_live: u32,
    max_concurrent: u32,
    slot_ttl: Duration,
    fresh_heartbeat: Duration,
) -> ScriptInvocation<'static> {
    let mut call = PERMIT.prepare_invoke();
    call.key(SIDEKIQ_PROCESSES)
        .key(keys.restart_slots())
        .arg(who.0)
        .arg(who.1)
        .arg(min_live)
        .arg(max_concurrent)
        .arg(ms(slot_ttl))
        .arg(fresh_heartbeat.as_secs());
    call
}

/// Gives `who`'s restart slot back.
pub(crate) fn release_restart_slot(keys: &Keys, who: &str) -> Cmd {
    let mut cmd = redis::cmd("ZREM");
    cmd.arg(keys.restart_slots()).arg(who);
    cmd
}

/// The memory section of INFO (for `maxmemory_policy`).
pub(crate) fn memory_info() -> Cmd {
    let mut cmd = redis::cmd("INFO");
    cmd.arg("memory");
    cmd
}
