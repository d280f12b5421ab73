use std::time::Duration;

use crate::error::{Error, Result};
use crate::redis_config::RedisConfig;
use crate::schema::Keys;

/// A setting measured in seconds, as `Killer.configure` and the job
/// options take it: its default and its range. The one place they are
/// written: Ruby reads this table (`Killer::Native::SECONDS`) to set its
/// defaults and to refuse a value, naming the option in its own words.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds {
    pub name: &'static str,
    /// None: no default (off).
    pub default: Option<f64>,
    pub min: f64,
    pub max: f64,
    /// nil is a valid value (turns it off).
    pub optional: bool,
}

const fn secs(
    name: &'static str,
    default: Option<f64>,
    min: f64,
    max: f64,
    optional: bool,
) -> Seconds {
    Seconds {
        name,
        default,
        min,
        max,
        optional,
    }
}

/// Every setting in seconds, with its default and range.
pub const SECONDS: [Seconds; 7] = [
    secs("poll_interval", Some(1.0), 0.01, 3600.0, false),
    secs("cancel_ttl", Some(86_400.0), 1.0, 365.0 * 86_400.0, false),
    secs("grace", Some(5.0), 0.01, 86_400.0, false),
    secs("network_timeout", Some(3.0), 0.01, 600.0, false),
    secs("hard_timeout", Some(60.0), 1.0, 86_400.0, true),
    secs("report_interval", Some(5.0), 0.1, 3600.0, false),
    // A job's deadline (`sidekiq_options killer: { timeout: }`), and its default.
    secs("default_timeout", None, 0.001, 604_800.0, true),
];

fn seconds(name: &str) -> &'static Seconds {
    SECONDS
        .iter()
        .find(|s| s.name == name)
        .unwrap_or(&SECONDS[0])
}

fn default(name: &str) -> Duration {
    Duration::from_secs_f64(seconds(name).default.unwrap_or(0.0))
}

/// Everything the watcher and the client need, validated once against
/// [`SECONDS`] (Ruby checks the same table first, so its errors name the
/// Ruby option; this is the last line for anyone calling the core directly).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Where Redis is and how to reach it (Sidekiq's, unless configured).
    pub redis: RedisConfig,
    pub key_prefix: String,
    /// How often the durable record is polled; bounds the delay of a cancel
    /// whose pub/sub message was lost.
    pub poll_interval: Duration,
    /// How long a cancel request (and a job's status) is remembered.
    pub cancel_ttl: Duration,
    /// How long a job may ignore `Killer::Cancelled` before it is raised again.
    pub grace: Duration,
    /// Connect and response timeout for every Redis call.
    pub network_timeout: Duration,
    /// A cancelled job still running this long after the first raise makes
    /// the process recycle (through the memory watch's path). None: never.
    pub hard_timeout: Option<Duration>,
    /// How often this process publishes its report (running jobs, memory)
    /// for the Web tab: one SET per interval, whatever the concurrency.
    pub report_interval: Duration,
    /// As Sidekiq names this process in its process set; names the report.
    pub hostname: String,
    /// Use the GVL express lane when the binding offers one (Ruby ≥ 3.3).
    pub express: bool,
}

impl Settings {
    pub fn new(redis: RedisConfig, key_prefix: &str) -> Self {
        Settings {
            redis,
            key_prefix: key_prefix.to_owned(),
            poll_interval: default("poll_interval"),
            cancel_ttl: default("cancel_ttl"),
            grace: default("grace"),
            network_timeout: default("network_timeout"),
            hard_timeout: seconds("hard_timeout").default.map(Duration::from_secs_f64),
            report_interval: default("report_interval"),
            hostname: String::new(),
            express: true,
        }
    }

    pub fn validate(&self) -> Result<Keys> {
        self.redis.connector()?;
        check("poll_interval", Some(self.poll_interval))?;
        check("cancel_ttl", Some(self.cancel_ttl))?;
        check("grace", Some(self.grace))?;
        check("network_timeout", Some(self.network_timeout))?;
        check("hard_timeout", self.hard_timeout)?;
        check("report_interval", Some(self.report_interval))?;
        if self.hostname.len() > 255 {
            return Err(Error::InvalidArgument(format!(
                "hostname must be at most 255 bytes, got {} bytes",
                self.hostname.len()
            )));
        }
        Keys::new(&self.key_prefix)
    }
}

/// `value` of setting `name` within its range of [`SECONDS`].
pub fn check(name: &str, value: Option<Duration>) -> Result<()> {
    let bounds = seconds(name);
    let Some(v) = value else {
        if bounds.optional {
            return Ok(());
        }
        return Err(Error::InvalidArgument(format!("{name} must be set")));
    };
    let v = v.as_secs_f64();
    if v < bounds.min || v > bounds.max {
        return Err(Error::InvalidArgument(format!(
            "{name} must be between {}s and {}s, got {v}s",
            bounds.min, bounds.max
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> RedisConfig {
        RedisConfig::from_url(u).unwrap()
    }

    #[test]
    fn defaults_are_valid() {
        let s = Settings::new(url("redis://127.0.0.1:6379/0"), "killer:");
        assert_eq!(s.validate().unwrap().channel(), "killer:v1:cancel");
    }

    #[test]
    fn every_default_is_in_its_own_range() {
        for s in SECONDS {
            if let Some(d) = s.default {
                assert!(d >= s.min && d <= s.max, "{}", s.name);
            }
        }
        let s = Settings::new(url("redis://h/0"), "k:");
        assert_eq!(s.hard_timeout, Some(Duration::from_secs(60)));
    }

    #[test]
    fn each_bad_value_is_named() {
        let mut s = Settings::new(url("redis://127.0.0.1/0"), "killer:");
        s.redis.db = -1;
        assert!(s.validate().unwrap_err().to_string().contains("db"));
        s.redis.db = 0;
        s.poll_interval = Duration::from_millis(1);
        let e = s.validate().unwrap_err().to_string();
        assert!(e.contains("poll_interval") && e.contains("0.001"), "{e}");
        s.poll_interval = Duration::from_secs(1);
        s.grace = Duration::ZERO;
        assert!(s.validate().unwrap_err().to_string().contains("grace"));
    }
}
