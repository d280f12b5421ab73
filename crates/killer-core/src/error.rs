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
            Error::Connection(m) => write!(
                f,
                "cannot reach Redis ({m}); check Killer.configure {{ |c| c.redis_url = ... }} or REDIS_URL"
            ),
            Error::Redis(m) => write!(f, "Redis refused the command: {m}"),
            Error::Forked { started_in, now } => write!(
                f,
                "the killer runtime was started in process {started_in} and cannot be used after fork (this is {now}); Killer starts a new one in the child"
            ),
            Error::Runtime(m) => write!(f, "killer runtime: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Runtime(format!("cannot encode or decode a record: {e}"))
    }
}

impl From<redis::RedisError> for Error {
    fn from(e: redis::RedisError) -> Self {
        if e.is_io_error()
            || e.is_timeout()
            || e.is_connection_dropped()
            || e.is_connection_refusal()
        {
            Error::Connection(e.to_string())
        } else {
            Error::Redis(e.to_string())
        }
    }
}
