//! `exit_with_parent`: a process started by a supervisor (ServerEngine,
//! sidekiqswarm, foreman, a shell script) must not keep working after the
//! supervisor is gone. The parent pid is polled once a second (getppid
//! costs nothing; PR_SET_PDEATHSIG would fire when the parent *thread*
//! exits, and exists only on Linux). When it changes, the process stops the
//! way Sidekiq stops: TERM (quiet, drain up to -t, push back the rest),
//! then SIGKILL if it is still alive after `kill_after`.

use std::time::Duration;

use tokio::time::sleep;
use tracing::{error, info};

use crate::stop;

const POLL: Duration = Duration::from_secs(1);

fn parent_pid() -> libc::pid_t {
    // SAFETY: getppid(2) has no preconditions and cannot fail.
    unsafe { libc::getppid() }
}

pub(crate) async fn watch(kill_after: Duration) {
    let parent = parent_pid();
    info!(
        event = "parent.watching",
        "exit_with_parent: stopping this process if parent process {parent} exits"
    );
    while parent_pid() == parent {
        sleep(POLL).await;
    }
    error!(
        event = "parent.gone",
        "parent process {parent} exited; stopping with TERM (exit_with_parent), SIGKILL after {:.0}s if still alive",
        kill_after.as_secs_f64()
    );
    stop::terminate(kill_after, "exit_with_parent");
}
