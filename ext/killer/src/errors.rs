//! The one place Rust errors become Ruby exceptions. The classes are defined
//! in `lib/killer/errors.rb`, which is loaded before this library.

use killer_core::Error as CoreError;
use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};

pub(crate) fn to_ruby(ruby: &Ruby, e: CoreError) -> Error {
    let class = match &e {
        CoreError::InvalidArgument(_) => {
            return Error::new(ruby.exception_arg_error(), e.to_string())
        }
        CoreError::Connection(_) => "ConnectionError",
        CoreError::Redis(_) => "RedisError",
        CoreError::Forked { .. } => "ForkError",
        CoreError::Runtime(_) => "Error",
    };
    Error::new(killer_class(ruby, class), e.to_string())
}

pub(crate) fn argument(ruby: &Ruby, message: String) -> Error {
    Error::new(ruby.exception_arg_error(), message)
}

pub(crate) fn internal(ruby: &Ruby, message: &str) -> Error {
    Error::new(killer_class(ruby, "Error"), message.to_owned())
}

fn killer_class(ruby: &Ruby, name: &str) -> ExceptionClass {
    ruby.class_object()
        .const_get::<_, RModule>("Killer")
        .and_then(|m| m.const_get::<_, ExceptionClass>(name))
        // lib/killer/errors.rb is always loaded first; if someone loads the
        // library alone, a RuntimeError still carries the message.
        .unwrap_or_else(|_| ruby.exception_runtime_error())
}

/// Seconds from Ruby (Integer or Float) to a Duration, refusing negative,
/// NaN and absurd values with an ArgumentError that names the option.
pub(crate) fn seconds(ruby: &Ruby, name: &str, v: f64) -> Result<std::time::Duration, Error> {
    std::time::Duration::try_from_secs_f64(v).map_err(|_| {
        argument(
            ruby,
            format!("{name} must be a positive number of seconds, got {v}"),
        )
    })
}
