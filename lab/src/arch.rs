//! The architectures the lab boots guests of, and what differs between them:
//! the QEMU machine, the console, the compilers of the guest programs and
//! where the guest's busybox and bash come from.
//!
//! The host is x86_64 (Debian amd64). An x86_64 guest runs the build root's
//! static busybox and bash and programs built by its gcc; an arm64 guest
//! runs Debian's arm64 packages of them (see [`crate::deb`]) and programs
//! built by Debian's aarch64 cross compiler.

/// A guest architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Arch {
    #[serde(rename = "x86_64")]
    X86_64,
    #[serde(rename = "arm64")]
    Arm64,
}

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
    /// selftests, guest/programs): Debian's `gcc-<triplet>` packages.
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
