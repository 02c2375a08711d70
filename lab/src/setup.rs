//! Installing and checking what the lab needs on a Debian machine.
//!
//! Debian packages come from apt-get, bindgen from crates.io. The lab never
//! lets kbuild pick a compiler from `PATH`: every tool is resolved here to a
//! full path, and its version is checked.

use anyhow::{anyhow, bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::arch::Arch;
use crate::cmd;

/// Debian packages the lab needs.
pub const PACKAGES: &[&str] = &[
    "linux-source-6.12",
    "rustc-web",
    "rust-web-src",
    "rust-web-clippy",
    "clang",
    "lld",
    "llvm",
    "libclang-dev",
    "qemu-system-x86",
    "qemu-system-data",
    "busybox-static",
    "bash-static",
    "flex",
    "bison",
    "bc",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "rsync",
    "make",
    "gcc",
    "libc6-dev",
    "git",
    "git-email",
    "perl",
    "python3",
    // checkpatch.pl's SPDX check (scripts/spdxcheck.py).
    "python3-ply",
    "python3-git",
    // Reuses C objects between the builds of `make check`.
    "ccache",
    // `make check` compiles arch/s390/mm/fault.c: Linux 6.12 needs clang 15
    // or newer for s390, and ld.lld cannot link its vDSO.
    "clang-16",
    "lld-16",
    "llvm-16",
    "binutils-s390x-linux-gnu",
    // `make check` renders the series' Documentation/ pages (make htmldocs).
    "python3-sphinx",
    "python3-yaml",
    // The arm64 guest of `lab test`: its emulator, and the cross compiler
    // and C library of its test programs. Its busybox and bash are the
    // arm64 packages, fetched as .deb files (see deb.rs).
    "qemu-system-arm",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
];

/// The bindgen release the lab builds with (installed from crates.io).
pub const BINDGEN_VERSION: &str = "0.71.1";
/// The oldest rustc that Linux 6.12 accepts.
pub const RUSTC_MIN: (u32, u32) = (1, 78);
/// The oldest LLVM that Linux 6.12 accepts with `LLVM=1` and Rust.
pub const CLANG_MIN: u32 = 13;
/// The Debian source package's tarball.
pub const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.12.tar.xz";

/// Full paths of the tools a kernel build and a guest run use.
#[derive(Clone, Debug)]
pub struct Toolchain {
    pub rustc: PathBuf,
    pub rustdoc: PathBuf,
    pub clippy_driver: PathBuf,
    pub ccache: PathBuf,
    /// The folder of the libclang that matches `clang` (bindgen would pick
    /// the newest one installed, clang-16's for the s390 check).
    pub libclang_dir: PathBuf,
    pub bindgen: PathBuf,
    /// qemu-system-x86_64.
    pub qemu: PathBuf,
    pub qemu_aarch64: PathBuf,
    pub qboot: PathBuf,
    pub busybox: PathBuf,
    pub bash_static: PathBuf,
    /// Version of the installed `linux-source-6.12` package.
    pub source_version: String,
    pub source_tarball: PathBuf,
}

impl Toolchain {
    /// The QEMU system emulator of `arch` guests.
    pub fn qemu_for(&self, arch: Arch) -> &Path {
        match arch {
            Arch::X86_64 => &self.qemu,
            Arch::Arm64 => &self.qemu_aarch64,
        }
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
            .context("cannot run dpkg-query: the lab needs a Debian (bookworm) machine")?;
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

/// Whether the lab runs as root (and so may install packages).
pub fn is_root() -> bool {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `apt-get update`, logged to `log`.
pub fn apt_update(log: &Path) -> Result<()> {
    cmd::run_logged(Command::new("apt-get").arg("update"), log, |_| {})
        .context("apt-get update failed: check the machine's apt sources")
}

/// Installs missing Debian packages (as root), or says what to run.
pub fn install_packages(log: &Path) -> Result<()> {
    let missing = missing_packages(PACKAGES)?;
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!(
            "missing Debian packages: {}.\nThe lab installs them only as root. Run:\n  sudo sh -c '{}'\nthen run the lab again.",
            missing.join(" "),
            install_command(&missing)
        );
    }
    eprintln!("lab: installing {} (log: {})", missing.join(" "), log.display());
    apt_update(log)?;
    let mut install = Command::new("apt-get");
    install.env("DEBIAN_FRONTEND", "noninteractive").args(["install", "-y", "--no-install-recommends"]).args(&missing);
    cmd::run_logged(&mut install, log, |_| {}).map_err(|e| {
        anyhow!(
            "{e}\nA package could not be installed. Check that the machine uses Debian \
             bookworm with bookworm-security (linux-source-6.12 and rustc-web come from \
             there), then run:\n  {}",
            install_command(&missing)
        )
    })?;
    let still = missing_packages(PACKAGES)?;
    if !still.is_empty() {
        bail!(
            "apt-get finished but these packages are still missing: {}.\nRun:\n  {}",
            still.join(" "),
            install_command(&still)
        );
    }
    Ok(())
}

/// Finds `tool` on `PATH` or fails saying which package provides it.
pub fn find_tool(tool: &str, package: &str) -> Result<PathBuf> {
    which::which(tool).map_err(|_| {
        anyhow!(
            "`{tool}` not found on PATH. It comes from the Debian package {package}:\n  {}",
            install_command(&[package.to_string()])
        )
    })
}

/// Checks that `path` exists, or fails saying which package provides it.
pub fn require_file(path: &Path, package: &str) -> Result<PathBuf> {
    if path.exists() {
        Ok(path.to_path_buf())
    } else {
        bail!(
            "{} is missing. It comes from the Debian package {package}:\n  {}",
            path.display(),
            install_command(&[package.to_string()])
        )
    }
}

fn tool_version(path: &Path) -> Result<String> {
    cmd::output(Command::new(path).arg("--version"))
}

/// Finds bindgen 0.71.1, installing it with cargo when it is missing or of
/// another version.
fn ensure_bindgen(log: &Path) -> Result<PathBuf> {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin").join("bindgen"));
    let candidates: Vec<PathBuf> = which::which("bindgen").ok().into_iter().chain(cargo_bin).collect();
    for c in &candidates {
        if let Ok(v) = tool_version(c) {
            if v.split_whitespace().nth(1) == Some(BINDGEN_VERSION) {
                return Ok(c.clone());
            }
        }
    }
    let cargo = which::which("cargo").map_err(|_| {
        anyhow!(
            "bindgen {BINDGEN_VERSION} is missing and so is cargo to install it. Install Rust's \
             cargo, then run:\n  cargo install --locked bindgen-cli@{BINDGEN_VERSION}"
        )
    })?;
    eprintln!("lab: installing bindgen-cli {BINDGEN_VERSION} from crates.io (log: {})", log.display());
    let mut install = Command::new(cargo);
    install.args(["install", "--locked", &format!("bindgen-cli@{BINDGEN_VERSION}")]);
    // The lab itself may run under `cargo run`: do not leak its target dir.
    install.env_remove("CARGO_TARGET_DIR");
    cmd::run_logged(&mut install, log, |_| {}).context(format!(
        "could not install bindgen; run by hand:\n  cargo install --locked bindgen-cli@{BINDGEN_VERSION}"
    ))?;
    for c in candidates.iter().chain(which::which("bindgen").ok().iter()) {
        if let Ok(v) = tool_version(c) {
            if v.split_whitespace().nth(1) == Some(BINDGEN_VERSION) {
                return Ok(c.clone());
            }
        }
    }
    bail!("cargo installed bindgen-cli {BINDGEN_VERSION} but it is not on PATH nor in ~/.cargo/bin: add cargo's bin folder to PATH")
}

/// Installs what is missing, then checks every tool's version.
pub fn ensure(logs: &Path) -> Result<Toolchain> {
    install_packages(&logs.join("setup-apt.log"))?;

    // Debian's rustc-web; never the rustup one that comes first on PATH.
    let rustc = require_file(Path::new("/usr/bin/rustc"), "rustc-web")?;
    let rustdoc = require_file(Path::new("/usr/bin/rustdoc"), "rustc-web")?;
    let clippy_driver = require_file(Path::new("/usr/bin/clippy-driver"), "rust-web-clippy")?;
    let v = tool_version(&rustc)?;
    let (maj, min, _) = parse_version(&v).ok_or_else(|| anyhow!("cannot read rustc version from {v:?}"))?;
    if (maj, min) < RUSTC_MIN {
        bail!(
            "/usr/bin/rustc is {}, but Linux 6.12 needs at least {}.{}: install rustc-web from \
             bookworm-security:\n  {}",
            v.trim(),
            RUSTC_MIN.0,
            RUSTC_MIN.1,
            install_command(&["rustc-web".into()])
        );
    }
    let sysroot = cmd::output(Command::new(&rustc).args(["--print", "sysroot"]))?;
    require_file(&Path::new(sysroot.trim()).join("lib/rustlib/src/rust/library/core/src/lib.rs"), "rust-web-src")?;
    let clang = find_tool("clang", "clang")?;
    let cv = tool_version(&clang)?;
    let (cmaj, _, _) = parse_version(&cv).ok_or_else(|| anyhow!("cannot read clang version"))?;
    if cmaj < CLANG_MIN {
        bail!("clang {cmaj} is too old: Linux 6.12 with Rust needs LLVM {CLANG_MIN} or newer");
    }
    for (tool, pkg) in [
        ("ld.lld", "lld"),
        ("llvm-ar", "llvm"),
        ("flex", "flex"),
        ("bison", "bison"),
        ("bc", "bc"),
        ("git", "git"),
        ("python3", "python3"),
        ("perl", "perl"),
        ("cc", "gcc"),
        ("s390x-linux-gnu-ld", "binutils-s390x-linux-gnu"),
        ("clang-16", "clang-16"),
    ] {
        find_tool(tool, pkg)?;
    }
    let ccache = find_tool("ccache", "ccache")?;
    let llvm_root = clang.canonicalize()?.parent().and_then(Path::parent).map(Path::to_path_buf);
    let libclang_dir = llvm_root
        .map(|r| r.join("lib"))
        .filter(|d| d.join("libclang.so").exists() || d.join(format!("libclang-{cmaj}.so")).exists())
        .ok_or_else(|| anyhow!("no libclang next to {}: install libclang-dev", clang.display()))?;
    let bindgen = ensure_bindgen(&logs.join("setup-bindgen.log"))?;
    // Each guest architecture's emulator, and the compiler and static C
    // library of its test programs.
    for arch in Arch::ALL {
        let ((gcc, gcc_pkg), (libc, libc_pkg)) = (arch.gcc(), arch.libc_a());
        find_tool(gcc, gcc_pkg)?;
        require_file(Path::new(libc), libc_pkg)?;
    }
    let qemu_of = |arch: Arch| find_tool(arch.qemu().0, arch.qemu().1);
    let (qemu, qemu_aarch64) = (qemu_of(Arch::X86_64)?, qemu_of(Arch::Arm64)?);
    let qboot = require_file(Path::new("/usr/share/qemu/qboot.rom"), "qemu-system-data")?;
    let busybox = require_file(Path::new("/bin/busybox"), "busybox-static")?;
    let bash_static = require_file(Path::new("/bin/bash-static"), "bash-static")?;
    let source_tarball = require_file(Path::new(SOURCE_TARBALL), "linux-source-6.12")?;
    let source_version = cmd::output(Command::new("dpkg-query").args(["-W", "-f", "${Version}", "linux-source-6.12"]))?
        .trim()
        .to_string();
    Ok(Toolchain {
        rustc,
        rustdoc,
        clippy_driver,
        ccache,
        libclang_dir,
        bindgen,
        qemu,
        qemu_aarch64,
        qboot,
        busybox,
        bash_static,
        source_version,
        source_tarball,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("rustc 1.96.0 (abc 2026-01-01)"), Some((1, 96, 0)));
        assert_eq!(parse_version("Debian clang version 14.0.6"), Some((14, 0, 6)));
        assert_eq!(parse_version("bindgen 0.71"), Some((0, 71, 0)));
        assert_eq!(parse_version("no digits"), None);
    }

    #[test]
    fn missing_tool_says_what_to_install() {
        let err = find_tool("lab-no-such-tool-xyz", "lab-pkg").unwrap_err().to_string();
        assert!(err.contains("`lab-no-such-tool-xyz` not found"), "{err}");
        assert!(err.contains("apt-get install -y --no-install-recommends lab-pkg"), "{err}");
    }

    #[test]
    fn missing_file_says_what_to_install() {
        let err = require_file(Path::new("/nonexistent/qboot.rom"), "qemu-system-data").unwrap_err().to_string();
        assert!(err.contains("/nonexistent/qboot.rom is missing"), "{err}");
        assert!(err.contains("apt-get install -y --no-install-recommends qemu-system-data"), "{err}");
    }

    #[test]
    fn dpkg_reports_a_package_that_does_not_exist() {
        let missing = missing_packages(&["lab-no-such-package-xyz", "dpkg"]).unwrap();
        assert_eq!(missing, vec!["lab-no-such-package-xyz".to_string()]);
    }
}
