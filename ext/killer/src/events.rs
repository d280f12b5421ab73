//! What crosses from the core to Ruby as named objects: the dispatcher's
//! events, the memory status and a job's stop. The Struct classes are
//! defined in `lib/killer/native.rb` (loaded before this library), looked up
//! once at load, and built here; never positional arrays.

use killer_core::{Event, MemoryStatus, Stop};
use magnus::value::Lazy;
use magnus::{prelude::*, Error, IntoValue, RClass, RModule, Ruby, Value};

fn native_class(ruby: &Ruby, name: &str) -> Result<RClass, Error> {
    ruby.class_object()
        .const_get::<_, RModule>("Killer")?
        .const_get::<_, RModule>("Native")?
        .const_get::<_, RClass>(name)
}

macro_rules! native_struct {
    ($static:ident, $name:literal) => {
        static $static: Lazy<RClass> = Lazy::new(|ruby| {
            // Checked by `init` before anything reads it.
            native_class(ruby, $name).expect(concat!("Killer::Native::", $name, " is defined"))
        });
    };
}

native_struct!(CANCEL, "Cancel");
native_struct!(LOG_LINE, "LogLine");
native_struct!(LEASE_LOST, "LeaseLost");
native_struct!(RECYCLING, "Recycling");
native_struct!(RECYCLE_STEP, "RecycleStep");
native_struct!(MEMORY_STATUS, "MemoryStatus");
native_struct!(GROWER, "Grower");
native_struct!(STOP, "Stop");

const NAMES: [&str; 8] = [
    "Cancel",
    "LogLine",
    "LeaseLost",
    "Recycling",
    "RecycleStep",
    "MemoryStatus",
    "Grower",
    "Stop",
];

/// Resolves every class now, so that building an event never has to.
pub(crate) fn init(ruby: &Ruby) -> Result<(), Error> {
    for name in NAMES {
        native_class(ruby, name).map_err(|_| {
            Error::new(
                ruby.exception_load_error(),
                format!("Killer::Native::{name} is not defined: require \"killer\" rather than its native library alone"),
            )
        })?;
    }
    for class in [
        &CANCEL,
        &LOG_LINE,
        &LEASE_LOST,
        &RECYCLING,
        &RECYCLE_STEP,
        &MEMORY_STATUS,
        &GROWER,
        &STOP,
    ] {
        Lazy::force(class, ruby);
    }
    Ok(())
}

fn sym(ruby: &Ruby, s: &str) -> Value {
    ruby.to_symbol(s).into_value_with(ruby)
}

fn build(ruby: &Ruby, class: &Lazy<RClass>, fields: &[Value]) -> Result<Value, Error> {
    ruby.get_inner(class).new_instance(fields)
}

/// One event for the dispatcher: a Struct, or `:gc` / `:shutdown`. None
/// for a wake-up, which carries nothing.
pub(crate) fn event(ruby: &Ruby, event: Event) -> Result<Option<Value>, Error> {
    let value = match event {
        Event::Wake => return Ok(None),
        Event::Cancel {
            token,
            jid,
            attempt,
            why,
            class,
            requested_at,
        } => build(
            ruby,
            &CANCEL,
            &[
                token.into_value_with(ruby),
                jid.into_value_with(ruby),
                attempt.into_value_with(ruby),
                sym(ruby, why.as_str()),
                class.into_value_with(ruby),
                requested_at.into_value_with(ruby),
            ],
        )?,
        Event::Log {
            level,
            jid,
            message,
        } => build(
            ruby,
            &LOG_LINE,
            &[
                sym(ruby, level.as_str()),
                jid.into_value_with(ruby),
                message.into_value_with(ruby),
            ],
        )?,
        Event::LeaseLost { id, name, reason } => build(
            ruby,
            &LEASE_LOST,
            &[
                id.into_value_with(ruby),
                name.into_value_with(ruby),
                reason.into_value_with(ruby),
            ],
        )?,
        Event::Recycling {
            reason,
            bytes,
            running,
        } => {
            let growers = ruby.ary_new_capa(running.len());
            for (class, jid, grew) in running {
                growers.push(grower(ruby, class, jid, grew)?)?;
            }
            build(
                ruby,
                &RECYCLING,
                &[
                    reason.into_value_with(ruby),
                    bytes.into_value_with(ruby),
                    growers.into_value_with(ruby),
                ],
            )?
        }
        Event::RecycleStep {
            state,
            message,
            bytes,
            limit,
            top,
        } => {
            let growers = ruby.ary_new_capa(top.len());
            for (class, jid, grew) in top {
                growers.push(grower(ruby, class, jid, grew)?)?;
            }
            build(
                ruby,
                &RECYCLE_STEP,
                &[
                    sym(ruby, state),
                    message.into_value_with(ruby),
                    bytes.into_value_with(ruby),
                    limit.into_value_with(ruby),
                    growers.into_value_with(ruby),
                ],
            )?
        }
        Event::RunGc => sym(ruby, "gc"),
        Event::Shutdown => sym(ruby, "shutdown"),
    };
    Ok(Some(value))
}

fn grower(ruby: &Ruby, class: String, jid: String, grew: i64) -> Result<Value, Error> {
    build(
        ruby,
        &GROWER,
        &[
            class.into_value_with(ruby),
            jid.into_value_with(ruby),
            grew.into_value_with(ruby),
        ],
    )
}

pub(crate) fn memory_status(ruby: &Ruby, st: MemoryStatus) -> Result<Value, Error> {
    let top = ruby.ary_new_capa(st.top.len());
    for g in st.top {
        top.push(grower(ruby, g.class, g.jid, g.grew)?)?;
    }
    // `:cgroup` source: { version:, dir:, usage:, working_set:, limit:,
    // limit_dir: } (bytes), else nil.
    let cgroup = match st.cgroup {
        Some(c) => {
            let h = ruby.hash_new();
            h.aset(sym(ruby, "version"), c.version)?;
            h.aset(sym(ruby, "dir"), c.dir)?;
            h.aset(sym(ruby, "usage"), c.usage)?;
            h.aset(sym(ruby, "working_set"), c.working_set)?;
            h.aset(sym(ruby, "limit"), c.limit)?;
            h.aset(sym(ruby, "limit_dir"), c.limit_dir)?;
            h.into_value_with(ruby)
        }
        None => ruby.qnil().into_value_with(ruby),
    };
    build(
        ruby,
        &MEMORY_STATUS,
        &[
            st.bytes.into_value_with(ruby),
            st.soft.into_value_with(ruby),
            st.hard.into_value_with(ruby),
            sym(ruby, st.phase),
            st.busy.into_value_with(ruby),
            st.reason.into_value_with(ruby),
            top.into_value_with(ruby),
            cgroup,
        ],
    )
}

pub(crate) fn stop(ruby: &Ruby, stop: Stop) -> Result<Value, Error> {
    build(
        ruby,
        &STOP,
        &[
            stop.id.into_value_with(ruby),
            sym(ruby, stop.reason.as_str()),
        ],
    )
}
