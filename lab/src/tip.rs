//! A second checkout of the series' tip beside the work tree of a base
//! (build/<base>/tip, a `git worktree` of it, detached).
//!
//! `lab check` checks out each patch of the series in the work tree in
//! turn and builds the x86_64 c and rust kernels there; nothing else may
//! build from the work tree until it is back at the tip. Every other kernel
//! (the debug kernel, other architectures, the tip's checks, the test
//! programs) is the tip's alone, and builds from this checkout instead, so
//! that it can build while the walk goes on (`make test` does that in its
//! second stream). The checkout belongs to the lab: it follows the commit
//! of the work tree that holds the series, and local changes in it are
//! discarded.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

use crate::base::Base;
use crate::cmd;
use crate::git::git;
use crate::layout::Layout;
use crate::lock::FolderLock;
use crate::variant::Variant;

/// The configurations `lab check` builds at each patch of the series, on
/// x86_64, in the work tree.
pub const WALKED: [&str; 2] = ["c", "rust"];

/// Whether the kernel of `v` builds in the work tree (`lab check` builds it
/// at each patch), not in the tip checkout.
pub fn walked(v: &Variant) -> bool {
    v.arch.is_host() && WALKED.contains(&v.config.as_str())
}

/// The kernel source tree the kernel of `v` builds from: the work tree for
/// the kernels `lab check` walks, else the tip checkout (held, for `what`,
/// until this is dropped).
pub struct SourceTree {
    path: PathBuf,
    _tip: Option<Tip>,
}

impl SourceTree {
    pub fn of(layout: &Layout, v: &Variant, what: &str) -> Result<SourceTree> {
        if walked(v) {
            return Ok(SourceTree { path: layout.tree(v.base), _tip: None });
        }
        let tip = Tip::checkout(layout, v.base, what)?;
        Ok(SourceTree { path: tip.path().to_path_buf(), _tip: Some(tip) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The tip checkout of a base at the commit that holds the series, shared
/// with other lab processes that build from it, until dropped.
#[must_use = "the checkout may move once this is dropped"]
pub struct Tip {
    path: PathBuf,
    _lock: FolderLock,
}

impl Tip {
    /// Brings the tip checkout of `base` to the series, creating it if need
    /// be, and holds it there (shared) for `what`.
    ///
    /// The series' commit is the one the work tree's `apply` or `export`
    /// last left, if it still is `patches/<base>/`; that needs no lock on
    /// the work tree, so this does not wait for a `lab check` walking it.
    /// Otherwise the series is applied to the work tree first (which waits
    /// for such a walk).
    pub fn checkout(layout: &Layout, base: Base, what: &str) -> Result<Tip> {
        let path = layout.tip(base);
        let lock = FolderLock::shared(&path, what)?;
        let scratch = layout.base_dir(base).join("tmp").join(format!("tip-{}", std::process::id()));
        let commit = match crate::tree::series_commit(layout, base, &scratch)? {
            Some(c) => c,
            None => {
                crate::tree::apply(layout, base, false)?;
                match crate::tree::series_commit(layout, base, &scratch)? {
                    Some(c) => c,
                    None => bail!(
                        "{} does not hold the {base} series after applying it: run `lab apply --base {base}` \
                         and look at what it says",
                        layout.tree(base).display()
                    ),
                }
            }
        };
        if head(&path).as_deref() != Some(commit.as_str()) {
            lock.exclusive(&format!("moving the {base} tip checkout to the series"))?;
            // Another process may have moved it while the lock was free.
            if head(&path).as_deref() != Some(commit.as_str()) {
                move_to(layout, base, &path, &commit)?;
            }
            lock.share(what)?;
        }
        Ok(Tip { path, _lock: lock })
    }

    /// The checkout's folder: a kernel source tree at the series' tip.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The commit the checkout at `path` has out, if it is one.
fn head(path: &Path) -> Option<String> {
    path.join(".git").exists().then(|| crate::git::head(path).ok()).flatten()
}

/// Checks `commit` out at `path`, adding the worktree if it is not there.
fn move_to(layout: &Layout, base: Base, path: &Path, commit: &str) -> Result<()> {
    let tree = layout.tree(base);
    if path.join(".git").exists() {
        eprintln!("lab: moving the {base} tip checkout {} to {}", path.display(), &commit[..12.min(commit.len())]);
        return cmd::output(git(path).args(["checkout", "-q", "-f", "--detach", commit]))
            .map(drop)
            .with_context(|| format!("cannot check out the series in {}", path.display()));
    }
    eprintln!("lab: adding the {base} tip checkout {} (a git worktree of {})", path.display(), tree.display());
    // A folder removed by hand leaves its worktree registered.
    cmd::output(git(&tree).args(["worktree", "prune"]))?;
    let _ = std::fs::remove_dir_all(path);
    cmd::output(git(&tree).args(["worktree", "add", "-q", "-f", "--detach"]).arg(path).arg(commit))
        .map(drop)
        .with_context(|| format!("cannot add the tip checkout {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;

    #[test]
    fn only_the_kernels_the_walk_builds_come_from_the_work_tree() {
        for base in Base::ALL {
            assert!(walked(&Variant::new(base, Arch::X86_64, "c")));
            assert!(walked(&Variant::new(base, Arch::X86_64, "rust")));
            assert!(!walked(&Variant::new(base, Arch::X86_64, "debug")));
            assert!(!walked(&Variant::new(base, Arch::Arm64, "rust")));
        }
    }
}
