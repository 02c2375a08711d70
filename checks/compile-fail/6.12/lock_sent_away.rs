// SPDX-License-Identifier: GPL-2.0

//! Must not compile: the fault's lock belongs to the faulting task and
//! cannot be handed to another thread.
//!
//! expect: E0277

use kernel::bindings;
use kernel::mm::fault::{FaultLock, VmFault};

fn needs_send<T: Send>(t: T) -> T {
    t
}

/// Tries to move the fault's lock to something that may run elsewhere.
///
/// # Safety
///
/// As for `release_fault_lock()`.
pub unsafe fn lock_sent_away(vmf: *mut bindings::vm_fault) {
    // SAFETY: The caller passes a valid fault.
    let vmf = unsafe { VmFault::from_raw(vmf) };
    // SAFETY: The caller holds the fault's lock.
    let lock = unsafe { FaultLock::new(vmf) };
    let lock = needs_send(lock); // compile-fail: let lock = lock;
    let _released = lock.release();
}
