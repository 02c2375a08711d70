// SPDX-License-Identifier: GPL-2.0

//! Must not compile: the fault's VMA is used after its lock was released.
//!
//! expect: E0505

use kernel::bindings;
use kernel::mm::fault::{FaultLock, VmFaultResult};

/// Reads the VMA's flags again after releasing the fault's lock.
///
/// # Safety
///
/// As for `FaultLock::from_raw()`.
pub unsafe fn vma_after_release(vmf: *mut bindings::vm_fault) -> VmFaultResult {
    // SAFETY: The caller passes a fault whose lock is held.
    let fault = unsafe { FaultLock::from_raw(vmf) };
    let vma = fault.vma();
    let flags = vma.flags();
    let released = fault.release();
    let _ = flags | vma.flags(); // compile-fail: let _ = flags;
    released.retry()
}
