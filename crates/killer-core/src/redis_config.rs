//! Where Killer's Redis is and how to reach it, in the shapes Sidekiq
//! accepts: TCP or a unix socket, a `db`, ACL users, TLS (a CA file or
//! directory, a client certificate, or no verification as on Heroku), and
//! a master found through Redis Sentinel.
//!
//! Nothing here prints a password: [`RedisConfig`]'s `Display` and `Debug`
//! show `REDACTED` where Sidekiq does, and [`RedisConfig::redact`] scrubs
//! any text (an error from the redis crate, say) before it leaves the core.

use std::fmt;
use std::path::PathBuf;

use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo, TlsMode};

use crate::error::{Error, Result};
use crate::redact::{redact_text, url_secrets};
pub use crate::redact::{redact_url, REDACTED};
use crate::tls::Certificates;
pub use crate::tls::Tls;

/// The Redis Killer talks to, as one value: built by the binding from the
/// options Sidekiq (or `Killer.configure { |c| c.redis = ... }`) was given,
/// or from a URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub server: Server,
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Some: talk TLS to Redis (`rediss://`, `ssl: true`).
    pub tls: Option<Tls>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Server {
    Tcp {
        host: String,
        port: u16,
    },
    Unix {
        path: PathBuf,
    },
    /// The master named `master`, as the sentinels say it is now.
    Sentinel(Sentinels),
}

#[derive(Clone, PartialEq, Eq)]
pub struct Sentinels {
    pub master: String,
    pub nodes: Vec<(String, u16)>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Talk TLS to the sentinels too (with the same `Tls` settings).
    pub tls: bool,
}

impl RedisConfig {
    /// From a `redis://`, `rediss://` or `unix://` URL (userinfo, port, db,
    /// `?db=` for sockets). Errors never repeat the URL's password.
    pub fn from_url(url: &str) -> Result<Self> {
        let info = url.into_connection_info().map_err(|e| {
            Error::InvalidArgument(format!(
                "redis_url {} is not a Redis URL ({})",
                redact_url(url),
                redact_text(&e.to_string(), &url_secrets(url))
            ))
        })?;
        let (server, tls) = match info.addr() {
            ConnectionAddr::Tcp(host, port) => (
                Server::Tcp {
                    host: host.clone(),
                    port: *port,
                },
                None,
            ),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => (
                Server::Tcp {
                    host: host.clone(),
                    port: *port,
                },
                Some(Tls {
                    verify: !insecure,
                    ..Tls::default()
                }),
            ),
            ConnectionAddr::Unix(path) => (Server::Unix { path: path.clone() }, None),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "redis_url {} names an address Killer cannot use ({other})",
                    redact_url(url)
                )))
            }
        };
        let redis = info.redis_settings();
        Ok(RedisConfig {
            server,
            db: redis.db(),
            username: redis.username().map(str::to_owned),
            password: redis.password().map(str::to_owned),
            tls,
        })
    }

    /// Every secret this configuration holds (for [`Self::redact`]).
    fn secrets(&self) -> Vec<&str> {
        let mut out = Vec::new();
        out.extend(self.password.as_deref());
        if let Server::Sentinel(s) = &self.server {
            out.extend(s.password.as_deref());
        }
        out.extend(self.tls.as_ref().and_then(|t| t.key_pem.as_deref()));
        out
    }

    /// `text` with every password of this configuration replaced by
    /// `REDACTED` (as typed, and as it would appear percent-encoded).
    pub fn redact(&self, text: &str) -> String {
        let secrets: Vec<String> = self.secrets().into_iter().map(str::to_owned).collect();
        redact_text(text, &secrets)
    }

    /// An error with every password of this configuration scrubbed.
    pub fn redact_error(&self, e: Error) -> Error {
        match e {
            Error::InvalidArgument(m) => Error::InvalidArgument(self.redact(&m)),
            Error::Connection(m) => Error::Connection(self.redact(&m)),
            Error::Redis(m) => Error::Redis(self.redact(&m)),
            Error::Runtime(m) => Error::Runtime(self.redact(&m)),
            other => other,
        }
    }

    /// Checks what can be checked without the network (files readable,
    /// PEM that parses, a sentinel list that is not empty) and builds the
    /// connector every connection of Killer goes through.
    pub(crate) fn connector(&self) -> Result<Connector> {
        self.check_shape()?;
        let certs = match &self.tls {
            Some(tls) => tls.certificates()?,
            None => None,
        };
        let connector = match &self.server {
            Server::Sentinel(s) => Connector::Sentinel(tokio::sync::Mutex::new(
                self.sentinel_client(s, certs.as_ref())
                    .map_err(|e| self.invalid(e))?,
            )),
            Server::Tcp { .. } | Server::Unix { .. } => {
                Connector::Direct(self.direct_client(certs).map_err(|e| self.invalid(e))?)
            }
        };
        Ok(connector)
    }

    fn invalid(&self, e: redis::RedisError) -> Error {
        Error::InvalidArgument(format!(
            "redis {self} cannot be used: {}",
            self.redact(&e.to_string())
        ))
    }

    fn check_shape(&self) -> Result<()> {
        match &self.server {
            Server::Tcp { host, .. } if host.is_empty() => {
                return Err(Error::InvalidArgument(
                    "redis host must not be empty".into(),
                ))
            }
            Server::Unix { .. } if self.tls.is_some() => {
                return Err(Error::InvalidArgument(
                    "redis over a unix socket (path) cannot use TLS (ssl)".into(),
                ))
            }
            Server::Sentinel(s) if s.nodes.is_empty() => {
                return Err(Error::InvalidArgument(
                    "redis sentinels must list at least one sentinel".into(),
                ))
            }
            Server::Sentinel(s) if s.master.is_empty() => {
                return Err(Error::InvalidArgument(
                    "redis with sentinels needs the master's name (name:, or the URL's host)"
                        .into(),
                ))
            }
            _ => {}
        }
        if !(0..=1_000_000).contains(&self.db) {
            return Err(Error::InvalidArgument(format!(
                "redis db must be between 0 and 1000000, got {}",
                self.db
            )));
        }
        Ok(())
    }

    fn node_settings(&self) -> RedisConnectionInfo {
        let mut info = RedisConnectionInfo::default()
            .set_db(self.db)
            .set_lib_name("sidekiq-killer", env!("CARGO_PKG_VERSION"));
        if let Some(u) = &self.username {
            info = info.set_username(u);
        }
        if let Some(p) = &self.password {
            info = info.set_password(p);
        }
        info
    }

    fn direct_client(&self, certs: Option<Certificates>) -> redis::RedisResult<redis::Client> {
        let addr = match (&self.server, &self.tls) {
            (Server::Tcp { host, port }, None) => ConnectionAddr::Tcp(host.clone(), *port),
            (Server::Tcp { host, port }, Some(tls)) => ConnectionAddr::TcpTls {
                host: host.clone(),
                port: *port,
                insecure: !tls.verify,
                tls_params: None,
            },
            (Server::Unix { path }, _) => ConnectionAddr::Unix(path.clone()),
            (Server::Sentinel(_), _) => unreachable!("sentinels go through sentinel_client"),
        };
        let info = addr
            .into_connection_info()?
            .set_redis_settings(self.node_settings());
        match certs {
            Some(certs) => certs.client(info),
            None => redis::Client::open(info),
        }
    }

    fn sentinel_client(
        &self,
        s: &Sentinels,
        certs: Option<&Certificates>,
    ) -> redis::RedisResult<SentinelClient> {
        let verify = self.tls.as_ref().is_none_or(|t| t.verify);
        let mode = if verify {
            TlsMode::Secure
        } else {
            TlsMode::Insecure
        };
        let nodes = s.nodes.iter().map(|(host, port)| {
            if s.tls && self.tls.is_some() {
                ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port: *port,
                    insecure: !verify,
                    tls_params: None,
                }
            } else {
                ConnectionAddr::Tcp(host.clone(), *port)
            }
        });
        let mut b = SentinelClientBuilder::new(nodes, &s.master, SentinelServerType::Master)?
            .set_client_to_redis_db(self.db);
        if let Some(u) = &self.username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = &self.password {
            b = b.set_client_to_redis_password(p);
        }
        if let Some(u) = &s.username {
            b = b.set_client_to_sentinel_username(u);
        }
        if let Some(p) = &s.password {
            b = b.set_client_to_sentinel_password(p);
        }
        if self.tls.is_some() {
            b = b.set_client_to_redis_tls_mode(mode);
            if let Some(c) = certs {
                b = c.apply(b, s.tls);
            }
            if s.tls {
                b = b.set_client_to_sentinel_tls_mode(mode);
            }
        }
        b.build()
    }
}

/// How Killer reaches Redis: a fixed client, or the sentinels to ask for
/// the master each time a connection is (re)made.
pub(crate) enum Connector {
    Direct(redis::Client),
    Sentinel(tokio::sync::Mutex<SentinelClient>),
}

impl Connector {
    /// A client for the Redis to talk to now: for sentinels, the master
    /// they name at this moment (checked with ROLE).
    pub(crate) async fn resolve(&self) -> redis::RedisResult<redis::Client> {
        match self {
            Connector::Direct(c) => Ok(c.clone()),
            Connector::Sentinel(s) => s.lock().await.async_get_client().await,
        }
    }

    /// A client for one live sentinel (for `+switch-master`), or None when
    /// Redis is not behind sentinels.
    pub(crate) async fn sentinel(&self) -> Option<redis::RedisResult<redis::Client>> {
        match self {
            Connector::Direct(_) => None,
            Connector::Sentinel(s) => Some(s.lock().await.async_get_sentinel_client().await),
        }
    }
}

impl fmt::Display for RedisConfig {
    /// As Sidekiq logs it: `redis://:REDACTED@host:6379/0`,
    /// `unix:///run/redis.sock?db=1`, `sentinel mymaster via h:26379 (db 0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match (&self.username, &self.password) {
            (Some(u), Some(_)) => format!("{u}:{REDACTED}@"),
            (None, Some(_)) => format!(":{REDACTED}@"),
            (Some(u), None) => format!("{u}@"),
            (None, None) => String::new(),
        };
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        match &self.server {
            Server::Tcp { host, port } => {
                let host = if host.contains(':') {
                    format!("[{host}]")
                } else {
                    host.clone()
                };
                write!(f, "{scheme}://{auth}{host}:{port}/{}", self.db)
            }
            Server::Unix { path } => {
                write!(f, "unix://{}?db={}", path.display(), self.db)?;
                match (&self.username, &self.password) {
                    (Some(u), Some(_)) => write!(f, " (user {u}, password {REDACTED})"),
                    (None, Some(_)) => write!(f, " (password {REDACTED})"),
                    (Some(u), None) => write!(f, " (user {u})"),
                    (None, None) => Ok(()),
                }
            }
            Server::Sentinel(s) => {
                let nodes: Vec<String> = s.nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect();
                write!(
                    f,
                    "{scheme}://{auth}{}/{} via sentinels {}",
                    s.master,
                    self.db,
                    nodes.join(",")
                )?;
                if s.password.is_some() {
                    write!(f, " (sentinel password {REDACTED})")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisConfig({self})")
    }
}

impl fmt::Debug for Sentinels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sentinels")
            .field("master", &self.master)
            .field("nodes", &self.nodes)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("tls", &self.tls)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_configs() {
        let c = RedisConfig::from_url("redis://alice:s3cr%40t@10.0.0.5:6380/4").unwrap();
        assert_eq!(
            c.server,
            Server::Tcp {
                host: "10.0.0.5".into(),
                port: 6380
            }
        );
        assert_eq!(
            (c.db, c.username.as_deref(), c.password.as_deref()),
            (4, Some("alice"), Some("s3cr@t"))
        );
        assert!(c.tls.is_none());
        let c = RedisConfig::from_url("rediss://:pw@cache.example.com:25061").unwrap();
        assert!(c.tls.as_ref().unwrap().verify);
        let c = RedisConfig::from_url("unix:///run/redis.sock?db=2").unwrap();
        assert_eq!(
            (c.server, c.db),
            (
                Server::Unix {
                    path: "/run/redis.sock".into()
                },
                2
            )
        );
    }

    #[test]
    fn no_text_shows_a_password() {
        let c = RedisConfig::from_url("redis://alice:hunter2@h:1/0").unwrap();
        assert_eq!(c.to_string(), "redis://alice:REDACTED@h:1/0");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            c.redact("AUTH failed for hunter2 and hunter2"),
            "AUTH failed for REDACTED and REDACTED"
        );
        let e = RedisConfig::from_url("nope://bob:hunter2@h").unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("REDACTED"), "{e}");
        assert_eq!(redact_url("redis://:p%40ss@h"), "redis://:REDACTED@h");
        let mut s = c.clone();
        s.server = Server::Sentinel(Sentinels {
            master: "mymaster".into(),
            nodes: vec![("s1".into(), 26379)],
            username: None,
            password: Some("sentinel-secret".into()),
            tls: false,
        });
        let shown = format!("{s} {s:?}");
        assert!(
            !shown.contains("sentinel-secret") && !shown.contains("hunter2"),
            "{shown}"
        );
        assert_eq!(s.redact("x sentinel-secret"), "x REDACTED");
    }

    #[test]
    fn bad_shapes_name_their_option() {
        let mut c = RedisConfig::from_url("redis://h:1/0").unwrap();
        c.tls = Some(Tls {
            ca_file: Some("/nonexistent/ca.pem".into()),
            verify: true,
            ..Tls::default()
        });
        let e = c.connector().err().unwrap().to_string();
        assert!(
            e.contains("ca_file") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
        c.tls = Some(Tls {
            cert_pem: Some("x".into()),
            verify: true,
            ..Tls::default()
        });
        let e = c.connector().err().unwrap().to_string();
        assert!(e.contains(":cert") && e.contains(":key"), "{e}");
        c.tls = None;
        c.server = Server::Sentinel(Sentinels {
            master: "m".into(),
            nodes: vec![],
            username: None,
            password: None,
            tls: false,
        });
        assert!(c
            .connector()
            .err()
            .unwrap()
            .to_string()
            .contains("sentinel"));
    }

    #[test]
    fn tls_without_a_ca_uses_the_system_roots_and_builds() {
        let c = RedisConfig::from_url("rediss://h:6380/0").unwrap();
        assert!(c.connector().is_ok());
    }
}
