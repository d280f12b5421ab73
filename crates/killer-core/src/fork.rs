//! Tells whether this process was forked since a moment, without a getpid
//! syscall: jobs ask on every start, and a syscall per job is measurable in
//! a no-op job's cost. A `pthread_atfork` child handler, installed once,
//! bumps a generation counter that the child inherits already bumped. The
//! one fork check of the gem: the watcher, the console client and the
//! binding all ask it.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Once;

static GENERATION: AtomicU64 = AtomicU64::new(0);
static INSTALLED: AtomicBool = AtomicBool::new(false);
static INSTALL: Once = Once::new();

extern "C" fn in_child() {
    GENERATION.fetch_add(1, Ordering::Relaxed);
}

/// This process as of now: hand it to [`Origin::forked`] later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    generation: u64,
    pid: u32,
}

impl Origin {
    pub fn here() -> Self {
        INSTALL.call_once(|| {
            // SAFETY: registers a handler that only touches an atomic, which
            // is async-signal-safe as fork's child handlers must be.
            let rc = unsafe { libc::pthread_atfork(None, None, Some(in_child)) };
            INSTALLED.store(rc == 0, Ordering::Relaxed);
        });
        Origin {
            generation: GENERATION.load(Ordering::Relaxed),
            pid: std::process::id(),
        }
    }

    /// Whether this process is a fork of the one that made `self`. Falls
    /// back to comparing pids if the handler could not be registered.
    pub fn forked(&self) -> bool {
        if INSTALLED.load(Ordering::Relaxed) {
            GENERATION.load(Ordering::Relaxed) != self.generation
        } else {
            std::process::id() != self.pid
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

/// A value of this process: a forked child gets a fresh one, not its copy
/// of the parent's, whose lock a thread that did not come along may hold
/// forever. The copy is leaked (one per fork, and only once used there).
pub struct PerProcess<T: 'static> {
    current: AtomicPtr<(Origin, T)>,
    make: fn() -> T,
    _owns: PhantomData<Box<T>>,
}

impl<T: 'static> PerProcess<T> {
    pub const fn new(make: fn() -> T) -> Self {
        Self {
            current: AtomicPtr::new(std::ptr::null_mut()),
            make,
            _owns: PhantomData,
        }
    }

    pub fn get(&self) -> &T {
        let seen = self.current.load(Ordering::Acquire);
        // SAFETY: a non-null pointer here came from Box::into_raw below and
        // is never freed.
        if let Some((origin, value)) = unsafe { seen.as_ref() } {
            if !origin.forked() {
                return value;
            }
        }
        let fresh = Box::into_raw(Box::new((Origin::here(), (self.make)())));
        match self
            .current
            .compare_exchange(seen, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: as above; now shared, never freed.
            Ok(_) => unsafe { &(*fresh).1 },
            Err(theirs) => {
                // Another thread of this process put one first: use theirs.
                // SAFETY: `fresh` was never shared; `theirs` as above.
                drop(unsafe { Box::from_raw(fresh) });
                unsafe { &(*theirs).1 }
            }
        }
    }
}
