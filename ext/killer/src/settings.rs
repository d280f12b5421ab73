//! Settings cross from Ruby once, as one Hash with named (Symbol) keys,
//! built by `Killer::Configuration#to_native` and `Killer::RedisOptions`.
//! Only conversion happens here; Ruby has already said which option is
//! wrong in its own words, and the core checks again.

use std::path::PathBuf;

use killer_core::{RedisConfig, Sentinels, Server, Settings, Tls};
use magnus::{Error, RHash, Ruby, TryConvert, Value};

use crate::errors::{self, argument};

/// The value under `key`, converted; a missing key is nil.
fn get<T: TryConvert>(ruby: &Ruby, hash: RHash, key: &str) -> Result<T, Error> {
    let value: Value = hash.aref(ruby.to_symbol(key))?;
    T::try_convert(value).map_err(|e| argument(ruby, format!("{key}: {e}")))
}

pub(crate) fn settings(ruby: &Ruby, hash: RHash) -> Result<Settings, Error> {
    let redis = redis_config(ruby, get(ruby, hash, "redis")?)?;
    let mut s = Settings::new(redis, &get::<String>(ruby, hash, "key_prefix")?);
    let secs = |key: &str| -> Result<std::time::Duration, Error> {
        errors::seconds(ruby, key, get::<f64>(ruby, hash, key)?)
    };
    s.poll_interval = secs("poll_interval")?;
    s.cancel_ttl = secs("cancel_ttl")?;
    s.grace = secs("grace")?;
    s.network_timeout = secs("network_timeout")?;
    s.report_interval = secs("report_interval")?;
    s.hard_timeout = get::<Option<f64>>(ruby, hash, "hard_timeout")?
        .map(|v| errors::seconds(ruby, "hard_timeout", v))
        .transpose()?;
    s.hostname = get::<Option<String>>(ruby, hash, "hostname")?.unwrap_or_default();
    s.express = get::<Option<bool>>(ruby, hash, "express")?.unwrap_or(true);
    Ok(s)
}

/// `Killer::RedisOptions#to_native`: host/port or path or sentinels, db,
/// credentials, and TLS.
pub(crate) fn redis_config(ruby: &Ruby, hash: RHash) -> Result<RedisConfig, Error> {
    let sentinels: Option<Vec<(String, u16)>> = get(ruby, hash, "sentinels")?;
    let path: Option<String> = get(ruby, hash, "path")?;
    let server = if let Some(nodes) = sentinels {
        Server::Sentinel(Sentinels {
            master: get::<Option<String>>(ruby, hash, "master_name")?.unwrap_or_default(),
            nodes,
            username: get(ruby, hash, "sentinel_username")?,
            password: get(ruby, hash, "sentinel_password")?,
            tls: get::<Option<bool>>(ruby, hash, "sentinel_ssl")?.unwrap_or(false),
        })
    } else if let Some(path) = path {
        Server::Unix {
            path: PathBuf::from(path),
        }
    } else {
        Server::Tcp {
            host: get::<Option<String>>(ruby, hash, "host")?.unwrap_or_else(|| "localhost".into()),
            port: get::<Option<u16>>(ruby, hash, "port")?.unwrap_or(6379),
        }
    };
    let tls = if get::<Option<bool>>(ruby, hash, "ssl")?.unwrap_or(false) {
        Some(Tls {
            ca_file: get::<Option<String>>(ruby, hash, "ca_file")?.map(PathBuf::from),
            ca_path: get::<Option<String>>(ruby, hash, "ca_path")?.map(PathBuf::from),
            cert_pem: get(ruby, hash, "cert")?,
            key_pem: get(ruby, hash, "key")?,
            verify: get::<Option<bool>>(ruby, hash, "verify")?.unwrap_or(true),
        })
    } else {
        None
    };
    Ok(RedisConfig {
        server,
        db: get::<Option<i64>>(ruby, hash, "db")?.unwrap_or(0),
        username: get(ruby, hash, "username")?,
        password: get(ruby, hash, "password")?,
        tls,
    })
}
