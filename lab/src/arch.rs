//! The architectures the lab boots guests of, and what differs between them:
//! the QEMU machine, the console, the compilers of the guest programs and
//! where the guest's busybox and bash come from.
//!
//! The host is x86_64 (Debian amd64). An x86_64 guest runs the host's own
//! static busybox and bash and programs built by the host's gcc; an arm64
//! guest runs Debian's arm64 packages of them (see [`crate::deb`]) and
//! programs built by Debian's aarch64 cross compiler.

/// A guest architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    X86_64,
    Arm64,
}

/// Guests of another architecture that `lab test` boots besides the x86_64
/// variants of config/: `<arch>-<variant>`. arm64 proves the series' shared
/// end of the page-fault handler on a second architecture at runtime, with
/// the kernel that `lab check` already builds at the tip
/// (build/kernel/arm64-rust).
pub const OTHER_ARCH_GUESTS: &[&str] = &["arm64-rust"];

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::X86_64, Arch::Arm64];

    /// The kernel's `ARCH=`.
    pub fn kernel_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }

    /// Debian's name of the architecture (`dpkg --print-architecture`).
    pub fn deb_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    /// The host compiles for this architecture without a cross compiler.
    pub fn is_host(self) -> bool {
        self == Arch::X86_64
    }

    /// kbuild's `CROSS_COMPILE=` prefix for user-space programs (the mm
    /// selftests, guest/programs): Debian's gcc-<triplet> packages.
    pub fn cross_compile(self) -> Option<&'static str> {
        match self {
            Arch::X86_64 => None,
            Arch::Arm64 => Some("aarch64-linux-gnu-"),
        }
    }

    /// The C compiler of guest programs, and the Debian package it comes in.
    pub fn gcc(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("gcc", "gcc"),
            Arch::Arm64 => ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
        }
    }

    /// The static C library the guest programs link, and its package.
    pub fn libc_a(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"),
            Arch::Arm64 => ("/usr/aarch64-linux-gnu/lib/libc.a", "libc6-dev-arm64-cross"),
        }
    }

    /// The QEMU system emulator, and the Debian package it comes in.
    pub fn qemu(self) -> (&'static str, &'static str) {
        match self {
            Arch::X86_64 => ("qemu-system-x86_64", "qemu-system-x86"),
            Arch::Arm64 => ("qemu-system-aarch64", "qemu-system-arm"),
        }
    }

    /// The serial console the lab reads (`console=`).
    pub fn console(self) -> &'static str {
        match self {
            Arch::X86_64 => "ttyS0",
            Arch::Arm64 => "ttyAMA0",
        }
    }

    /// Where the kernel image lands, relative to the build folder.
    pub fn image(self) -> &'static str {
        match self {
            Arch::X86_64 => "arch/x86/boot/bzImage",
            Arch::Arm64 => "arch/arm64/boot/Image",
        }
    }

    /// The kernel's source folder under arch/.
    pub fn src_arch(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86",
            Arch::Arm64 => "arm64",
        }
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.kernel_arch())
    }
}

/// A guest variant's architecture and configuration: `arm64-rust` is the
/// `rust` configuration on arm64; a name without an architecture prefix is
/// an x86_64 variant.
pub fn split_variant(variant: &str) -> (Arch, &str) {
    for a in Arch::ALL.into_iter().filter(|a| !a.is_host()) {
        if let Some(config) = variant.strip_prefix(a.kernel_arch()).and_then(|r| r.strip_prefix('-')) {
            if !config.is_empty() {
                return (a, config);
            }
        }
    }
    (Arch::X86_64, variant)
}

/// The architecture a guest variant runs on.
pub fn of_variant(variant: &str) -> Arch {
    split_variant(variant).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names_carry_their_architecture() {
        assert_eq!(split_variant("arm64-rust"), (Arch::Arm64, "rust"));
        assert_eq!(split_variant("rust"), (Arch::X86_64, "rust"));
        assert_eq!(split_variant("debug"), (Arch::X86_64, "debug"));
        // Not an architecture prefix: an x86_64 variant of that name.
        assert_eq!(split_variant("arm64"), (Arch::X86_64, "arm64"));
        assert_eq!(split_variant("arm64-"), (Arch::X86_64, "arm64-"));
        assert_eq!(split_variant("arm64x-rust"), (Arch::X86_64, "arm64x-rust"));
        assert_eq!(split_variant("x86_64-rust"), (Arch::X86_64, "x86_64-rust"));
    }

    #[test]
    fn every_other_arch_guest_names_a_non_host_arch_and_a_configuration() {
        for g in OTHER_ARCH_GUESTS {
            let (a, config) = split_variant(g);
            assert!(!a.is_host() && !config.is_empty(), "{g}");
        }
    }
}
