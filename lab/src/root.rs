//! The build root: a Debian trixie system under build/root, made with
//! mmdebstrap, in which every kernel build, test-program build, kernel tool
//! and guest runs.
//!
//! The host is Debian bookworm, whose LLVM (14) is too old for Linux 7.x
//! (17 or newer, also as bindgen's libclang). Debian trixie has what both
//! bases need, so the lab keeps a trixie root the way sbuild keeps a build
//! chroot: made once by `mmdebstrap` from a package list kept here, made
//! again when that list changes, and entered per command. A command enters
//! it in a mount namespace of its own (so nothing stays mounted when it
//! ends) with the checkout bind-mounted at the same path, so paths under
//! build/ mean the same inside and out.

use anyhow::{anyhow, bail, Context, Result};
use std::ffi::{CString, OsStr};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::cmd;
use crate::progress::Progress;

mod packages;

pub use packages::{manifest, newest_source, source_version, FOREIGN_ARCHES, PACKAGES, SOURCES, SOURCE_PREFIX, SUITE};

/// The build root, and what is bind-mounted into it.
#[derive(Clone, Debug)]
pub struct Root {
    /// The root's `/`.
    pub dir: PathBuf,
    /// Host folders that appear at the same path inside: the checkout.
    pub shared: Vec<PathBuf>,
}

/// Everything a command needs to enter the root, prepared before fork: the
/// child between fork and exec must not allocate.
struct Entry {
    root: CString,
    binds: Vec<(CString, CString, bool)>,
    proc_dir: CString,
}

impl Root {
    /// The root at `dir`, with `shared` bind-mounted at their own paths.
    pub fn new(dir: impl Into<PathBuf>, shared: Vec<PathBuf>) -> Self {
        Self { dir: dir.into(), shared }
    }

    /// The manifest of the root as it was made; empty if it was never made
    /// to the end.
    fn manifest_file(&self) -> PathBuf {
        self.dir.with_extension("manifest")
    }

    /// Whether the root exists and was made from today's package list.
    pub fn is_current(&self) -> bool {
        self.dir.join("usr/bin").is_dir()
            && fs::read_to_string(self.manifest_file()).ok().as_deref() == Some(&manifest())
    }

    /// Makes the root if it is missing or stale (`refresh`: in any case).
    /// The old root stays in use until the new one is complete.
    pub fn ensure(&self, logs: &Path, refresh: bool) -> Result<()> {
        if !refresh && self.is_current() {
            return Ok(());
        }
        let why = if refresh {
            "refreshing it as asked"
        } else if self.dir.join("usr/bin").is_dir() {
            "its package list changed"
        } else {
            "it does not exist yet"
        };
        let mmdebstrap = which::which("mmdebstrap").map_err(|_| {
            anyhow!(
                "mmdebstrap is missing: the lab makes its Debian {SUITE} build root with it. Run:\n  \
                 apt-get install -y --no-install-recommends mmdebstrap\nthen run the lab again."
            )
        })?;
        if !is_root() {
            bail!(
                "the build root {} must be made ({why}), and mmdebstrap makes it only as root: run the lab as root",
                self.dir.display()
            );
        }
        let log = logs.join("root.log");
        let _ = fs::remove_file(&log);
        let new = self.dir.with_extension("new");
        if let Some(parent) = new.parent() {
            fs::create_dir_all(parent)?;
        }
        remove_unmounted(&new)?;
        let pb = Progress::spinner(
            &format!("build root ({SUITE})"),
            &format!("making {} with mmdebstrap, {why} (log: {})", self.dir.display(), log.display()),
        );
        let started = std::time::Instant::now();
        let made = self.make(&mmdebstrap, &new, &log);
        pb.finish();
        let newest = made?;
        let old = self.dir.with_extension("old");
        remove_unmounted(&old)?;
        if self.dir.exists() {
            fs::rename(&self.dir, &old)?;
        }
        fs::rename(&new, &self.dir)?;
        fs::write(self.manifest_file(), manifest())?;
        remove_unmounted(&old)?;
        eprintln!(
            "lab: build root ready at {} ({SUITE}, with {newest}) in {:.0}s",
            self.dir.display(),
            started.elapsed().as_secs_f64()
        );
        Ok(())
    }

    /// Runs mmdebstrap into `new`, then installs the newest kernel source
    /// there; returns that package's name.
    fn make(&self, mmdebstrap: &Path, new: &Path, log: &Path) -> Result<String> {
        let mut c = Command::new(mmdebstrap);
        // unshare mode, as root, mounts what the packages' scripts need in a
        // mount namespace of its own: a killed mmdebstrap leaves no mount
        // behind on the host (root mode would).
        c.args(["--variant=apt", "--components=main", "--mode=unshare"]);
        let arches: Vec<&str> = std::iter::once("amd64").chain(FOREIGN_ARCHES.iter().copied()).collect();
        c.arg(format!("--architectures={}", arches.join(",")));
        c.arg(format!("--include={}", PACKAGES.join(",")));
        // Keep apt's lists: the lab asks apt in the root for the newest
        // kernel source and downloads the arm64 guest's packages.
        c.arg("--skip=cleanup/apt/lists");
        c.arg(SUITE).arg(new).args(SOURCES);
        if let Err(e) = cmd::run_logged(&mut c, log, |_| {}) {
            let text = fs::read_to_string(log).unwrap_or_default();
            return Err(match apt_failure(&text) {
                Some(why) => anyhow!(
                    "the build root could not be made: {why}.\nCheck the package list in lab/src/root.rs \
                     against Debian {SUITE} (https://packages.debian.org/{SUITE}/). Full log: {}",
                    log.display()
                ),
                None => e.context("mmdebstrap could not make the build root"),
            });
        }
        // The mainline source: the newest linux-source-N.M of the sources.
        let staged = Root::new(new, self.shared.clone());
        let names = cmd::output(staged.command("apt-cache").args(["pkgnames", SOURCE_PREFIX]))?;
        let newest = newest_source(names.lines())
            .ok_or_else(|| anyhow!("no {SOURCE_PREFIX}N.M package in {}: check the sources", SOURCES.join(", ")))?;
        let mut install = staged.command("apt-get");
        install.env("DEBIAN_FRONTEND", "noninteractive").args(["install", "-y", "--no-install-recommends", &newest]);
        cmd::run_logged(&mut install, log, |_| {}).with_context(|| format!("installing {newest} in the root"))?;
        // The source .deb (160 MB) stays in apt's cache otherwise; the
        // lists stay (see above).
        cmd::run_logged(staged.command("apt-get").arg("clean"), log, |_| {}).context("apt-get clean in the root")?;
        Ok(newest)
    }

    /// `program` as a command that runs inside the root, with a clean
    /// environment (PATH, HOME, LANG; the caller adds what it needs). It
    /// starts in the lab's current folder when that is shared, else in the
    /// first shared folder; `current_dir` on the command picks another
    /// (shared) one.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear();
        c.env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        c.env("HOME", "/root");
        c.env("LANG", "C.UTF-8");
        if let Ok(term) = std::env::var("TERM") {
            c.env("TERM", term);
        }
        let cwd = std::env::current_dir()
            .ok()
            .filter(|d| self.shared.iter().any(|s| d.starts_with(s)))
            .or_else(|| self.shared.first().cloned())
            .unwrap_or_else(|| PathBuf::from("/"));
        c.current_dir(&cwd);
        match self.entry() {
            Ok(entry) => {
                // SAFETY: the closure runs in the child between fork and exec.
                // It only makes system calls (unshare, mount, chroot, chdir)
                // on C strings prepared here, and allocates nothing.
                unsafe {
                    c.pre_exec(move || entry.enter());
                }
            }
            Err(e) => {
                // A path with a NUL byte: the command must not run outside
                // the root. Say why now; the child only fails.
                eprintln!("lab: cannot enter the build root {}: {e:#}", self.dir.display());
                // SAFETY: as above; the closure makes an io::Error from an
                // error number, which allocates nothing.
                unsafe {
                    c.pre_exec(|| Err(std::io::Error::from_raw_os_error(libc::EINVAL)));
                }
            }
        }
        c
    }

    fn entry(&self) -> Result<Entry> {
        let cstr = |p: &Path| CString::new(p.as_os_str().as_bytes()).context("a path with a NUL byte");
        let inside = |p: &Path| -> Result<CString> { cstr(&self.dir.join(p.strip_prefix("/").unwrap_or(p))) };
        let mut binds = Vec::new();
        // /dev with its sub-mounts (pts, shm), /sys, the host's DNS setup
        // (apt-get download), and the shared folders.
        for (host, recursive) in
            [(Path::new("/dev"), true), (Path::new("/sys"), true), (Path::new("/etc/resolv.conf"), false)]
        {
            if host.exists() && self.dir.join(host.strip_prefix("/").unwrap_or(host)).exists() {
                binds.push((cstr(host)?, inside(host)?, recursive));
            }
        }
        for s in &self.shared {
            let target = self.dir.join(s.strip_prefix("/").unwrap_or(s));
            if !target.is_dir() {
                fs::create_dir_all(&target).with_context(|| format!("cannot create {}", target.display()))?;
            }
            binds.push((cstr(s)?, inside(s)?, true));
        }
        Ok(Entry { root: cstr(&self.dir)?, binds, proc_dir: inside(Path::new("/proc"))? })
    }

    /// The host path of `inside`, a path in the root, with symbolic links
    /// followed as the root sees them (`/bin` is `usr/bin` there).
    pub fn host_path(&self, inside: &Path) -> PathBuf {
        let mut resolved = PathBuf::from("/");
        let mut todo: Vec<PathBuf> = inside.components().rev().map(|c| PathBuf::from(c.as_os_str())).collect();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            match part.components().next() {
                Some(Component::RootDir) => resolved = PathBuf::from("/"),
                Some(Component::ParentDir) => {
                    resolved.pop();
                }
                Some(Component::Normal(_)) => {
                    let next = resolved.join(&part);
                    let host = self.dir.join(next.strip_prefix("/").unwrap_or(&next));
                    match fs::read_link(&host) {
                        Ok(target) if hops < 40 => {
                            hops += 1;
                            // Resolve the link's target next, from where the link is.
                            todo.extend(target.components().rev().map(|c| PathBuf::from(c.as_os_str())));
                        }
                        _ => resolved = next,
                    }
                }
                _ => {}
            }
        }
        self.dir.join(resolved.strip_prefix("/").unwrap_or(&resolved))
    }

    /// The version of an installed package of the root.
    pub fn package_version(&self, package: &str) -> Result<String> {
        let v = cmd::output(self.command("dpkg-query").args(["-W", "-f", "${Version}", package]))
            .with_context(|| format!("{package} is not installed in the build root {}", self.dir.display()))?;
        Ok(v.trim().to_string())
    }

    /// The kernel source packages installed in the root.
    pub fn sources(&self) -> Result<Vec<String>> {
        let out = cmd::output(self.command("dpkg-query").args(["-W", "-f", "${db:Status-Abbrev} ${Package}\n"]))?;
        Ok(out
            .lines()
            .filter_map(|l| l.strip_prefix("ii  "))
            .map(str::trim)
            .filter(|p| p.starts_with(SOURCE_PREFIX) && source_version(p).is_some())
            .map(str::to_string)
            .collect())
    }
}

impl Entry {
    /// Enters the root: a mount namespace of its own, the binds and /proc,
    /// then chroot, and back into the folder the command started in (which
    /// must be shared, so that it has the same path inside). Runs in the
    /// child before exec.
    fn enter(&self) -> std::io::Result<()> {
        let check = |rc: libc::c_int| if rc == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
        let mut cwd = [0u8; 4096];
        // SAFETY: every pointer is a NUL-terminated string owned by `self`
        // or a null pointer where the call allows one; these system calls
        // are async-signal-safe.
        unsafe {
            if libc::getcwd(cwd.as_mut_ptr().cast(), cwd.len()).is_null() {
                return Err(std::io::Error::last_os_error());
            }
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Nothing mounted here may show up on the host.
            check(libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            for (src, dst, recursive) in &self.binds {
                let flags = libc::MS_BIND | if *recursive { libc::MS_REC } else { 0 };
                check(libc::mount(src.as_ptr(), dst.as_ptr(), std::ptr::null(), flags, std::ptr::null()))?;
            }
            check(libc::mount(
                c"proc".as_ptr(),
                self.proc_dir.as_ptr(),
                c"proc".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                std::ptr::null(),
            ))?;
            check(libc::chroot(self.root.as_ptr()))?;
            // A folder that is not shared does not exist inside: fail
            // rather than run somewhere else.
            check(libc::chdir(cwd.as_ptr().cast()))?;
        }
        Ok(())
    }
}

/// Removes `dir` (a partial or an old root) unless something is mounted
/// under it: then it names the mounts instead of failing inside them.
fn remove_unmounted(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let held: Vec<&str> =
        mounts.lines().filter_map(|l| l.split_whitespace().nth(4)).filter(|m| Path::new(m).starts_with(dir)).collect();
    if !held.is_empty() {
        bail!(
            "{} still has mounts in it (a build root whose making was killed?): {}. Unmount them \
             (`umount -R {}`) and run the lab again.",
            dir.display(),
            held.join(", "),
            dir.display()
        );
    }
    fs::remove_dir_all(dir).with_context(|| format!("cannot remove {}", dir.display()))
}

/// Whether the lab runs as root (and so may install packages, make the
/// build root and enter it).
pub fn is_root() -> bool {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The package apt could not install, from an mmdebstrap log.
pub fn apt_failure(log: &str) -> Option<String> {
    let pats = [
        (r"E: Unable to locate package (\S+)", "package {} does not exist"),
        (r"E: Package '([^']+)' has no installation candidate", "package {} has no installation candidate"),
        (r"^\s*(\S+) : Depends: (.+)$", "package {} has unmet dependencies"),
        (r"E: Version '[^']+' for '([^']+)' was not found", "the version asked of {} does not exist"),
    ];
    let pats: Vec<(regex::Regex, &str)> =
        pats.iter().map(|(re, what)| (regex::Regex::new(re).expect("valid regex"), *what)).collect();
    for line in log.lines() {
        for (re, what) in &pats {
            if let Some(c) = re.captures(line) {
                return Some(format!("{} (apt: `{}`)", what.replace("{}", &c[1]), line.trim()));
            }
        }
    }
    // Not a package: the first error mmdebstrap or apt gave.
    log.lines().find_map(|l| l.strip_prefix("E: ")).map(|e| format!("no package was named, but: {}", e.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apt_failure_names_the_package() {
        let log = "I: running apt-get update...\nE: Unable to locate package clang-99\nE: mmdebstrap failed\n";
        assert_eq!(
            apt_failure(log).unwrap(),
            "package clang-99 does not exist (apt: `E: Unable to locate package clang-99`)"
        );
        let deps = "The following packages have unmet dependencies:\n rustc-web : Depends: libllvm22 (>= 1:22) but it is not going to be installed\n";
        assert!(apt_failure(deps).unwrap().starts_with("package rustc-web has unmet dependencies"));
        assert!(apt_failure("I: all fine\n").is_none());
        assert_eq!(
            apt_failure("I: x\nE: unable to mount proc\n").unwrap(),
            "no package was named, but: unable to mount proc"
        );
    }

    #[test]
    fn paths_resolve_through_the_roots_own_links() {
        let dir = tempfile::tempdir().unwrap();
        let r = Root::new(dir.path(), vec![]);
        fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        fs::create_dir_all(dir.path().join("usr/lib/llvm-19/bin")).unwrap();
        fs::write(dir.path().join("usr/lib/llvm-19/bin/clang"), "").unwrap();
        std::os::unix::fs::symlink("usr/bin", dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink("../lib/llvm-19/bin/clang", dir.path().join("usr/bin/clang-19")).unwrap();
        // An absolute link means the root's `/`, not the host's.
        std::os::unix::fs::symlink("/usr/lib/llvm-19/bin/clang", dir.path().join("usr/bin/clang")).unwrap();
        let clang = dir.path().join("usr/lib/llvm-19/bin/clang");
        assert_eq!(r.host_path(Path::new("/bin/clang-19")), clang);
        assert_eq!(r.host_path(Path::new("/usr/bin/clang")), clang);
        assert_eq!(r.host_path(Path::new("/usr/bin/missing")), dir.path().join("usr/bin/missing"));
    }
}
