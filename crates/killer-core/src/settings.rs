use std::time::Duration;

use crate::error::{Error, Result};
use crate::redis_config::RedisConfig;
use crate::schema::Keys;

/// Everything the watcher and the client need, validated once. The Ruby
/// `Killer::Configuration` validates too (so errors name the Ruby option);
/// this is the last line for anyone calling the core directly.
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
}

impl Settings {
    pub fn new(redis: RedisConfig, key_prefix: &str) -> Self {
        Settings {
            redis,
            key_prefix: key_prefix.to_owned(),
            poll_interval: Duration::from_secs(1),
            cancel_ttl: Duration::from_secs(24 * 3600),
            grace: Duration::from_secs(5),
            network_timeout: Duration::from_secs(3),
            hard_timeout: None,
            report_interval: Duration::from_secs(5),
            hostname: String::new(),
        }
    }

    pub fn validate(&self) -> Result<Keys> {
        self.redis.connector()?;
        check_range(
            "poll_interval",
            self.poll_interval,
            Duration::from_millis(10),
            Duration::from_secs(3600),
        )?;
        check_range(
            "cancel_ttl",
            self.cancel_ttl,
            Duration::from_secs(1),
            Duration::from_secs(365 * 86400),
        )?;
        check_range(
            "grace",
            self.grace,
            Duration::from_millis(10),
            Duration::from_secs(86400),
        )?;
        check_range(
            "report_interval",
            self.report_interval,
            Duration::from_millis(100),
            Duration::from_secs(3600),
        )?;
        if self.hostname.len() > 255 {
            return Err(Error::InvalidArgument(format!(
                "hostname must be at most 255 bytes, got {} bytes",
                self.hostname.len()
            )));
        }
        check_range(
            "network_timeout",
            self.network_timeout,
            Duration::from_millis(10),
            Duration::from_secs(600),
        )?;
        Keys::new(&self.key_prefix)
    }
}

fn check_range(name: &str, v: Duration, min: Duration, max: Duration) -> Result<()> {
    if v < min || v > max {
        return Err(Error::InvalidArgument(format!(
            "{name} must be between {}s and {}s, got {}s",
            min.as_secs_f64(),
            max.as_secs_f64(),
            v.as_secs_f64()
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
