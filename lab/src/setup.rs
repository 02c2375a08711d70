//! What the lab needs: on the host, mmdebstrap (and cargo, which built the
//! lab); everything else in the build root ([`crate::root`]).
//!
//! The lab never lets kbuild pick a compiler from `PATH`: every tool is
//! named here by its full path in the root, and its version is checked.

use anyhow::{anyhow, bail, Context, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::arch::Arch;
use crate::base::{Base, Source};
use crate::cmd;
use crate::layout::Layout;
use crate::root::{is_root, Root};

/// Debian packages the host needs: mmdebstrap makes the build root. git
/// (for the work trees) is on every machine that cloned the lab.
pub const HOST_PACKAGES: &[&str] = &["mmdebstrap"];

/// The bindgen release both bases build with (the root's Debian package).
pub const BINDGEN_VERSION: &str = "0.71.1";
/// The oldest rustc that both bases accept (Linux 7.3's minimum).
pub const RUSTC_MIN: (u32, u32) = (1, 85);
/// The LLVM release of the root; Linux 7.3 wants 17 or newer.
pub const LLVM_VERSION: u32 = 19;

/// Full paths, inside the build root, of the tools a kernel build and a
/// guest run use.
#[derive(Clone, Debug)]
pub struct Toolchain {
    pub root: Root,
    pub rustc: PathBuf,
    pub rustdoc: PathBuf,
    pub clippy_driver: PathBuf,
    pub rustfmt: PathBuf,
    pub ccache: PathBuf,
    /// The folder of the libclang that matches `clang`, for bindgen.
    pub libclang_dir: PathBuf,
    pub bindgen: PathBuf,
    /// qemu-system-x86_64.
    pub qemu: PathBuf,
    pub qemu_aarch64: PathBuf,
    pub qboot: PathBuf,
    pub busybox: PathBuf,
    pub bash_static: PathBuf,
}

impl Toolchain {
    /// The QEMU system emulator of `arch` guests.
    pub fn qemu_for(&self, arch: Arch) -> &Path {
        match arch {
            Arch::X86_64 => &self.qemu,
            Arch::Arm64 => &self.qemu_aarch64,
        }
    }

    /// kbuild's `LLVM=` value: the root's LLVM, by version suffix.
    pub fn llvm(&self) -> String {
        format!("-{LLVM_VERSION}")
    }

    /// `program` as a command that runs in the build root.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        self.root.command(program)
    }

    /// The Debian source package of `base` in the root.
    pub fn source(&self, base: Base) -> Result<Source> {
        base.source(&self.root)
    }
}

/// Parses `major.minor` from the first version-looking word of `text`.
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let re = regex::Regex::new(r"(\d+)\.(\d+)(?:\.(\d+))?").expect("valid regex");
    let c = re.captures(text)?;
    let num = |i: usize| c.get(i).map_or(Some(0), |m| m.as_str().parse().ok());
    Some((num(1)?, num(2)?, num(3)?))
}

/// Which of `packages` dpkg does not list as installed.
pub fn missing_packages(packages: &[&str]) -> Result<Vec<String>> {
    let mut missing = Vec::new();
    for pkg in packages {
        let out = Command::new("dpkg-query")
            .args(["-W", "-f", "${db:Status-Abbrev}", pkg])
            .output()
            .context("cannot run dpkg-query: the lab needs a Debian machine")?;
        let status = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !status.starts_with("ii") {
            missing.push((*pkg).to_string());
        }
    }
    Ok(missing)
}

/// The exact command a user must run to install `missing`.
pub fn install_command(missing: &[String]) -> String {
    format!("apt-get update && apt-get install -y --no-install-recommends {}", missing.join(" "))
}

/// Installs the host's missing Debian packages (as root), or says what to
/// run.
pub fn install_host_packages(log: &Path) -> Result<()> {
    let missing = missing_packages(HOST_PACKAGES)?;
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages on the host: {}.\nThe lab installs them only as root. Run:\n  sudo sh -c '{}'\n\
             then run the lab again.",
            missing.join(" "),
            install_command(&missing)
        );
    }
    eprintln!("lab: installing {} on the host (log: {})", missing.join(" "), log.display());
    cmd::run_logged(Command::new("apt-get").arg("update"), log, |_| {})
        .context("apt-get update failed: check the machine's apt sources")?;
    let mut install = Command::new("apt-get");
    install.env("DEBIAN_FRONTEND", "noninteractive").args(["install", "-y", "--no-install-recommends"]).args(&missing);
    cmd::run_logged(&mut install, log, |_| {})
        .map_err(|e| anyhow!("{e}\nA package could not be installed. Run:\n  {}", install_command(&missing)))?;
    Ok(())
}

/// Checks that `inside`, a path in the root, exists there, or fails saying
/// which of the root's packages provides it.
fn in_root(root: &Root, inside: &str, package: &str) -> Result<PathBuf> {
    if root.host_path(Path::new(inside)).exists() {
        Ok(PathBuf::from(inside))
    } else {
        bail!(
            "{inside} is missing from the build root {} (it comes from the Debian package {package}, which is in \
             its package list): remake the root with `lab setup --refresh`",
            root.dir.display()
        )
    }
}

fn tool_version(root: &Root, path: &Path) -> Result<String> {
    cmd::output(root.command(path).arg("--version"))
}

/// Installs what the host lacks, makes the build root if it is missing or
/// stale (`refresh`: in any case), then checks every tool's version.
pub fn ensure(layout: &Layout, refresh: bool) -> Result<Toolchain> {
    install_host_packages(&layout.logs().join("setup-apt.log"))?;
    if !is_root() {
        bail!("the lab enters its build root with a mount namespace and chroot, which needs root: run it as root");
    }
    let root = Root::new(layout.root(), vec![layout.repo.clone()]);
    root.ensure(&layout.logs(), refresh)?;

    let rustc = in_root(&root, "/usr/bin/rustc", "rustc-web")?;
    let rustdoc = in_root(&root, "/usr/bin/rustdoc", "rustc-web")?;
    let clippy_driver = in_root(&root, "/usr/bin/clippy-driver", "rust-web-clippy")?;
    let rustfmt = in_root(&root, "/usr/bin/rustfmt", "rustfmt-web")?;
    let v = tool_version(&root, &rustc)?;
    let (maj, min, _) = parse_version(&v).ok_or_else(|| anyhow!("cannot read rustc version from {v:?}"))?;
    if (maj, min) < RUSTC_MIN {
        bail!(
            "the root's rustc is {}, but the bases need at least {}.{}: remake the root with `lab setup --refresh`",
            v.trim(),
            RUSTC_MIN.0,
            RUSTC_MIN.1
        );
    }
    let sysroot = cmd::output(root.command(&rustc).args(["--print", "sysroot"]))?;
    in_root(&root, &format!("{}/lib/rustlib/src/rust/library/core/src/lib.rs", sysroot.trim()), "rust-web-src")?;
    let clang = in_root(&root, &format!("/usr/bin/clang-{LLVM_VERSION}"), &format!("clang-{LLVM_VERSION}"))?;
    let cv = tool_version(&root, &clang)?;
    if parse_version(&cv).map(|v| v.0) != Some(LLVM_VERSION) {
        bail!("{} is not LLVM {LLVM_VERSION}: {}", clang.display(), cv.lines().next().unwrap_or(""));
    }
    for (tool, pkg) in [
        (format!("/usr/bin/ld.lld-{LLVM_VERSION}"), format!("lld-{LLVM_VERSION}")),
        (format!("/usr/bin/llvm-ar-{LLVM_VERSION}"), format!("llvm-{LLVM_VERSION}")),
        ("/usr/bin/flex".into(), "flex".into()),
        ("/usr/bin/bison".into(), "bison".into()),
        ("/usr/bin/bc".into(), "bc".into()),
        ("/usr/bin/git".into(), "git".into()),
        ("/usr/bin/python3".into(), "python3".into()),
        ("/usr/bin/perl".into(), "perl".into()),
        ("/usr/bin/gcc".into(), "gcc".into()),
        ("/usr/bin/s390x-linux-gnu-ld".into(), "binutils-s390x-linux-gnu".into()),
        ("/usr/bin/dpkg-deb".into(), "dpkg".into()),
    ] {
        in_root(&root, &tool, &pkg)?;
    }
    let ccache = in_root(&root, "/usr/bin/ccache", "ccache")?;
    let libclang_dir = PathBuf::from(format!("/usr/lib/llvm-{LLVM_VERSION}/lib"));
    in_root(&root, &format!("{}/libclang.so", libclang_dir.display()), &format!("libclang-{LLVM_VERSION}-dev"))?;
    let bindgen = in_root(&root, "/usr/bin/bindgen", "bindgen")?;
    let bv = tool_version(&root, &bindgen)?;
    if bv.split_whitespace().nth(1) != Some(BINDGEN_VERSION) {
        bail!("the root's bindgen is {}, the lab builds with {BINDGEN_VERSION}", bv.trim());
    }
    // Each guest architecture's emulator, and the compiler and static C
    // library of its test programs.
    for arch in Arch::ALL {
        let ((gcc, gcc_pkg), (libc, libc_pkg)) = (arch.gcc(), arch.libc_a());
        in_root(&root, &format!("/usr/bin/{gcc}"), gcc_pkg)?;
        in_root(&root, libc, libc_pkg)?;
    }
    let qemu_of = |arch: Arch| in_root(&root, &format!("/usr/bin/{}", arch.qemu().0), arch.qemu().1);
    let (qemu, qemu_aarch64) = (qemu_of(Arch::X86_64)?, qemu_of(Arch::Arm64)?);
    let qboot = in_root(&root, "/usr/share/qemu/qboot.rom", "qemu-system-data")?;
    let busybox = in_root(&root, "/bin/busybox", "busybox-static")?;
    let bash_static = in_root(&root, "/bin/bash-static", "bash-static")?;
    Ok(Toolchain {
        root,
        rustc,
        rustdoc,
        clippy_driver,
        rustfmt,
        ccache,
        libclang_dir,
        bindgen,
        qemu,
        qemu_aarch64,
        qboot,
        busybox,
        bash_static,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("rustc 1.96.0 (abc 2026-01-01)"), Some((1, 96, 0)));
        assert_eq!(parse_version("Debian clang version 19.1.7 (3+b1)"), Some((19, 1, 7)));
        assert_eq!(parse_version("bindgen 0.71"), Some((0, 71, 0)));
        assert_eq!(parse_version("no digits"), None);
    }

    #[test]
    fn a_missing_tool_of_the_root_says_how_to_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path(), vec![]);
        let err = in_root(&root, "/usr/share/qemu/qboot.rom", "qemu-system-data").unwrap_err().to_string();
        assert!(err.contains("/usr/share/qemu/qboot.rom is missing") && err.contains("qemu-system-data"), "{err}");
        assert!(err.contains("lab setup --refresh"), "{err}");
    }

    #[test]
    fn dpkg_reports_a_package_that_does_not_exist() {
        let missing = missing_packages(&["lab-no-such-package-xyz", "dpkg"]).unwrap();
        assert_eq!(missing, vec!["lab-no-such-package-xyz".to_string()]);
    }
}
