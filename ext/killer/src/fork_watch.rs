//! Tells whether this process was forked since a moment, without a getpid
//! syscall: jobs ask on every start, and a syscall per job is measurable in
//! a no-op job's cost. A `pthread_atfork` child handler, installed once,
//! bumps a generation counter that the child inherits already bumped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// The current fork generation, to hand to `forked_since` later.
pub(crate) fn generation() -> u64 {
    INSTALL.call_once(|| {
        // SAFETY: registers a handler that only touches an atomic, which is
        // async-signal-safe as fork's child handlers must be.
        let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
        INSTALLED.store(rc == 0, Ordering::Relaxed);
    });
    GENERATION.load(Ordering::Relaxed)
}

/// Whether this process is a fork of the one that took `generation` (and
/// had `pid`). Falls back to comparing pids if the handler could not be
/// registered.
pub(crate) fn forked_since(generation: u64, pid: u32) -> bool {
    if INSTALLED.load(Ordering::Relaxed) {
        GENERATION.load(Ordering::Relaxed) != generation
    } else {
        std::process::id() != pid
    }
}
