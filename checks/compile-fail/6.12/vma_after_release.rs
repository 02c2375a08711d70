// SPDX-License-Identifier: GPL-2.0

//! Must not compile: the fault's VMA is used after its lock was released.
//!
//! expect: E0505

use kernel::bindings;
use kernel::mm::fault::{FaultLock, VmFault};

/// Reads the VMA's flags after dropping the fault's lock.
///
/// # Safety
///
/// As for `release_fault_lock()`.
pub unsafe fn vma_after_release(vmf: *mut bindings::vm_fault) -> usize {
    // SAFETY: The caller passes a valid fault.
    let vmf = unsafe { VmFault::from_raw(vmf) };
    // SAFETY: The caller holds the fault's lock.
    let lock = unsafe { FaultLock::new(vmf) };
    let vma = lock.vma();
    let flags = vma.flags();
    let _released = lock.release();
    flags + vma.flags() // compile-fail: flags
}
