//! The Redis schema, version 1: every key (in [`Keys`], each documented
//! beside its name), every command Killer sends ([`commands`]) and every
//! script ([`scripts`]). Nothing else in the crate spells a key or a
//! command. Every key carries a TTL; the README's "Redis keys" section
//! documents exactly these names.

pub(crate) mod commands;
pub(crate) mod scripts;

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

    /// The durable record: sorted set, member = jid, score = request time
    /// (ms, Redis server clock), which every watcher polls incrementally;
    /// trimmed to `cancel_ttl` and [`MAX_CANCELS`] on every write.
    pub fn cancels(&self) -> String {
        format!("{}cancels", self.base)
    }

    /// What became of a request: hash with `state` (requested, cancelled,
    /// finished), `<state>_at` (ms), `by`, `reason`, `class`, `requests`,
    /// `last_by`, `last_reason`, `last_at`; expires after `cancel_ttl`.
    pub fn status(&self, jid: &str) -> String {
        format!("{}{jid}", self.status_prefix())
    }

    /// What every status key starts with (the cancel script builds keys of
    /// requests it drops).
    pub fn status_prefix(&self) -> String {
        format!("{}status:", self.base)
    }

    /// Pub/sub channel carrying the jid, for instant delivery. Losing a
    /// message only costs latency: the poll catches it.
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

    /// Classes switched off (`Killer.cancel_class`): hash, field = class
    /// name, value = JSON `{until, at, by, reason}` (ms, Redis clock);
    /// expires with the last switch. A change also puts
    /// [`SWITCHES_CHANGED`] in the durable record and on the channel, so
    /// watchers reload it without a command per poll.
    pub fn switches(&self) -> String {
        format!("{}switches", self.base)
    }

    /// Restart slots: sorted set, member `hostname:pid`, score = expiry (ms).
    pub fn restart_slots(&self) -> String {
        format!("{}restart_slots", self.base)
    }
}

/// Member of the durable record and message on the channel meaning "the
/// switched-off classes changed": it starts with a control character, which
/// no jid may hold.
pub const SWITCHES_CHANGED: &str = "\u{1}switches";

/// Classes switched off at once, at most; longest switch; longest class
/// name.
pub const MAX_SWITCHES: usize = 1000;
pub const MAX_SWITCH_SECONDS: u64 = 30 * 86400;
pub const MAX_CLASS_BYTES: usize = 1024;

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

/// A class name as `Killer.cancel_class` takes it.
pub fn validate_class(class: &str) -> Result<()> {
    if class.is_empty() || class.len() > MAX_CLASS_BYTES || class.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "class must be a name of 1 to {MAX_CLASS_BYTES} bytes without control characters, got {:?}",
            &class[..class.char_indices().nth(64).map_or(class.len(), |(i, _)| i)]
        )));
    }
    Ok(())
}

pub fn validate_jid(jid: &str) -> Result<()> {
    if jid.is_empty() {
        return Err(Error::InvalidArgument(
            "jid must be a non-empty String, got \"\"".into(),
        ));
    }
    if jid.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(format!(
            "jid must not hold control characters, got {jid:?}"
        )));
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

/// Cancel requests kept, in the durable record and in each process's copy
/// of it. Past it the oldest are dropped first (locally: those for jobs
/// not running), with one warning: a storm of cancels for unknown jids
/// costs bounded memory and never slows job starts.
pub const MAX_CANCELS: usize = 50_000;

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
