//! Where everything lives: the repository's inputs and the build folder's outputs.

use std::path::{Path, PathBuf};

use crate::arch::Arch;

/// The repository checkout and its ignored build folder.
///
/// Inputs (patches, config fragments, the guest plan) are read from the
/// repository; everything generated goes under `build/`.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The repository root (the folder holding `patches/` and `config/`).
    pub repo: PathBuf,
    /// The one ignored folder for generated files.
    pub build: PathBuf,
}

impl Layout {
    /// A layout rooted at `repo`, with the build folder at `repo/build`.
    pub fn new(repo: impl Into<PathBuf>) -> Self {
        let repo = repo.into();
        let build = repo.join("build");
        Self { repo, build }
    }

    /// Finds the repository root by walking up from the current directory
    /// to the first folder holding both `patches/` and `config/`.
    pub fn discover() -> anyhow::Result<Self> {
        let cwd = std::env::current_dir()?;
        let mut dir: &Path = &cwd;
        loop {
            if dir.join("patches").is_dir() && dir.join("config").is_dir() {
                return Ok(Self::new(dir));
            }
            dir = match dir.parent() {
                Some(p) => p,
                None => anyhow::bail!(
                    "no lab checkout above {}: run the lab from the repository \
                     (the folder holding patches/ and config/)",
                    cwd.display()
                ),
            };
        }
    }

    /// The patch queue: `git format-patch` files plus a `series` file.
    pub fn patches(&self) -> PathBuf {
        self.repo.join("patches")
    }

    /// Kconfig fragments.
    pub fn config(&self) -> PathBuf {
        self.repo.join("config")
    }

    /// Bench-only Kconfig fragments: configurations that `lab bench` boots
    /// but that are no variant of `lab test` or `lab check`.
    pub fn bench_config(&self) -> PathBuf {
        self.config().join("bench")
    }

    /// Guest-side files: the init script and the test plan.
    pub fn guest(&self) -> PathBuf {
        self.repo.join("guest")
    }

    /// The kernel work tree (a git repository whose `base` tag is the
    /// unpacked Debian source).
    pub fn tree(&self) -> PathBuf {
        self.build.join("linux")
    }

    /// The out-of-tree kernel build folder of one variant.
    pub fn kbuild(&self, variant: &str) -> PathBuf {
        self.build.join("kernel").join(variant)
    }

    /// What the lab makes for guests of another architecture than the
    /// host's: build/<arch> (its headers, test programs, packages and
    /// userland).
    pub fn arch_dir(&self, arch: Arch) -> PathBuf {
        self.build.join(arch.kernel_arch())
    }

    /// The out-of-tree folder holding the exported UAPI headers of `arch`.
    pub fn headers(&self, arch: Arch) -> PathBuf {
        if arch.is_host() {
            self.build.join("headers")
        } else {
            self.arch_dir(arch).join("headers")
        }
    }

    /// The lab's own guest programs: guest/programs/<name>.c.
    pub fn guest_programs(&self) -> PathBuf {
        self.guest().join("programs")
    }

    /// Output folder of the statically linked test programs (the selftests
    /// and guest/programs) for `arch`.
    pub fn selftests(&self, arch: Arch) -> PathBuf {
        if arch.is_host() {
            self.build.join("selftests")
        } else {
            self.arch_dir(arch).join("selftests")
        }
    }

    /// Initramfs images, one per variant.
    pub fn initramfs(&self, variant: &str) -> PathBuf {
        self.build.join("initramfs").join(format!("{variant}.cpio"))
    }

    /// Logs of long steps (builds, apply, setup).
    pub fn logs(&self) -> PathBuf {
        self.build.join("logs")
    }

    /// Results of guest runs: one folder per invocation.
    pub fn runs(&self) -> PathBuf {
        self.build.join("runs")
    }
}
