//! Routes the core's `tracing` events to the Ruby dispatcher, which writes
//! them to Sidekiq's logger with the jid. The subscriber is process-global;
//! the sink is swapped when a runtime starts (a forked child starts its own).
//!
//! The sink is an atomic pointer, not a lock: a child forked while the
//! parent's watcher was logging would inherit the lock held, and its own
//! `Killer.start` would wait for it forever. Each runtime's sender is
//! leaked on purpose (a few per process lifetime: one per runtime start),
//! so a logging thread never reads a sender that was freed under it.

use std::fmt::Write as _;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Once;

use crossbeam_channel::Sender;
use killer_core::{Event, LogLevel};
use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

static SINK: AtomicPtr<Sender<Event>> = AtomicPtr::new(null_mut());
static INSTALL: Once = Once::new();

pub(crate) fn route_to(sender: Sender<Event>) {
    // The previous sender stays allocated (see above).
    SINK.store(Box::into_raw(Box::new(sender)), Ordering::Release);
    INSTALL.call_once(|| {
        let subscriber = tracing_subscriber::registry()
            .with(LevelFilter::INFO)
            .with(ToDispatcher);
        // Another library may own the global subscriber; then we stay quiet
        // rather than fight it.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

struct ToDispatcher;

impl<S: Subscriber> Layer<S> for ToDispatcher {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        let sink = SINK.load(Ordering::Acquire);
        // SAFETY: non-null pointers in SINK come from Box::into_raw and are
        // never freed.
        let Some(sender) = (unsafe { sink.as_ref() }) else {
            return;
        };
        let mut line = Line::default();
        event.record(&mut line);
        let level = match *event.metadata().level() {
            Level::ERROR => LogLevel::Error,
            Level::WARN => LogLevel::Warn,
            Level::INFO => LogLevel::Info,
            _ => LogLevel::Debug,
        };
        let _ = sender.send(Event::Log {
            level,
            jid: line.jid,
            message: format!("{}{}", line.message, line.fields),
        });
    }
}

#[derive(Default)]
struct Line {
    message: String,
    jid: Option<String>,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "jid" => self.jid = Some(value.to_owned()),
            "message" => self.message = value.to_owned(),
            name => {
                let _ = write!(self.fields, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "jid" => self.jid = Some(format!("{value:?}").trim_matches('"').to_owned()),
            "message" => self.message = format!("{value:?}"),
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }
}
