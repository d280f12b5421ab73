//! The GVL express lane (Ruby ≥ 3.3). A raise for a CPU-bound job waits for
//! Ruby's GVL: first the dispatcher thread needs it, then the job's thread.
//! The thread holding it gives it up only when the VM's timer says so (50 ms
//! on 3.3). `rb_postponed_job_trigger` may be called from a thread Ruby does
//! not know (the core's watcher) and flags the thread holding the GVL,
//! which runs our job at its next safe point: the job gives the GVL away
//! and takes it back, as any blocking call does. It runs no Ruby code and
//! raises nothing; it blocks in `rb_thread_call_without_gvl2`, which does
//! not check interrupts (a raise landing then would be swallowed inside a
//! postponed job). On older Rubies there is no such entry point: no lane.
//!
//! A kicked thread does not queue for the GVL again at once: it parks
//! without it (killer_core::Parking) until the core says the kicks are
//! over (no stop pending), a raise or a kill wakes it (its unblocking
//! function), or 20 ms pass. Each kick then takes one CPU-bound thread out
//! of the GVL's queue instead of moving it to the back: the thread raised
//! into gets the GVL right after the dispatcher instead of behind every
//! other one (10 CPU-bound jobs on 2 cores: p50 9.6 → 5.2 ms, p99 21 → 12,
//! BENCHMARKS.md; woken when the kicks end rather than looking every
//! 500 µs, p50 5.8 → 3.3). The others lose at most those milliseconds, in
//! which they would mostly have waited for the GVL.
//!
//! While a stop is young the kicks chain: each thread taking the GVL kicks
//! itself (`resumed`, an internal thread event hook), so the GVL passes
//! along the queue one OS wake-up per thread. Kicked only from the core's
//! thread, each pass waited for that thread to run, and on a busy machine
//! it waited for a CPU (up to 4 ms a pass, 17 ms in all, with ten CPU-bound
//! jobs on 2 cores; traced with the VM's own thread events).
//!
//! A kick lands on whichever thread holds the GVL, and that includes the
//! two threads a stop is waiting for: the dispatcher about to raise, and
//! the job's thread unwinding from it. Each would then queue behind every
//! CPU-bound thread again (a few ms per kick, tens of ms in all, measured).
//! So those two are spared: the job returns at once on the dispatcher's
//! thread, and on a thread just raised into until its job has left.
//!
//! A kick runs between two C calls of the thread it lands on, like a
//! signal handler, and like one it leaves errno as it found it: Ruby 3.3
//! reads errno after an IO call even when the call succeeded, and the
//! parked thread's timed wait leaves ETIMEDOUT there, which Ruby raised as
//! IO::TimeoutError from a `gets` or `write` that had worked (Sidekiq's CLI
//! died of it in its signal pipe). Where errno cannot be reached, no lane.

/// Whether this build has the lane (built against Ruby ≥ 3.3, on a
/// platform whose errno a kick can keep).
pub(crate) fn available() -> bool {
    cfg!(ruby_gte_3_3) && errno::reachable()
}

/// errno, saved and put back around what a kick does.
mod errno {
    use std::ffi::c_int;

    /// The platforms are listed once, in the `location`s below: the
    /// compiler rejects one listed twice or not at all.
    pub(crate) fn reachable() -> bool {
        location().is_some()
    }

    /// Puts errno back as it was when made, when dropped.
    #[cfg_attr(not(ruby_gte_3_3), allow(dead_code))]
    pub(crate) struct Kept(c_int);

    #[cfg_attr(not(ruby_gte_3_3), allow(dead_code))]
    impl Kept {
        pub(crate) fn now() -> Self {
            // SAFETY: the calling thread's errno, always a valid location.
            Self(location().map_or(0, |e| unsafe { *e }))
        }
    }

    impl Drop for Kept {
        fn drop(&mut self) {
            if let Some(e) = location() {
                // SAFETY: as in `now`.
                unsafe { *e = self.0 };
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn location() -> Option<*mut c_int> {
        // SAFETY: no preconditions; the calling thread's errno.
        Some(unsafe { libc::__errno_location() })
    }

    #[cfg(any(
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "dragonfly"
    ))]
    fn location() -> Option<*mut c_int> {
        // SAFETY: no preconditions; the calling thread's errno.
        Some(unsafe { libc::__error() })
    }

    #[cfg(any(target_os = "android", target_os = "openbsd", target_os = "netbsd"))]
    fn location() -> Option<*mut c_int> {
        // SAFETY: no preconditions; the calling thread's errno.
        Some(unsafe { libc::__errno() })
    }

    #[cfg(not(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios",
        target_os = "freebsd",
        target_os = "dragonfly",
        target_os = "openbsd",
        target_os = "netbsd"
    )))]
    fn location() -> Option<*mut c_int> {
        None
    }
}

#[cfg(ruby_gte_3_3)]
mod lane {
    use std::cell::Cell;
    use std::ffi::c_void;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering::Relaxed};
    use std::sync::{Arc, OnceLock, RwLock};
    use std::time::Duration;

    use killer_core::{Kick, Kicker, Parking, PerProcess};

    /// The one preregistered job, for the process's life (a finite VM
    /// resource: registered once, whatever the number of watchers).
    static HANDLE: OnceLock<Option<rb_sys::rb_postponed_job_handle_t>> = OnceLock::new();

    /// The lane's state, fresh in a forked child: its copy of the parent's
    /// locks may be held by the kicker thread, which did not come along,
    /// and no kicks are coming there.
    static LANE: PerProcess<Lane> = PerProcess::new(|| Lane {
        vm_gone: RwLock::new(false),
        parking: Parking::new(),
        chain: AtomicBool::new(false),
    });

    struct Lane {
        /// Whether the VM has passed away. The kicks come from a thread
        /// Ruby does not know, which may outlive the VM at exit (a delivery
        /// pending in a console that exits): the trigger reads the VM, so
        /// it is never called once the VM is gone, nor while it goes.
        vm_gone: RwLock<bool>,
        parking: Parking,
        /// Whether each thread taking the GVL kicks itself (`Kick::Chain`
        /// until the next `Now` or `Over`).
        chain: AtomicBool,
    }

    thread_local! {
        /// How many times the kicks had ended when this thread last parked.
        /// The chain sets each thread aside once until the kicks end: a
        /// stream of cancels (kicks never ending) does not keep every
        /// thread parked (each resume parked again, the in-process stress
        /// spec stopped 2,223 of 5,959 jobs mid-body, against 5,450), and
        /// a thread its bound freed, which may hold a Mutex the stop waits
        /// for, is not parked again by the chain.
        static PARKED_AT_END: Cell<Option<u64>> = const { Cell::new(None) };
    }

    fn parked_since_the_kicks_began(parking: &Parking) -> bool {
        PARKED_AT_END.with(|p| p.get() == Some(parking.ends()))
    }

    /// The chain's thread event hook while it is added; null otherwise.
    /// Only a thread holding the GVL (running the job) adds or removes it:
    /// it is there while a stop is young, and a process that cancels
    /// nothing pays nothing at its GVL switches (with it there, Ruby takes
    /// a lock at each: a pipe write + read cost 2,698 ns of CPU against
    /// 2,257 without, bench/gvl_switch.rb).
    static HOOK: AtomicPtr<rb_sys::rb_internal_thread_event_hook_t> =
        AtomicPtr::new(std::ptr::null_mut());

    /// Adds the hook if the kicks chain, removes it if not. Call with the
    /// GVL. Adding allocates a few bytes with Ruby's allocator: a failure
    /// there (NoMemoryError) would end this job only, as the VM's job flush
    /// drops what a job raises, and the chain would wait for the next kick.
    fn hook_while_chaining(chain: bool) {
        let hook = HOOK.load(Relaxed);
        if chain && hook.is_null() {
            // SAFETY: under the GVL; `resumed` lives for the process.
            let added = unsafe {
                rb_sys::rb_internal_thread_add_event_hook(
                    Some(resumed),
                    rb_sys::RUBY_INTERNAL_THREAD_EVENT_RESUMED,
                    std::ptr::null_mut(),
                )
            };
            HOOK.store(added, Relaxed);
        } else if !chain && !hook.is_null() {
            // SAFETY: under the GVL; a hook Ruby gave us, not yet removed.
            unsafe { rb_sys::rb_internal_thread_remove_event_hook(hook) };
            HOOK.store(std::ptr::null_mut(), Relaxed);
        }
    }

    /// The dispatcher's OS thread, and threads just raised into (a ring:
    /// more stops at once than slots only costs the oldest its sparing).
    /// Written and read by Ruby threads holding the GVL; 0 is empty.
    static DISPATCHER: AtomicU64 = AtomicU64::new(0);
    static UNWINDING: [AtomicU64; 16] = [const { AtomicU64::new(0) }; 16];
    static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

    /// This OS thread's id as Ruby's `Thread#native_thread_id` gives it;
    /// 0 where neither call exists (nothing is then spared).
    fn this_thread() -> u64 {
        thread_local! {
            static TID: u64 = os_thread_id();
        }
        TID.with(|t| *t)
    }

    #[cfg(target_os = "linux")]
    fn os_thread_id() -> u64 {
        // SAFETY: gettid(2) has no preconditions.
        unsafe { libc::gettid() as u64 }
    }

    #[cfg(target_os = "macos")]
    fn os_thread_id() -> u64 {
        let mut id = 0u64;
        // SAFETY: a null thread means the calling one; `id` is valid.
        unsafe { libc::pthread_threadid_np(0 as libc::pthread_t, &mut id) };
        id
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    fn os_thread_id() -> u64 {
        0
    }

    pub(crate) fn dispatcher_here() {
        DISPATCHER.store(this_thread(), Relaxed);
    }

    pub(crate) fn unwinding(tid: u64) {
        if tid == 0 {
            return;
        }
        let slot = NEXT_SLOT.fetch_add(1, Relaxed) % UNWINDING.len();
        UNWINDING[slot].store(tid, Relaxed);
    }

    /// The job on this thread has left: kicks move it along again.
    pub(crate) fn job_left() {
        let me = this_thread();
        for slot in &UNWINDING {
            if slot.load(Relaxed) == me {
                slot.store(0, Relaxed);
            }
        }
    }

    fn spared() -> bool {
        let me = this_thread();
        me != 0
            && (DISPATCHER.load(Relaxed) == me || UNWINDING.iter().any(|s| s.load(Relaxed) == me))
    }

    unsafe extern "C" fn vm_gone(_: *mut rb_sys::ruby_vm_t) {
        *LANE
            .get()
            .vm_gone
            .write()
            .unwrap_or_else(|p| p.into_inner()) = true;
    }

    /// A parked thread leaves after this even if the kicks go on: it may
    /// hold a Mutex the dispatcher needs.
    const PARK_MAX: Duration = Duration::from_millis(20);

    unsafe extern "C" fn park(data: *mut c_void) -> *mut c_void {
        // SAFETY: `data` is the parked thread's wake-up flag, on
        // yield_gvl's stack, which outlives the call.
        let woken = unsafe { &*(data as *const AtomicBool) };
        let parking = &LANE.get().parking;
        PARKED_AT_END.with(|p| p.set(Some(parking.ends())));
        parking.park(PARK_MAX, woken);
        std::ptr::null_mut()
    }

    /// The parked thread's unblocking function: Ruby calls it, from another
    /// thread, for a raise, a kill or the VM's end, only while it is parked.
    unsafe extern "C" fn unpark(data: *mut c_void) {
        let _errno = super::errno::Kept::now();
        // SAFETY: as in `park`.
        let woken = unsafe { &*(data as *const AtomicBool) };
        LANE.get().parking.unpark(woken);
    }

    unsafe extern "C" fn yield_gvl(_: *mut c_void) {
        let _errno = super::errno::Kept::now();
        let lane = LANE.get();
        hook_while_chaining(lane.chain.load(Relaxed));
        // Kicked after the kicks were over: only to remove the hook.
        if !lane.parking.kicking() || spared() {
            return;
        }
        let woken = AtomicBool::new(false);
        let data = &woken as *const AtomicBool as *mut c_void;
        // SAFETY: called by the VM on a Ruby thread holding the GVL, as a
        // postponed job; releases it while parked. With an interrupt
        // already pending, Ruby neither releases it nor calls `park`.
        unsafe {
            rb_sys::rb_thread_call_without_gvl2(Some(park), data, Some(unpark), data);
        }
    }

    /// Ruby calls it on each thread as it takes the GVL, at every switch in
    /// the process, while the hook is added (a stop is young): that thread
    /// kicks itself. A trigger from a Ruby thread flags that very thread,
    /// which yields at its next safe point.
    unsafe extern "C" fn resumed(
        _: rb_sys::rb_event_flag_t,
        _: *const rb_sys::rb_internal_thread_event_data_t,
        _: *mut c_void,
    ) {
        // Ruby reads errno after the blocking call this switch ends.
        let _errno = super::errno::Kept::now();
        let lane = LANE.get();
        if !lane.chain.load(Relaxed) || parked_since_the_kicks_began(&lane.parking) {
            return;
        }
        if let Some(Some(handle)) = HANDLE.get() {
            // SAFETY: a handle the VM gave us, on a Ruby thread holding the
            // GVL (the VM lives); the trigger only sets flags.
            unsafe { rb_sys::rb_postponed_job_trigger(*handle) }
        }
    }

    /// The kicker, registering the job on first use. Call with the GVL.
    pub(crate) fn kicker() -> Option<Kicker> {
        if !super::available() {
            return None;
        }
        let handle = *HANDLE.get_or_init(|| {
            // SAFETY: called from a Ruby thread holding the GVL (Watcher.new).
            let h = unsafe {
                rb_sys::rb_postponed_job_preregister(0, Some(yield_gvl), std::ptr::null_mut())
            };
            // SAFETY: as above; runs `vm_gone` in ruby_vm_destruct.
            unsafe { rb_sys::ruby_vm_at_exit(Some(vm_gone)) };
            // POSTPONED_JOB_HANDLE_INVALID is UINT_MAX (a macro, not in the bindings).
            (h != rb_sys::rb_postponed_job_handle_t::MAX).then_some(h)
        });
        let handle = handle?;
        Some(Arc::new(move |kick| {
            let lane = LANE.get();
            lane.chain.store(kick == Kick::Chain, Relaxed);
            if kick == Kick::Over {
                // And one more trigger: the next thread holding the GVL
                // removes the hook (without yielding: no kicks are coming).
                lane.parking.over();
            } else {
                lane.parking.kicked();
            }
            let gone = lane.vm_gone.read().unwrap_or_else(|p| p.into_inner());
            if !*gone {
                // SAFETY: callable from any thread, with a handle the VM gave
                // us, while the VM lives (the read lock holds off its end).
                unsafe { rb_sys::rb_postponed_job_trigger(handle) }
            }
        }))
    }
}

#[cfg(ruby_gte_3_3)]
pub(crate) use lane::{dispatcher_here, job_left, kicker, unwinding};

#[cfg(not(ruby_gte_3_3))]
pub(crate) fn kicker() -> Option<killer_core::Kicker> {
    None
}

/// The calling thread is the dispatcher (spared by kicks).
#[cfg(not(ruby_gte_3_3))]
pub(crate) fn dispatcher_here() {}

/// OS thread `tid` was just raised into (spared until its job has left).
#[cfg(not(ruby_gte_3_3))]
pub(crate) fn unwinding(_tid: u64) {}

/// The job on the calling thread has left.
#[cfg(not(ruby_gte_3_3))]
pub(crate) fn job_left() {}
