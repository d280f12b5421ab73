//! The Ruby binding of sidekiq-killer: type conversion, GVL release, error
//! mapping. Decisions live in `killer-core`; Ruby conveniences in `lib/`.
//! Threading model: see README.md beside this file.

use magnus::{prelude::*, Error, IntoValue, Ruby};

mod client;
mod errors;
mod events;
mod express;
mod logging;
mod nogvl;
mod settings;
mod watcher;

/// `{ "poll_interval" => [default or nil, min, max, nil allowed], ... }`,
/// frozen: each setting in seconds as the core defines it.
fn seconds_table(ruby: &Ruby) -> Result<magnus::RHash, Error> {
    let table = ruby.hash_new();
    for s in killer_core::SECONDS {
        let entry = ruby.ary_new_from_values(&[
            s.default.into_value_with(ruby),
            s.min.into_value_with(ruby),
            s.max.into_value_with(ruby),
            s.optional.into_value_with(ruby),
        ]);
        entry.freeze();
        table.aset(s.name, entry)?;
    }
    table.freeze();
    Ok(table)
}

/// `[bytes, nil]`, or `[nil, what was looked at]` when no cgroup up the
/// hierarchy sets a memory limit.
fn cgroup_memory_limit() -> (Option<u64>, Option<String>) {
    match killer_core::cgroup_limit() {
        Ok(bytes) => (Some(bytes), None),
        Err(why) => (None, Some(why)),
    }
}

#[magnus::init(name = "killer")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    errors::init(ruby)?;
    events::init(ruby)?;
    let native = ruby.define_module("Killer")?.define_module("Native")?;
    native.const_set("SCHEMA_VERSION", killer_core::SCHEMA_VERSION)?;
    native.const_set("MAX_JID_BYTES", killer_core::MAX_JID_BYTES)?;
    native.const_set("MAX_CANCELS", killer_core::MAX_CANCELS)?;
    native.const_set("MAX_BY_BYTES", killer_core::MAX_BY_BYTES)?;
    native.const_set("MAX_REASON_BYTES", killer_core::MAX_REASON_BYTES)?;
    native.const_set("MAX_LEASE_NAME_BYTES", killer_core::MAX_LEASE_NAME_BYTES)?;
    native.const_set("MIN_LEASE_TTL", killer_core::MIN_LEASE_TTL.as_secs_f64())?;
    native.const_set("MAX_CLASS_BYTES", killer_core::MAX_CLASS_BYTES)?;
    // The GVL express lane is built in (Ruby >= 3.3).
    native.const_set("EXPRESS", express::available())?;
    native.const_set("MAX_SWITCHES", killer_core::MAX_SWITCHES)?;
    native.const_set("MAX_SWITCH_SECONDS", killer_core::MAX_SWITCH_SECONDS)?;
    native.const_set("SECONDS", seconds_table(ruby)?)?;
    // This process's memory cgroup limit, for max_memory_percent.
    native.define_module_function(
        "cgroup_memory_limit",
        magnus::function!(cgroup_memory_limit, 0),
    )?;
    client::init(ruby, native)?;
    watcher::init(ruby, native)?;
    Ok(())
}
