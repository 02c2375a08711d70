//! Locks that let lab processes share build/: `make test` runs several at
//! once (mainline's guests beside its debug kernel's build, and 6.12's
//! stream beside mainline's), and two processes writing one kernel build
//! folder, or one folder of test programs, would break both.

use anyhow::{Context, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// An exclusive lock on a build folder, held until dropped: closing the
/// file releases it, as the kernel does when the process dies.
///
/// # Invariants
///
/// `_file` holds an exclusive `flock()` on the folder's lock file.
#[must_use = "the lock is released when this is dropped"]
pub struct FolderLock {
    _file: File,
}

impl FolderLock {
    /// Locks `folder` (through `<folder>.lock` beside it) for the step
    /// `what` names, waiting for another lab process that holds it, and
    /// saying so.
    pub fn acquire(folder: &Path, what: &str) -> Result<Self> {
        let path = lock_path(folder);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            eprintln!("lab: {what}: waiting for another lab process using {}", folder.display());
            flock(&file, FlockOperation::LockExclusive)
                .with_context(|| format!("cannot lock {} for {what}", path.display()))?;
        }
        // INVARIANT: one of the two flock() calls above succeeded.
        Ok(FolderLock { _file: file })
    }
}

/// The lock file of `folder`: `<folder>.lock`, beside it, so that removing
/// the folder does not remove its lock.
fn lock_path(folder: &Path) -> PathBuf {
    let mut name = folder.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".lock");
    folder.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_second_holder_waits_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("kernel").join("c");
        let first = FolderLock::acquire(&folder, "mainline/c").unwrap();
        assert!(dir.path().join("kernel").join("c.lock").is_file());
        let (tx, rx) = mpsc::channel();
        let f = folder.clone();
        let waiter = std::thread::spawn(move || {
            // flock() locks belong to the open file, so a second open in
            // this process contends as another process would.
            let second = FolderLock::acquire(&f, "mainline/c").unwrap();
            tx.send(()).unwrap();
            drop(second);
        });
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "the second holder did not wait");
        drop(first);
        rx.recv_timeout(Duration::from_secs(10)).expect("the second holder never got the lock");
        waiter.join().unwrap();
    }
}
