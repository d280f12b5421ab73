//! The Redis schema, version 1. Every key carries a TTL; see the README's
//! "Redis keys" section, which documents exactly these names.
//!
//! - `{prefix}v1:cancels`       sorted set, member = jid, score = request time
//!   (ms, Redis server clock). The durable record every watcher polls
//!   incrementally; trimmed to `cancel_ttl` on every write, expires with it.
//! - `{prefix}v1:status:{jid}`  hash: `state` (requested|cancelled|finished)
//!   and `<state>_at` timestamps; expires after `cancel_ttl`.
//! - `{prefix}v1:cancel`        pub/sub channel carrying the jid, for instant
//!   delivery. Losing a message only costs latency: the poll catches it.

use crate::error::{Error, Result};

pub const SCHEMA_VERSION: u32 = 1;

/// A jid longer than this is refused before anything reaches Redis. Sidekiq's
/// own jids are 24 hex characters; ActiveJob ids are 36.
pub const MAX_JID_BYTES: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    base: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Result<Self> {
        if prefix.is_empty() || prefix.len() > 200 || prefix.chars().any(char::is_whitespace) {
            return Err(Error::InvalidArgument(format!(
                "key_prefix must be 1..200 characters without whitespace, got {prefix:?}"
            )));
        }
        Ok(Keys {
            base: format!("{prefix}v{SCHEMA_VERSION}:"),
        })
    }

    pub fn cancels(&self) -> String {
        format!("{}cancels", self.base)
    }

    pub fn status(&self, jid: &str) -> String {
        format!("{}{jid}", self.status_prefix())
    }

    /// What every status key starts with (the cancel script builds keys of
    /// requests it drops).
    pub fn status_prefix(&self) -> String {
        format!("{}status:", self.base)
    }

    pub fn channel(&self) -> String {
        format!("{}cancel", self.base)
    }

    /// An exclusive lease: string, the holder's token, with a TTL.
    pub fn lease(&self, name: &str) -> String {
        format!("{}lease:{name}", self.base)
    }

    /// The audit trail: list of JSON cancel records, newest first, capped
    /// at [`HISTORY_CAP`] and expiring with `cancel_ttl`.
    pub fn history(&self) -> String {
        format!("{}history", self.base)
    }

    /// A Sidekiq process's report for the Web tab: JSON string
    /// ([`crate::report::ProcessReport`]), expiring a few report intervals
    /// after the process stops writing it.
    pub fn process(&self, hostname: &str, pid: u32) -> String {
        format!("{}process:{hostname}:{pid}", self.base)
    }

    /// Recycle history across the cluster: list of JSON events, newest
    /// first, capped at [`RECYCLES_CAP`], expiring [`RECYCLES_TTL`] after
    /// the last one.
    pub fn recycles(&self) -> String {
        format!("{}recycles", self.base)
    }

    /// Restart slots: sorted set, member `hostname:pid`, score = expiry (ms).
    pub fn restart_slots(&self) -> String {
        format!("{}restart_slots", self.base)
    }
}

/// Sidekiq's own set of live process identities (same key in 6, 7 and 8).
pub const SIDEKIQ_PROCESSES: &str = "processes";

/// Cancel records kept in the audit trail (`Keys::history`).
pub const HISTORY_CAP: usize = 1000;
/// Recycle events kept (`Keys::recycles`), and for how long.
pub const RECYCLES_CAP: usize = 200;
pub const RECYCLES_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 86400);

/// Longest `by` and `reason` of a cancel, in bytes.
pub const MAX_BY_BYTES: usize = 200;
pub const MAX_REASON_BYTES: usize = 1000;

pub fn validate_jid(jid: &str) -> Result<()> {
    if jid.is_empty() {
        return Err(Error::InvalidArgument(
            "jid must be a non-empty String, got \"\"".into(),
        ));
    }
    if jid.len() > MAX_JID_BYTES {
        return Err(Error::InvalidArgument(format!(
            "jid must be at most {MAX_JID_BYTES} bytes, got {} bytes ({:?}...)",
            jid.len(),
            &jid[..jid.char_indices().nth(32).map_or(jid.len(), |(i, _)| i)]
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Requested,
    Cancelled,
    Finished,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Requested => "requested",
            JobStatus::Cancelled => "cancelled",
            JobStatus::Finished => "finished",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "requested" => Some(JobStatus::Requested),
            "cancelled" => Some(JobStatus::Cancelled),
            "finished" => Some(JobStatus::Finished),
            _ => None,
        }
    }
}

/// Records a cancel: durable record, status and audit record in one atomic
/// step, scored by the Redis server's clock so that every watcher's poll
/// cursor compares times from one clock. The PUBLISH that wakes the
/// watchers is sent after it, on its own: a refused PUBLISH (an ACL without
/// the channel) must not undo or hide a cancel the poll will apply.
///
/// A repeated request for a jid already known adds no audit record: it
/// counts itself (`requests`) and keeps who asked last (`last_by`,
/// `last_reason`, `last_at`) in the status, so a thousand repeats cannot
/// push everyone else out of the capped trail. The durable record holds at
/// most ARGV[6] requests: past it, the oldest are dropped (with their
/// status, if still `requested`).
/// KEYS[1] cancels zset, KEYS[2] status hash, KEYS[3] history list;
/// ARGV[1] jid, ARGV[2] ttl ms, ARGV[3] by, ARGV[4] reason, ARGV[5] history
/// cap, ARGV[6] cap of the durable record, ARGV[7] status key prefix.
/// Returns {status after the call, requests dropped to stay under the cap}.
pub(crate) const CANCEL_SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - ttl)
local dropped = 0
local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[6])
if over > 0 then
  for _, old in ipairs(redis.call('ZRANGE', KEYS[1], 0, over - 1)) do
    local key = ARGV[7] .. old
    if redis.call('HGET', key, 'state') == 'requested' then redis.call('DEL', key) end
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
  dropped = over
end
redis.call('PEXPIRE', KEYS[1], ttl)
local state = redis.call('HGET', KEYS[2], 'state')
if state then
  redis.call('HINCRBY', KEYS[2], 'requests', 1)
  redis.call('HSET', KEYS[2], 'last_by', ARGV[3], 'last_reason', ARGV[4], 'last_at', now)
  return {state, dropped}
end
state = 'requested'
redis.call('HSET', KEYS[2], 'state', state, 'requested_at', now, 'by', ARGV[3], 'reason', ARGV[4], 'requests', 1)
redis.call('PEXPIRE', KEYS[2], ttl)
redis.call('LPUSH', KEYS[3], cjson.encode({jid = ARGV[1], by = ARGV[3], reason = ARGV[4], at = now, state = state}))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[5]) - 1)
redis.call('PEXPIRE', KEYS[3], ttl)
return {state, dropped}
"#;

/// Cancel requests kept, in the durable record and in each process's copy
/// of it. Past it the oldest are dropped first (locally: those for jobs
/// not running), with one warning: a storm of cancels for unknown jids
/// costs bounded memory and never slows job starts.
pub const MAX_CANCELS: usize = 50_000;

/// Grants a restart slot only if enough *other* processes are alive, not
/// quiet and not recycling, and fewer than the maximum restarts are in
/// progress — in one atomic step, so two processes crossing the limit in the
/// same millisecond cannot both go.
/// KEYS[1] Sidekiq's process set, KEYS[2] restart slots. ARGV[1] hostname,
/// ARGV[2] pid, ARGV[3] min live others, ARGV[4] max concurrent restarts,
/// ARGV[5] slot ttl ms, ARGV[6] heartbeat freshness (s).
/// Returns {1|0, explanation}.
pub(crate) const PERMIT_SCRIPT: &str = r#"
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me = ARGV[1] .. ':' .. ARGV[2]
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now_ms)
if redis.call('ZSCORE', KEYS[2], me) then return {1, 'already holding a slot'} end
local live = 0
for _, identity in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local f = redis.call('HMGET', identity, 'info', 'beat', 'quiet')
  if f[1] and f[2] then
    local ok, info = pcall(cjson.decode, f[1])
    if ok and type(info) == 'table' then
      local who = tostring(info['hostname']) .. ':' .. tostring(info['pid'])
      local fresh = (now_ms / 1000 - tonumber(f[2])) < tonumber(ARGV[6])
      if who ~= me and fresh and f[3] ~= 'true' and not redis.call('ZSCORE', KEYS[2], who) then
        live = live + 1
      end
    end
  end
end
if live < tonumber(ARGV[3]) then
  return {0, 'only ' .. live .. ' other live process(es) not quiet or recycling; min_live_processes is ' .. ARGV[3]}
end
local taken = redis.call('ZCARD', KEYS[2])
if taken >= tonumber(ARGV[4]) then
  return {0, taken .. ' restart(s) already in progress; max_concurrent_restarts is ' .. ARGV[4]}
end
redis.call('ZADD', KEYS[2], now_ms + tonumber(ARGV[5]), me)
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
return {1, 'granted'}
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_versioned_under_the_prefix() {
        let k = Keys::new("killer:").unwrap();
        assert_eq!(k.cancels(), "killer:v1:cancels");
        assert_eq!(k.status("abc"), "killer:v1:status:abc");
        assert_eq!(k.channel(), "killer:v1:cancel");
        assert_eq!(k.process("web-1", 42), "killer:v1:process:web-1:42");
        assert_eq!(k.recycles(), "killer:v1:recycles");
    }

    #[test]
    fn bad_prefixes_and_jids_are_refused_with_the_value() {
        assert!(matches!(Keys::new(""), Err(Error::InvalidArgument(_))));
        let e = Keys::new("a b").unwrap_err().to_string();
        assert!(e.contains("\"a b\""), "{e}");
        assert!(validate_jid("").is_err());
        let long = "é".repeat(600);
        let e = validate_jid(&long).unwrap_err().to_string();
        assert!(e.contains("1200 bytes"), "{e}");
        assert!(validate_jid(&"a".repeat(MAX_JID_BYTES)).is_ok());
    }

    #[test]
    fn statuses_round_trip() {
        for s in [
            JobStatus::Requested,
            JobStatus::Cancelled,
            JobStatus::Finished,
        ] {
            assert_eq!(JobStatus::parse(s.as_str()), Some(s));
        }
        assert_eq!(JobStatus::parse("bogus"), None);
    }
}
