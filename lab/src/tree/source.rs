//! The work tree's first commit: the Debian source tarball of the base,
//! unpacked and committed as `base`.

use anyhow::{anyhow, Context, Result};
use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::base::{Base, Source};
use crate::cmd;
use crate::git::{git, split_ident, BASE_TAG};
use crate::layout::Layout;
use crate::progress::Progress;
use crate::root::Root;

/// Creates the work tree of `base` from its Debian source tarball (in the
/// build root) if it is not there.
///
/// The commit's author is the package's maintainer and its date the
/// tarball's, so the same package version gives the same `base` commit on
/// every machine.
pub fn ensure_base(layout: &Layout, root: &Root, base: Base, source: &Source) -> Result<()> {
    let tree = layout.tree(base);
    if tree.join(".git").is_dir() {
        let recorded = cmd::output(git(&tree).args(["config", "--get", "lab.base-version"])).unwrap_or_default();
        let recorded_pkg = cmd::output(git(&tree).args(["config", "--get", "lab.base-package"])).unwrap_or_default();
        let (recorded, recorded_pkg) = (recorded.trim(), recorded_pkg.trim());
        if recorded != source.version || (!recorded_pkg.is_empty() && recorded_pkg != source.package) {
            eprintln!(
                "lab: note: {} is based on {recorded_pkg} {recorded}, but the build root has {} {}. \
                 The lab keeps the old base; to move on, save your work with `make export BASE={base}`, \
                 remove {} and run again.",
                tree.display(),
                source.package,
                source.version,
                tree.display()
            );
        }
        return Ok(());
    }
    let tarball = root.host_path(&source.tarball);
    let tmp = layout.base_dir(base).join("linux.unpacking");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove the partial unpack {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp)?;
    unpack(&tarball, &tmp)?;
    let dropped_ignore = drop_debian_ignore_rule(&tmp.join(".gitignore"))?;

    let maintainer = cmd::output(root.command("dpkg-query").args(["-W", "-f", "${Maintainer}", &source.package]))
        .unwrap_or_default();
    let (name, email) =
        split_ident(maintainer.trim()).unwrap_or(("Debian Kernel Team", "debian-kernel@lists.debian.org"));
    let mtime = fs::metadata(&tarball)?.modified()?.duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let date = format!("@{mtime} +0000");
    let spinner = Progress::spinner(&format!("{base} tree"), "committing the unpacked source");
    cmd::output(git(&tmp).args(["init", "-q", "-b", "main"]))?;
    cmd::output(git(&tmp).args(["config", "lab.base-version", &source.version]))?;
    cmd::output(git(&tmp).args(["config", "lab.base-package", &source.package]))?;
    // No background repack of the 90,000 new objects while kernels build.
    cmd::output(git(&tmp).args(["config", "gc.auto", "0"]))?;
    // Every blob straight into one pack (git's bulk check-in for files
    // above core.bigFileThreshold) rather than 90,000 loose objects: the
    // repository takes 300 MB instead of 620 MB, for about 25 s more.
    cmd::output(git(&tmp).args(["-c", "core.bigFileThreshold=1", "add", "-A", "-f", "."]))?;
    let kver = kernel_version(&tmp)?;
    let mut msg = format!(
        "Linux {kver}\n\nUnpacked from Debian's {} {} ({}).",
        source.package,
        source.version,
        source.tarball.display()
    );
    if dropped_ignore {
        msg.push_str(
            "\n\nDebian's rule at the end of .gitignore that ignores every top-level\n\
             path (meant for its packaging repository) is left out, so that new\n\
             files show up in `git status` and `git add -A` as they do upstream.",
        );
    }
    cmd::output(
        git(&tmp)
            .args(["commit", "-q", "--no-verify", "-m", &msg])
            .env("GIT_AUTHOR_NAME", name)
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", name)
            .env("GIT_COMMITTER_EMAIL", email)
            .env("GIT_COMMITTER_DATE", &date),
    )?;
    cmd::output(git(&tmp).args(["tag", BASE_TAG]))?;
    spinner.finish();
    fs::rename(&tmp, &tree)?;
    eprintln!("lab: {base} tree at {} (Linux {kver}, Debian {} {})", tree.display(), source.package, source.version);
    Ok(())
}

/// The Debian source the work tree of `base` was made from, as recorded
/// when it was made (it stays while the build root moves on).
pub fn recorded_source(layout: &Layout, base: Base) -> Result<Source> {
    let tree = layout.tree(base);
    let get = |key: &str| -> Result<String> {
        Ok(cmd::output(git(&tree).args(["config", "--get", key]))
            .with_context(|| format!("{} records no {key}: remake it (remove it after `make export`)", tree.display()))?
            .trim()
            .to_string())
    };
    let package = get("lab.base-package")?;
    let tarball = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
    Ok(Source { version: get("lab.base-version")?, package, tarball })
}

/// The block Debian appends to the top-level .gitignore.
const DEBIAN_IGNORE_ALL: &str = "\n#\n# Debian packaging: ignore everything at the top level, since it isn't\n\
# included in our repository\n#\n/*\n!/debian/\n";

/// Removes Debian's ignore-everything rule from `.gitignore`; returns
/// whether it was there.
pub fn drop_debian_ignore_rule(gitignore: &Path) -> Result<bool> {
    let Ok(text) = fs::read_to_string(gitignore) else { return Ok(false) };
    match text.strip_suffix(DEBIAN_IGNORE_ALL) {
        Some(upstream) => {
            fs::write(gitignore, upstream)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// `VERSION.PATCHLEVEL.SUBLEVEL` from the tree's top Makefile.
pub fn kernel_version(tree: &Path) -> Result<String> {
    let mk = fs::read_to_string(tree.join("Makefile"))?;
    let get = |key: &str| {
        mk.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim_start_matches([' ', '=']).trim().to_string()))
            .ok_or_else(|| anyhow!("no {key} in Makefile"))
    };
    Ok(format!("{}.{}.{}", get("VERSION")?, get("PATCHLEVEL")?, get("SUBLEVEL")?))
}

/// Unpacks a `.tar.xz` into `dest`, dropping the top folder.
fn unpack(tarball: &Path, dest: &Path) -> Result<()> {
    let file = fs::File::open(tarball).with_context(|| format!("cannot open {}", tarball.display()))?;
    let size = file.metadata()?.len();
    let name = tarball.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut pb = Progress::bar(&format!("unpack {name}"), size, "{prefix} {bar:30} {bytes}/{total_bytes} [{elapsed}]")
        .in_bytes();
    let read = Rc::new(Cell::new(0u64));
    let mut reader = CountingReader { inner: file, read: Rc::clone(&read) };
    let mut reported = 0;
    let mut archive = tar::Archive::new(xz2::read::XzDecoder::new(&mut reader));
    archive.set_preserve_permissions(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let rel: PathBuf = path.components().skip(1).collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        entry.unpack(dest.join(&rel)).with_context(|| format!("cannot unpack {}", rel.display()))?;
        let done = read.get();
        if done > reported + size / 100 {
            reported = done;
            pb.set(done, "");
        }
    }
    pb.finish();
    Ok(())
}

/// Counts the compressed bytes read, for the unpack progress.
struct CountingReader<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debians_ignore_all_rule_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let gi = dir.path().join(".gitignore");
        let upstream = "*.o\n\n# Rust analyzer configuration\n/rust-project.json\n";
        fs::write(&gi, format!("{upstream}{DEBIAN_IGNORE_ALL}")).unwrap();
        assert!(drop_debian_ignore_rule(&gi).unwrap());
        assert_eq!(fs::read_to_string(&gi).unwrap(), upstream);
        // Upstream's own file is left alone.
        assert!(!drop_debian_ignore_rule(&gi).unwrap());
        assert_eq!(fs::read_to_string(&gi).unwrap(), upstream);
    }
}
