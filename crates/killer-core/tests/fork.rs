//! A forked child's copy of a lock may be held by a parent thread that did
//! not come along: PerProcess hands the child a fresh value instead.

use std::sync::mpsc;
use std::sync::Mutex;

use killer_core::PerProcess;

static LOCK: PerProcess<Mutex<u32>> = PerProcess::new(|| Mutex::new(0));

#[test]
fn a_forked_child_gets_a_fresh_value_not_a_lock_held_in_the_parent() {
    assert!(
        std::ptr::eq(LOCK.get(), LOCK.get()),
        "one value per process"
    );
    *LOCK.get().lock().unwrap() = 7;

    let (held, hold) = (mpsc::channel(), mpsc::channel::<()>());
    let holder = std::thread::spawn(move || {
        let guard = LOCK.get().lock().unwrap();
        held.0.send(()).unwrap();
        let _ = hold.1.recv();
        drop(guard);
    });
    held.1.recv().unwrap();

    // SAFETY: the child only reads and locks, then leaves with _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        let code = match LOCK.get().try_lock() {
            Ok(value) if *value == 0 => 0,
            Ok(_) => 2,  // the parent's value came along
            Err(_) => 3, // the parent's lock, held by a thread that is gone
        };
        // SAFETY: leaves the child without running the parent's atexit.
        unsafe { libc::_exit(code) };
    }
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    // SAFETY: waits for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    hold.0.send(()).unwrap();
    holder.join().unwrap();
    assert!(libc::WIFEXITED(status), "child status {status}");
    assert_eq!(
        libc::WEXITSTATUS(status),
        0,
        "2: the parent's value; 3: its held lock"
    );
    assert_eq!(*LOCK.get().lock().unwrap(), 7, "the parent keeps its own");
}
