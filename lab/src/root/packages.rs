//! What the build root is made of: its Debian release, package sources,
//! foreign architectures and packages (the manifest whose change makes
//! the root again), and the kernel source packages among them.

/// The Debian release of the root.
pub const SUITE: &str = "trixie";

/// Where its packages come from: trixie, its security updates, and
/// trixie-backports, which has the newest `linux-source-N.M`.
pub const SOURCES: &[&str] = &[
    "deb http://deb.debian.org/debian trixie main",
    "deb http://deb.debian.org/debian-security trixie-security main",
    "deb http://deb.debian.org/debian trixie-backports main",
];

/// Foreign architectures dpkg knows in the root: the arm64 guest's
/// busybox and bash are fetched as arm64 packages, and its test programs
/// link arm64 libraries.
pub const FOREIGN_ARCHES: &[&str] = &["arm64"];

/// The packages of the root. The mainline source (the newest
/// `linux-source-N.M` the sources have) is added when the root is made,
/// since its name is known only then.
pub const PACKAGES: &[&str] = &[
    // The kernel's 6.12 LTS source; mainline's is resolved at creation.
    "linux-source-6.12",
    // Rust, with its library sources (kbuild compiles core), clippy
    // (CLIPPY=1) and rustfmt (rustfmtcheck); bindgen 0.71.1.
    "rustc-web",
    "rust-web-src",
    "rust-web-clippy",
    "rustfmt-web",
    "bindgen",
    // LLVM 22, rustc-web's own: mainline builds with it (helper inlining).
    "clang-22",
    "lld-22",
    "llvm-22",
    // LLVM 19: 6.12's builds, and the libclang of Debian's bindgen 0.71.1,
    // which 6.12 uses (mainline's bindgen comes from crates.io).
    "clang-19",
    "lld-19",
    "llvm-19",
    "libclang-19-dev",
    // The kernel build.
    "make",
    "bc",
    "bison",
    "flex",
    "libelf-dev",
    "libssl-dev",
    "cpio",
    "kmod",
    "rsync",
    "xz-utils",
    "perl",
    "python3",
    "git",
    "ccache",
    // The test programs (static, glibc), and libcap for mlock-random-test.
    "gcc",
    "libc6-dev",
    "libcap-dev",
    // checkpatch.pl's SPDX check (scripts/spdxcheck.py).
    "python3-ply",
    "python3-git",
    // make htmldocs.
    "python3-sphinx",
    "python3-yaml",
    // The series as mail: b4 prepares and sends it; git send-email can send
    // the files it writes, with what it recommends (apt's
    // recommendations are not installed): address parsing, SMTP over TLS
    // and authentication, address checks.
    "git-email",
    "libmailtools-perl",
    "libnet-smtp-ssl-perl",
    "libauthen-sasl-perl",
    "libemail-valid-perl",
    "b4",
    // The guests: QEMU, qboot, and the x86_64 guest's busybox and bash.
    "qemu-system-x86",
    "qemu-system-data",
    "qemu-system-arm",
    "busybox-static",
    "bash-static",
    // The arm64 guest's programs: the cross compiler, its C library and
    // libcap.
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "libcap-dev:arm64",
    // make check compiles arch/s390/mm/fault.o: ld.lld cannot link the
    // s390 vDSO that `prepare` builds.
    "binutils-s390x-linux-gnu",
    // apt-get download's certificate and key checks.
    "ca-certificates",
    // lava-run, LAVA's dispatcher, runs the lab's LAVA jobs (lab lava),
    // from trixie-backports, with lava-common (the device templates'
    // Jinja environment).
    "lava-dispatcher",
];

/// The prefix of the kernel source packages.
pub const SOURCE_PREFIX: &str = "linux-source-";

/// What defines a root: when it changes, the root is made again.
pub fn manifest() -> String {
    let mut s = format!("suite {SUITE}\n");
    for src in SOURCES {
        s.push_str(&format!("source {src}\n"));
    }
    for a in FOREIGN_ARCHES {
        s.push_str(&format!("foreign-arch {a}\n"));
    }
    for p in PACKAGES {
        s.push_str(&format!("package {p}\n"));
    }
    s
}

/// `(N, M)` of a `linux-source-N.M` package name.
pub fn source_version(package: &str) -> Option<(u32, u32)> {
    let (n, m) = package.strip_prefix(SOURCE_PREFIX)?.split_once('.')?;
    Some((n.parse().ok()?, m.parse().ok()?))
}

/// The newest `linux-source-N.M` among `names`.
pub fn newest_source<'a>(names: impl Iterator<Item = &'a str>) -> Option<String> {
    names.map(str::trim).filter_map(|n| Some((source_version(n)?, n))).max().map(|(_, n)| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_source_package_is_chosen_by_version() {
        let names = ["linux-source-6.12", "linux-source-7.3", "linux-source-7.10", "linux-source", "linux-source-x"];
        assert_eq!(newest_source(names.into_iter()).as_deref(), Some("linux-source-7.10"));
        assert_eq!(source_version("linux-source-6.12"), Some((6, 12)));
        assert_eq!(source_version("linux-source-6.12-rt"), None);
        assert!(newest_source(["linux-source"].into_iter()).is_none());
    }

    #[test]
    fn the_manifest_changes_with_the_package_list() {
        let m = manifest();
        assert!(
            m.contains("package rustc-web\n") && m.contains("source deb http://deb.debian.org/debian trixie main\n")
        );
        assert!(m.starts_with("suite trixie\n"));
    }
}
