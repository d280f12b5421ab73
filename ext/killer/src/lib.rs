//! The Ruby binding of sidekiq-killer: type conversion, GVL release, error
//! mapping. Decisions live in `killer-core`; Ruby conveniences in `lib/`.
//! Threading model: see README.md beside this file.

use magnus::{prelude::*, Error, Ruby};

mod client;
mod errors;
mod events;
mod logging;
mod nogvl;
mod settings;
mod watcher;

#[magnus::init(name = "killer")]
fn init(ruby: &Ruby) -> Result<(), Error> {
    errors::init(ruby)?;
    events::init(ruby)?;
    let native = ruby.define_module("Killer")?.define_module("Native")?;
    native.const_set("SCHEMA_VERSION", killer_core::SCHEMA_VERSION)?;
    native.const_set("MAX_JID_BYTES", killer_core::MAX_JID_BYTES)?;
    native.const_set("MAX_CANCELS", killer_core::MAX_CANCELS)?;
    // The container's memory limit (cgroup v2), for max_memory_percent.
    native.define_module_function(
        "cgroup_memory_limit",
        magnus::function!(killer_core::cgroup_limit, 0),
    )?;
    client::init(ruby, native)?;
    watcher::init(ruby, native)?;
    Ok(())
}
