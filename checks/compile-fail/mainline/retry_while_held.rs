// SPDX-License-Identifier: GPL-2.0

//! Must not compile: a result that says the lock was released
//! (VM_FAULT_RETRY) made while the lock is still held. The arch fault
//! handler would then skip its unlock and leak the lock.
//!
//! expect: E0423

use kernel::bindings;
use kernel::mm::fault::{FaultLock, VmFaultResult};

/// Returns VM_FAULT_RETRY without releasing the fault's lock.
///
/// # Safety
///
/// As for `FaultLock::from_raw()`.
pub unsafe fn retry_while_held(vmf: *mut bindings::vm_fault) -> VmFaultResult {
    // SAFETY: The caller passes a fault whose lock is held.
    let fault = unsafe { FaultLock::from_raw(vmf) };
    let _ = fault.flags();
    VmFaultResult(bindings::vm_fault_reason_VM_FAULT_RETRY) // compile-fail: fault.keep()
}
