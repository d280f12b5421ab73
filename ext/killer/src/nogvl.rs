//! Runs a closure with the GVL released, so other Ruby threads keep running
//! while this one waits in Rust.
//!
//! The unblocking function matters: without it a waiting thread ignores
//! Thread#kill, Ctrl-C and process exit. Ruby calls it (from another thread,
//! without the GVL) when it wants this thread back; ours must make `func`
//! return promptly and must not touch the Ruby API.
//!
//! Ruby checks interrupts right after the blocking region and may unwind
//! (raise, kill) from there; `protect` catches that unwind inside this frame
//! so it never jumps over Rust frames, and magnus re-raises it at the method
//! boundary.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use magnus::{Error, Ruby};

use crate::errors;

struct Call<F, R> {
    func: Option<F>,
    result: Option<std::thread::Result<R>>,
}

unsafe extern "C" fn call<F: FnOnce() -> R, R>(data: *mut c_void) -> *mut c_void {
    // SAFETY: `data` is the `Call` owned by `without_gvl`'s frame, alive for
    // the whole blocking region, and only this thread touches it here.
    let call = unsafe { &mut *data.cast::<Call<F, R>>() };
    if let Some(f) = call.func.take() {
        call.result = Some(catch_unwind(AssertUnwindSafe(f)));
    }
    std::ptr::null_mut()
}

unsafe extern "C" fn unblock<U: Fn()>(data: *mut c_void) {
    // SAFETY: `data` is the `U` owned by `without_gvl`'s frame; `U: Fn` only
    // needs a shared reference, which is sound from another thread because
    // `U: Sync`.
    let u = unsafe { &*data.cast::<U>() };
    let _ = catch_unwind(AssertUnwindSafe(u));
}

/// For short calls bounded by a timeout: no unblocking function. (Giving
/// one on the main thread makes Ruby 3.1 start a helper thread per call.)
pub(crate) fn without_gvl<F, R>(ruby: &Ruby, func: F) -> Result<R, Error>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    run::<F, R, fn()>(ruby, func, None)
}

/// For waits of any length: `unblock_fn` must make `func` return promptly.
pub(crate) fn without_gvl_interruptible<F, R, U>(
    ruby: &Ruby,
    func: F,
    unblock_fn: U,
) -> Result<R, Error>
where
    F: FnOnce() -> R + Send,
    R: Send,
    U: Fn() + Send + Sync,
{
    run(ruby, func, Some(&unblock_fn))
}

fn run<F, R, U>(ruby: &Ruby, func: F, unblock_fn: Option<&U>) -> Result<R, Error>
where
    F: FnOnce() -> R + Send,
    R: Send,
    U: Fn() + Send + Sync,
{
    let mut data = Call {
        func: Some(func),
        result: None,
    };
    let data_ptr: *mut Call<F, R> = &mut data;
    let (ubf, ubf_data) = match unblock_fn {
        Some(u) => (
            Some(unblock::<U> as unsafe extern "C" fn(*mut c_void)),
            std::ptr::from_ref(u).cast_mut().cast(),
        ),
        None => (None, std::ptr::null_mut()),
    };
    magnus::rb_sys::protect(|| {
        // SAFETY: both pointers outlive the call; `call` and `unblock` are
        // instantiated for exactly these types.
        unsafe {
            rb_sys::rb_thread_call_without_gvl(Some(call::<F, R>), data_ptr.cast(), ubf, ubf_data);
        }
        rb_sys::Qnil as rb_sys::VALUE
    })?;
    match data.result {
        Some(Ok(r)) => Ok(r),
        Some(Err(_)) => Err(errors::internal(
            ruby,
            "a native call panicked; please report it",
        )),
        None => Err(errors::internal(
            ruby,
            "a native call was interrupted before it ran",
        )),
    }
}
