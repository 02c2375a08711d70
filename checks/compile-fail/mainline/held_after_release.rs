// SPDX-License-Identifier: GPL-2.0

//! Must not compile: a result that says the lock is held (0) after the
//! lock was released. The arch fault handler would then release it a
//! second time.
//!
//! expect: E0382

use kernel::bindings;
use kernel::mm::fault::{FaultLock, VmFaultResult};

/// Releases the fault's lock, then reports it held.
///
/// # Safety
///
/// As for `FaultLock::from_raw()`.
pub unsafe fn held_after_release(vmf: *mut bindings::vm_fault) -> VmFaultResult {
    // SAFETY: The caller passes a fault whose lock is held.
    let fault = unsafe { FaultLock::from_raw(vmf) };
    let _released = fault.release();
    fault.keep() // compile-fail: _released.retry()
}
