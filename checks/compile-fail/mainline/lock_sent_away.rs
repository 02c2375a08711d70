// SPDX-License-Identifier: GPL-2.0

//! Must not compile: the fault's lock belongs to the faulting task and
//! cannot be handed to another thread.
//!
//! expect: E0277

use kernel::bindings;
use kernel::mm::fault::{FaultLock, VmFaultResult};

fn needs_send<T: Send>(t: T) -> T {
    t
}

/// Tries to move the fault's lock to something that may run elsewhere.
///
/// # Safety
///
/// As for `FaultLock::from_raw()`.
pub unsafe fn lock_sent_away(vmf: *mut bindings::vm_fault) -> VmFaultResult {
    // SAFETY: The caller passes a fault whose lock is held.
    let fault = unsafe { FaultLock::from_raw(vmf) };
    let fault = needs_send(fault); // compile-fail: let fault = fault;
    fault.release().retry()
}
