//! The GVL express lane (Ruby ≥ 3.3). A raise for a CPU-bound job waits for
//! Ruby's GVL: first the dispatcher thread needs it, then the job's thread.
//! The thread holding it gives it up only when the VM's timer says so (50 ms
//! on 3.3). `rb_postponed_job_trigger` may be called from a thread Ruby does
//! not know (the core's watcher) and flags the thread holding the GVL,
//! which runs our job at its next safe point: the job gives the GVL away
//! and takes it back, as any blocking call does. It runs no Ruby code and
//! raises nothing; it yields with `rb_thread_call_without_gvl2`, which does
//! not check interrupts (a raise landing then would be swallowed inside a
//! postponed job). On older Rubies there is no such entry point: no lane.

/// Whether this build has the lane (built against Ruby ≥ 3.3).
pub(crate) const AVAILABLE: bool = cfg!(ruby_gte_3_3);

#[cfg(ruby_gte_3_3)]
mod lane {
    use std::ffi::c_void;
    use std::sync::{Arc, OnceLock, RwLock};

    use killer_core::Kicker;

    /// The one preregistered job, for the process's life (a finite VM
    /// resource: registered once, whatever the number of watchers).
    static HANDLE: OnceLock<Option<rb_sys::rb_postponed_job_handle_t>> = OnceLock::new();

    /// Whether the VM has passed away. The kicks come from a thread Ruby
    /// does not know, which may outlive the VM at exit (a delivery pending
    /// in a console that exits): the trigger reads the VM, so it is never
    /// called once the VM is gone, nor while it goes.
    static VM_GONE: RwLock<bool> = RwLock::new(false);

    unsafe extern "C" fn vm_gone(_: *mut rb_sys::ruby_vm_t) {
        *VM_GONE.write().unwrap_or_else(|p| p.into_inner()) = true;
    }

    unsafe extern "C" fn nothing(_: *mut c_void) -> *mut c_void {
        std::ptr::null_mut()
    }

    unsafe extern "C" fn yield_gvl(_: *mut c_void) {
        // SAFETY: called by the VM on a Ruby thread holding the GVL, as a
        // postponed job; releases it for a function that does nothing.
        unsafe {
            rb_sys::rb_thread_call_without_gvl2(
                Some(nothing),
                std::ptr::null_mut(),
                None,
                std::ptr::null_mut(),
            );
        }
    }

    /// The kicker, registering the job on first use. Call with the GVL.
    pub(crate) fn kicker() -> Option<Kicker> {
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
        Some(Arc::new(move || {
            let gone = VM_GONE.read().unwrap_or_else(|p| p.into_inner());
            if !*gone {
                // SAFETY: callable from any thread, with a handle the VM gave
                // us, while the VM lives (the read lock holds off its end).
                unsafe { rb_sys::rb_postponed_job_trigger(handle) }
            }
        }))
    }
}

#[cfg(ruby_gte_3_3)]
pub(crate) use lane::kicker;

#[cfg(not(ruby_gte_3_3))]
pub(crate) fn kicker() -> Option<killer_core::Kicker> {
    None
}
