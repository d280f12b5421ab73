//! A class switched off (`Killer.cancel_class`): its running jobs get
//! `Killer::Cancelled` as a jid cancel would, and its jobs starting before
//! `until` are skipped. Kept in Redis as JSON beside the class name.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One switch as Redis keeps it (times in ms, Redis clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switch {
    #[serde(rename = "until")]
    pub until_ms: u64,
    #[serde(rename = "at")]
    pub at_ms: u64,
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub reason: String,
}

/// A switch as a process acts on it: with its end on this host's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub switch: Switch,
    pub until: Instant,
}

impl Switch {
    /// Who and why, for a log line: " by alice (bad deploy)".
    pub fn who(&self) -> String {
        let mut who = String::new();
        if !self.by.is_empty() {
            who.push_str(&format!(" by {}", self.by));
        }
        if !self.reason.is_empty() {
            who.push_str(&format!(" ({})", self.reason));
        }
        who
    }
}

/// The switches hash as read (`{class: JSON}`), with the Redis clock's
/// `server_now_ms`, as this process acts on them: ends measured from `now`
/// so a skewed host clock does not matter. Entries that do not parse or
/// have ended are left out.
pub fn from_redis(
    raw: HashMap<String, String>,
    server_now_ms: u64,
    now: Instant,
) -> HashMap<String, Active> {
    raw.into_iter()
        .filter_map(|(class, json)| {
            let switch: Switch = serde_json::from_str(&json).ok()?;
            let left = switch.until_ms.checked_sub(server_now_ms)?;
            (left > 0).then(|| {
                (
                    class,
                    Active {
                        until: now + Duration::from_millis(left),
                        switch,
                    },
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_live_switches_and_leaves_out_ended_or_broken_ones() {
        let now = Instant::now();
        let raw = HashMap::from([
            (
                "SyncJob".to_owned(),
                r#"{"until":61000,"at":1000,"by":"ops","reason":"bad deploy"}"#.to_owned(),
            ),
            ("OldJob".to_owned(), r#"{"until":500,"at":100}"#.to_owned()),
            ("Broken".to_owned(), "not json".to_owned()),
        ]);
        let active = from_redis(raw, 1000, now);
        assert_eq!(active.len(), 1);
        let s = &active["SyncJob"];
        assert_eq!(s.until, now + Duration::from_secs(60));
        assert_eq!(s.switch.who(), " by ops (bad deploy)");
    }
}
