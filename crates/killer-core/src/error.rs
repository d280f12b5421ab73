use std::fmt;

pub type Result<T> = std::result::Result<T, Error>;

/// Every failure the core reports. The binding maps each variant to one Ruby
/// class (`ArgumentError` or a `Killer::Error` subclass), so the messages are
/// written for the person who will read them in a console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A value given by the user is unusable; nothing was sent to Redis.
    InvalidArgument(String),
    /// Redis could not be reached (refused, timed out, dropped).
    Connection(String),
    /// Redis answered with an error.
    Redis(String),
    /// A runtime created in a parent process was used after `fork`.
    Forked { started_in: u32, now: u32 },
    /// The watcher thread could not be started or has stopped.
    Runtime(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "{m}"),
            Error::Connection(m) => write!(f, "cannot reach Redis ({m}); {}", hint(m)),
            Error::Redis(m) => match hint_for_refusal(m) {
                Some(h) => write!(f, "Redis refused the command: {m}; {h}"),
                None => write!(f, "Redis refused the command: {m}"),
            },
            Error::Forked { started_in, now } => write!(
                f,
                "the killer runtime was started in process {started_in} and cannot be used after fork (this is {now}); Killer starts a new one in the child"
            ),
            Error::Runtime(m) => write!(f, "killer runtime: {m}"),
        }
    }
}

impl Error {
    /// Worth a new connection and one more try: the socket died, or the
    /// server is a replica now (a failover moved the master).
    pub fn is_connection(&self) -> bool {
        matches!(self, Error::Connection(_))
    }

    /// Redis refused a command for lack of an ACL permission.
    pub fn is_no_permission(&self) -> bool {
        matches!(self, Error::Redis(m) if m.to_ascii_uppercase().contains("NOPERM"))
    }
}

/// What to check, for a connection that failed with `m`.
fn hint(m: &str) -> &'static str {
    let lower = m.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    if has(&[
        "wrongpass",
        "noauth",
        "authentication",
        "invalid password",
        "invalid username",
    ]) {
        "check the username and password Killer uses (Sidekiq's, unless Killer.configure sets redis)"
    } else if has(&[
        "certificate",
        "tls",
        "ssl",
        "handshake",
        "unknownissuer",
        "corrupt message",
        "peer",
    ]) {
        "check TLS: rediss:// (ssl: true) only for a TLS port, and ssl_params (ca_file, ca_path, cert/key, verify_mode)"
    } else if has(&["readonly", "read-only", "replica"]) {
        "the server is a read-only replica: point Killer at the master, or use sentinels (a failover is followed by itself)"
    } else if has(&["sentinel", "master with given name", "master name"]) {
        "check the sentinels (sentinels:) and the master's name (name:, or the URL's host)"
    } else if has(&["lookup", "resolve", "name or service", "nodename"]) {
        "check the host name"
    } else if has(&["no such file", "not a directory", "permission denied"]) {
        "check the unix socket path (path:, or unix:///path) and its permissions"
    } else {
        "check that Redis runs at that address and port and is reachable from here; Killer uses Sidekiq's Redis unless Killer.configure sets redis"
    }
}

fn hint_for_refusal(m: &str) -> Option<&'static str> {
    m.to_ascii_uppercase().contains("NOPERM").then_some(
        "the Redis ACL user lacks a permission Killer needs (see the README's Redis section for the exact rules)",
    )
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Runtime(format!("cannot encode or decode a record: {e}"))
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        use redis::{ErrorKind, ServerErrorKind};
        let failover = matches!(
            e.kind(),
            ErrorKind::Server(
                ServerErrorKind::ReadOnly
                    | ServerErrorKind::MasterDown
                    | ServerErrorKind::BusyLoading
                    | ServerErrorKind::TryAgain
            ) | ErrorKind::MasterNameNotFoundBySentinel
                | ErrorKind::NoValidReplicasFoundBySentinel
        );
        if failover
            || e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
            || e.kind() == ErrorKind::AuthenticationFailed
        {
            Error::Connection(e.to_string())
        } else {
            Error::Redis(e.to_string())
        }
    }
}
