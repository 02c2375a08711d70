//! Locks that let lab processes share build/: `make test` runs several at
//! once (mainline's guests beside its debug kernel's build, and 6.12's
//! stream beside mainline's), and two processes writing one kernel build
//! folder, or one folder of test programs, would break both.

use anyhow::{Context, Result};
use rustix::fs::{flock, FlockOperation};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// A lock on a build folder, held until dropped: closing the file
/// releases it, as the kernel does when the process dies. Exclusive
/// (`acquire`) for a folder one process writes; shared (`shared`) for one
/// that several read while nobody changes it (the tip checkout).
///
/// # Invariants
///
/// `_file` holds a `flock()` on the folder's lock file.
#[must_use = "the lock is released when this is dropped"]
pub struct FolderLock {
    _file: File,
    folder: PathBuf,
}

impl FolderLock {
    /// Locks `folder` (through `<folder>.lock` beside it) for the step
    /// `what` names, waiting for another lab process that holds it, and
    /// saying so.
    pub fn acquire(folder: &Path, what: &str) -> Result<Self> {
        Self::take(folder, what, Mode::Exclusive)
    }

    /// Locks `folder` shared with other readers (and against a holder of
    /// the exclusive lock), waiting and saying so as `acquire` does.
    pub fn shared(folder: &Path, what: &str) -> Result<Self> {
        Self::take(folder, what, Mode::Shared)
    }

    /// Turns this lock into the exclusive one, waiting for the other
    /// holders of the shared lock; then back with [`Self::share`]. The
    /// change is not atomic (flock(2)): another process may have held the
    /// folder between, so look at it again once this returns.
    pub fn exclusive(&self, what: &str) -> Result<()> {
        lock(&self._file, &self.folder, what, Mode::Exclusive)
    }

    /// Turns an exclusive lock back into a shared one.
    pub fn share(&self, what: &str) -> Result<()> {
        lock(&self._file, &self.folder, what, Mode::Shared)
    }

    fn take(folder: &Path, what: &str, mode: Mode) -> Result<Self> {
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
        lock(&file, folder, what, mode)?;
        // INVARIANT: lock() took the flock() of `mode`.
        Ok(FolderLock { _file: file, folder: folder.to_path_buf() })
    }
}

#[derive(Clone, Copy)]
enum Mode {
    Shared,
    Exclusive,
}

/// flock() of `mode` on `file`, the lock file of `folder`: at once if it is
/// free, else after saying whom it waits for.
fn lock(file: &File, folder: &Path, what: &str, mode: Mode) -> Result<()> {
    let (now, wait) = match mode {
        Mode::Shared => (FlockOperation::NonBlockingLockShared, FlockOperation::LockShared),
        Mode::Exclusive => (FlockOperation::NonBlockingLockExclusive, FlockOperation::LockExclusive),
    };
    if flock(file, now).is_err() {
        eprintln!("lab: {what}: waiting for another lab process using {}", folder.display());
        flock(file, wait).with_context(|| format!("cannot lock {} for {what}", lock_path(folder).display()))?;
    }
    Ok(())
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

    #[test]
    fn readers_share_and_a_writer_waits_for_them() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("tip");
        let first = FolderLock::shared(&folder, "reading").unwrap();
        let (tx, rx) = mpsc::channel();
        let f = folder.clone();
        let reader = std::thread::spawn(move || {
            let second = FolderLock::shared(&f, "reading too").unwrap();
            tx.send(()).unwrap();
            second.exclusive("writing").unwrap();
            tx.send(()).unwrap();
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("a second reader waited for the first");
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "the writer did not wait for the reader");
        drop(first);
        rx.recv_timeout(Duration::from_secs(10)).expect("the writer never got the lock");
        reader.join().unwrap();
    }
}
