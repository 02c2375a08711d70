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

/// Debian packages the host needs: mmdebstrap makes the build root,
/// python3-venv the environment kcidb-io runs in (see [`Toolchain::kcidb_python`]).
/// git (for the work trees) is on every machine that cloned the lab.
pub const HOST_PACKAGES: &[&str] = &["mmdebstrap", "python3-venv"];

/// kcidb-io from PyPI, KernelCI's own validator of KCIDB reports
/// ([`crate::kcidb`]).
pub const KCIDB_IO: &str = "141";

/// The oldest rustc that both bases accept (Linux 7.3's minimum).
pub const RUSTC_MIN: (u32, u32) = (1, 85);
/// rustc-web's own LLVM. Mainline builds with the clang of that LLVM, so
/// that `CONFIG_RUST_INLINE_HELPERS` (which needs
/// `RUSTC_CLANG_LLVM_COMPATIBLE`) can link the C helpers' bitcode into Rust.
pub const RUSTC_LLVM: u32 = 22;
/// The LLVM 6.12 builds with: it has no helper inlining, and its series was
/// measured with this one.
pub const LTS_LLVM: u32 = 19;
/// The root's Debian bindgen, which 6.12 uses.
pub const DEBIAN_BINDGEN: &str = "0.71.1";
/// The bindgen mainline uses, from crates.io (bindgen-cli): 0.71.1 refuses
/// libclang 22 (scripts/rust_is_available.sh), and a libclang older than
/// clang does not know the warning options kbuild gives clang 22.
pub const CRATES_BINDGEN: &str = "0.72.1";

/// The LLVM release `base` builds with, every variant alike, so that its
/// `c` and `rust` kernels differ only in the series' options; bindgen loads
/// the libclang of the same release.
pub fn llvm_of(base: Base) -> u32 {
    match base {
        Base::Mainline => RUSTC_LLVM,
        Base::Lts612 => LTS_LLVM,
    }
}

/// A bindgen and the folder of the libclang it loads (`LIBCLANG_PATH`).
#[derive(Clone, Debug)]
pub struct Bindgen {
    pub path: PathBuf,
    pub libclang_dir: PathBuf,
    pub version: &'static str,
}

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
    /// bindgen for 6.12 (Debian's, libclang 19) and mainline (crates.io's,
    /// libclang 22): see [`Toolchain::bindgen`].
    pub bindgen_lts: Bindgen,
    pub bindgen_mainline: Bindgen,
    /// qemu-system-x86_64.
    pub qemu: PathBuf,
    pub qemu_aarch64: PathBuf,
    pub qboot: PathBuf,
    pub busybox: PathBuf,
    pub bash_static: PathBuf,
    /// The python of kcidb-io's environment, on the host.
    pub kcidb_python: PathBuf,
}

impl Toolchain {
    /// The QEMU system emulator of `arch` guests.
    pub fn qemu_for(&self, arch: Arch) -> &Path {
        match arch {
            Arch::X86_64 => &self.qemu,
            Arch::Arm64 => &self.qemu_aarch64,
        }
    }

    /// The bindgen of `base`, whose libclang is `base`'s LLVM.
    pub fn bindgen(&self, base: Base) -> &Bindgen {
        match base {
            Base::Mainline => &self.bindgen_mainline,
            Base::Lts612 => &self.bindgen_lts,
        }
    }

    /// kbuild's `LLVM=` value for `base`: its LLVM, by version suffix.
    pub fn llvm(&self, base: Base) -> String {
        format!("-{}", llvm_of(base))
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

/// bindgen-cli [`CRATES_BINDGEN`] from crates.io, built once with the host's
/// cargo (which builds the lab too) under build/tools; the binary runs in
/// the build root, which shares the checkout at the same path, and loads
/// the root's libclang. Returns its path.
fn install_bindgen(layout: &Layout) -> Result<PathBuf> {
    let dir = layout.tools().join(format!("bindgen-cli-{CRATES_BINDGEN}"));
    let bin = dir.join("bin").join("bindgen");
    if bin.is_file() {
        return Ok(bin);
    }
    let log = layout.logs().join("bindgen-install.log");
    eprintln!(
        "lab: building bindgen-cli {CRATES_BINDGEN} from crates.io for mainline (about a minute; log: {})",
        log.display()
    );
    let mut c = Command::new("cargo");
    c.args(["install", "--locked", "--quiet", &format!("bindgen-cli@{CRATES_BINDGEN}"), "--root"]).arg(&dir);
    // Not into the lab's own target folder, nor steered by the caller's.
    c.env_remove("CARGO_TARGET_DIR");
    cmd::run_logged(&mut c, &log, |_| {}).map_err(|e| {
        anyhow!(
            "{e}\ncargo could not build bindgen-cli {CRATES_BINDGEN} (log: {}): check that crates.io is reachable, \
             then run the lab again",
            log.display()
        )
    })?;
    if !bin.is_file() {
        bail!("cargo install reported success but {} is missing (log: {})", bin.display(), log.display());
    }
    Ok(bin)
}

/// Installs kcidb-io [`KCIDB_IO`] from PyPI into a virtual environment of
/// the host's Python under build/tools (in the build root, pip cannot reach
/// PyPI from behind a proxy whose certificate only the host trusts).
/// Returns the environment's python.
fn install_kcidb_io(layout: &Layout) -> Result<PathBuf> {
    let dir = layout.tools().join(format!("kcidb-io-{KCIDB_IO}"));
    let python = dir.join("bin").join("python3");
    let import = || Command::new(&python).args(["-c", "import kcidb_io"]).output().is_ok_and(|o| o.status.success());
    if import() {
        return Ok(python);
    }
    let log = layout.logs().join("kcidb-io-install.log");
    eprintln!("lab: installing kcidb-io {KCIDB_IO} from PyPI (log: {})", log.display());
    let _ = std::fs::remove_dir_all(&dir);
    cmd::run_logged(Command::new("python3").args(["-m", "venv"]).arg(&dir), &log, |_| {})
        .context("python3 -m venv failed: install python3-venv")?;
    cmd::run_logged(
        Command::new(dir.join("bin").join("pip")).args(["install", "--quiet", &format!("kcidb-io=={KCIDB_IO}")]),
        &log,
        |_| {},
    )
    .map_err(|e| {
        anyhow!(
            "{e}
pip could not install kcidb-io {KCIDB_IO}: check that PyPI is reachable, then run `lab setup` again"
        )
    })?;
    if !import() {
        bail!("kcidb-io {KCIDB_IO} was installed, but {} cannot import it (log: {})", python.display(), log.display());
    }
    Ok(python)
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
    // rustc's LLVM must be the one mainline's clang is (RUST_INLINE_HELPERS).
    let verbose = cmd::output(root.command(&rustc).arg("-vV"))?;
    let rustc_llvm = verbose.lines().find_map(|l| l.strip_prefix("LLVM version: ")).and_then(parse_version);
    if rustc_llvm.map(|v| v.0) != Some(RUSTC_LLVM) {
        bail!(
            "the root's rustc uses LLVM {}, but the lab builds mainline with clang {RUSTC_LLVM} to match it: \
             set RUSTC_LLVM in lab/src/setup.rs and clang-/lld-/llvm-N in lab/src/root.rs to rustc's LLVM",
            rustc_llvm.map_or_else(|| "(unknown)".to_string(), |v| format!("{}.{}.{}", v.0, v.1, v.2))
        );
    }
    for llvm in [LTS_LLVM, RUSTC_LLVM] {
        let clang = in_root(&root, &format!("/usr/bin/clang-{llvm}"), &format!("clang-{llvm}"))?;
        let cv = tool_version(&root, &clang)?;
        if parse_version(&cv).map(|v| v.0) != Some(llvm) {
            bail!("{} is not LLVM {llvm}: {}", clang.display(), cv.lines().next().unwrap_or(""));
        }
        in_root(&root, &format!("/usr/bin/ld.lld-{llvm}"), &format!("lld-{llvm}"))?;
        in_root(&root, &format!("/usr/bin/llvm-ar-{llvm}"), &format!("llvm-{llvm}"))?;
    }
    for (tool, pkg) in [
        ("/usr/bin/flex", "flex"),
        ("/usr/bin/bison", "bison"),
        ("/usr/bin/bc", "bc"),
        ("/usr/bin/git", "git"),
        ("/usr/bin/python3", "python3"),
        ("/usr/bin/perl", "perl"),
        ("/usr/bin/gcc", "gcc"),
        ("/usr/bin/s390x-linux-gnu-ld", "binutils-s390x-linux-gnu"),
        ("/usr/bin/dpkg-deb", "dpkg"),
        ("/usr/bin/lava-run", "lava-dispatcher"),
    ] {
        in_root(&root, tool, pkg)?;
    }
    let ccache = in_root(&root, "/usr/bin/ccache", "ccache")?;
    let libclang_dir = |llvm: u32| PathBuf::from(format!("/usr/lib/llvm-{llvm}/lib"));
    in_root(&root, &format!("/usr/lib/llvm-{LTS_LLVM}/lib/libclang.so"), &format!("libclang-{LTS_LLVM}-dev"))?;
    in_root(
        &root,
        &format!("/usr/lib/llvm-{RUSTC_LLVM}/lib/libclang-{RUSTC_LLVM}.so.1"),
        &format!("libclang1-{RUSTC_LLVM}"),
    )?;
    let bindgen_lts = Bindgen {
        path: in_root(&root, "/usr/bin/bindgen", "bindgen")?,
        libclang_dir: libclang_dir(LTS_LLVM),
        version: DEBIAN_BINDGEN,
    };
    let bindgen_mainline =
        Bindgen { path: install_bindgen(layout)?, libclang_dir: libclang_dir(RUSTC_LLVM), version: CRATES_BINDGEN };
    for b in [&bindgen_lts, &bindgen_mainline] {
        let v = tool_version(&root, &b.path)?;
        if v.split_whitespace().nth(1) != Some(b.version) {
            bail!("{} is {}, the lab builds with bindgen {}", b.path.display(), v.trim(), b.version);
        }
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
    let kcidb_python = install_kcidb_io(layout)?;
    Ok(Toolchain {
        root,
        rustc,
        rustdoc,
        clippy_driver,
        rustfmt,
        ccache,
        bindgen_lts,
        bindgen_mainline,
        qemu,
        qemu_aarch64,
        qboot,
        busybox,
        bash_static,
        kcidb_python,
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
