//! Disk space: what a cold `make test` fills under build/, how much the
//! filesystem has, and what to say when it is full.

use std::path::Path;

/// What a cold `make test` writes under `build/` at its fullest, with some
/// room to spare: a clean clone's ended at 10.5 GiB (the build root 3.2,
/// the two kernel trees 4.0, the kernels of every variant and check 3.0,
/// ccache, the lab, the runs).
pub const MAKE_TEST_DISK: u64 = 12 << 30;

/// Bytes free to an unprivileged writer on the filesystem holding `path`.
pub fn free_space(path: &Path) -> std::io::Result<u64> {
    let st = rustix::fs::statvfs(path)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// On a fresh clone, a warning when the filesystem holding `repo` has less
/// room than a cold `make test` fills: better now than an hour into the
/// run.
pub fn short_of_disk(repo: &Path) -> Option<String> {
    let free = free_space(repo).ok()?;
    (free < MAKE_TEST_DISK).then(|| {
        format!(
            "{} MB free beside {}, and a cold `make test` writes about {} GB under build/: \
             it may stop with \"No space left on device\"",
            free >> 20,
            repo.display(),
            MAKE_TEST_DISK >> 30
        )
    })
}

/// Whether `e`, however wrapped in context, comes from a full disk
/// (ENOSPC).
pub fn is_disk_full(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::StorageFull))
}

/// What to tell a user whose disk filled: where, how much is free and
/// what `make test` needs.
pub fn disk_full_advice(build: &Path) -> String {
    let free = free_space(build)
        .or_else(|_| free_space(build.parent().unwrap_or(build)))
        .map(|b| format!("{} MB free", b >> 20))
        .unwrap_or_else(|e| format!("free space unknown: {e}"));
    format!(
        "the filesystem holding {} is full ({free}). A cold `make test` needs about {} GB there; \
         free space on it, or remove what you do not need under build/ (build/<base>/kernel/<variant> \
         is rebuilt on demand), and run again",
        build.display(),
        MAKE_TEST_DISK >> 30
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn a_full_disk_is_told_apart_through_its_context() {
        let full: anyhow::Result<()> = Err(std::io::Error::from_raw_os_error(libc::ENOSPC).into());
        assert!(is_disk_full(&full.context("configuring mainline/arm64-rust").unwrap_err()));
        let other: anyhow::Result<()> = Err(std::io::Error::from_raw_os_error(libc::EACCES).into());
        assert!(!is_disk_full(&other.context("configuring mainline/arm64-rust").unwrap_err()));
        assert!(disk_full_advice(Path::new("/")).contains("MB free"));
    }
}
