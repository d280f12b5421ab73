//! The one place Rust errors become Ruby exceptions. The classes are defined
//! in `lib/killer/errors.rb`, loaded before this library; they are looked
//! up once, when the library loads (a missing one fails the load with a
//! clear message), and held in `Lazy` statics after that, never looked up
//! by name per error.

use killer_core::Error as CoreError;
use magnus::value::Lazy;
use magnus::{prelude::*, Error, ExceptionClass, RModule, Ruby};

fn killer_class(ruby: &Ruby, name: &str) -> Result<ExceptionClass, Error> {
    ruby.class_object()
        .const_get::<_, RModule>("Killer")?
        .const_get::<_, ExceptionClass>(name)
}

macro_rules! killer_exception {
    ($static:ident, $name:literal) => {
        static $static: Lazy<ExceptionClass> = Lazy::new(|ruby| {
            // Checked by `init` before anything reads it.
            killer_class(ruby, $name).expect(concat!("Killer::", $name, " is defined"))
        });
    };
}

killer_exception!(ERROR, "Error");
killer_exception!(CONNECTION_ERROR, "ConnectionError");
killer_exception!(REDIS_ERROR, "RedisError");
killer_exception!(FORK_ERROR, "ForkError");

/// Resolves every class now, so that an error later never has to.
pub(crate) fn init(ruby: &Ruby) -> Result<(), Error> {
    for name in ["Error", "ConnectionError", "RedisError", "ForkError"] {
        killer_class(ruby, name).map_err(|_| {
            Error::new(
                ruby.exception_load_error(),
                format!("Killer::{name} is not defined: require \"killer\" rather than its native library alone"),
            )
        })?;
    }
    for class in [&ERROR, &CONNECTION_ERROR, &REDIS_ERROR, &FORK_ERROR] {
        Lazy::force(class, ruby);
    }
    Ok(())
}

pub(crate) fn to_ruby(ruby: &Ruby, e: CoreError) -> Error {
    let class = match &e {
        CoreError::InvalidArgument(_) => ruby.exception_arg_error(),
        CoreError::Connection(_) => ruby.get_inner(&CONNECTION_ERROR),
        CoreError::Redis(_) => ruby.get_inner(&REDIS_ERROR),
        CoreError::Forked { .. } => ruby.get_inner(&FORK_ERROR),
        CoreError::Runtime(_) => ruby.get_inner(&ERROR),
    };
    Error::new(class, e.to_string())
}

pub(crate) fn argument(ruby: &Ruby, message: String) -> Error {
    Error::new(ruby.exception_arg_error(), message)
}

pub(crate) fn internal(ruby: &Ruby, message: &str) -> Error {
    Error::new(ruby.get_inner(&ERROR), message.to_owned())
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
