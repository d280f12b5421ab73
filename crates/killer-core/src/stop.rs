//! Stopping this very process: Sidekiq's own signals to our own pid, and a
//! last-resort SIGKILL that outlives the watcher.
//!
//! TERM makes Sidekiq fire its shutdown event, which stops the watcher; if
//! Sidekiq then hangs (an `at_exit` hook, a thread stuck in native code),
//! nothing of the watcher is left to escalate. So whoever sends TERM also
//! arms a reaper: one detached thread, started only at that moment, that
//! sleeps until the deadline and sends SIGKILL if the process still exists.

use std::time::Duration;

use tracing::error;

pub(crate) fn signal_self(signal: libc::c_int) {
    // SAFETY: kill(2) with our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), signal);
    }
}

/// Sends TERM to this process and arms the reaper: SIGKILL after
/// `kill_after` unless the process has exited by then.
pub(crate) fn terminate(kill_after: Duration, why: &str) {
    let why = why.to_owned();
    let spawned = std::thread::Builder::new()
        .name("killer-reaper".into())
        .spawn(move || {
            std::thread::sleep(kill_after);
            // The dispatcher that writes our log lines may be gone by now;
            // stderr is Sidekiq's log too.
            eprintln!(
                "killer: still alive {:.0}s after TERM ({why}); sending SIGKILL event=stop.kill pid={}",
                kill_after.as_secs_f64(),
                std::process::id()
            );
            signal_self(libc::SIGKILL);
        });
    if let Err(e) = spawned {
        error!(
            event = "stop.no_reaper",
            "cannot start the reaper thread ({e}); no SIGKILL will follow TERM"
        );
    }
    signal_self(libc::SIGTERM);
}
