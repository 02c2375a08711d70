//! Where everything lives: the repository's inputs and the build folder's outputs.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

use crate::arch::Arch;
use crate::base::Base;
use crate::variant::Variant;

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

    /// The series of `base`: `git format-patch` files plus a `series`
    /// file (patches/<base>/).
    pub fn patches(&self, base: Base) -> PathBuf {
        self.repo.join("patches").join(base.name())
    }

    /// Kconfig fragments every base shares (config/).
    pub fn config(&self) -> PathBuf {
        self.repo.join("config")
    }

    /// The configurations of `base` and what they set there
    /// (config/<base>/; see [`crate::variant`]).
    pub fn base_config(&self, base: Base) -> PathBuf {
        self.config().join(base.name())
    }

    /// Guest-side files: the init script and the test plan.
    pub fn guest(&self) -> PathBuf {
        self.repo.join("guest")
    }

    /// The lab's own guest programs: `guest/programs/<name>.c`.
    pub fn guest_programs(&self) -> PathBuf {
        self.guest().join("programs")
    }

    /// The Debian build root every kernel build and guest runs in.
    pub fn root(&self) -> PathBuf {
        self.build.join("root").join(crate::root::SUITE)
    }

    /// Tools the lab builds from crates.io for the build root (they run
    /// inside it, at the same path).
    pub fn tools(&self) -> PathBuf {
        self.build.join("tools")
    }

    /// The C compiler cache every build shares.
    pub fn ccache(&self) -> PathBuf {
        self.build.join("ccache")
    }

    /// Everything generated for `base`: build/<base>/.
    pub fn base_dir(&self, base: Base) -> PathBuf {
        self.build.join(base.name())
    }

    /// The kernel work tree of `base` (a git repository whose `base` tag is
    /// the unpacked Debian source).
    pub fn tree(&self, base: Base) -> PathBuf {
        self.base_dir(base).join("linux")
    }

    /// The checkout of the series' tip beside the work tree, from which
    /// the kernels `lab check` does not walk build (see [`crate::tip`]).
    pub fn tip(&self, base: Base) -> PathBuf {
        self.base_dir(base).join("tip")
    }

    /// The out-of-tree kernel build folder of a variant.
    pub fn kbuild(&self, v: &Variant) -> PathBuf {
        self.kbuild_named(v.base, &v.name())
    }

    /// An out-of-tree build folder of `base` that is no variant (the other
    /// architectures' fault.o, htmldocs).
    pub fn kbuild_named(&self, base: Base, name: &str) -> PathBuf {
        self.base_dir(base).join("kernel").join(name)
    }

    /// The out-of-tree folder holding the exported UAPI headers of `arch`.
    pub fn headers(&self, base: Base, arch: Arch) -> PathBuf {
        self.base_dir(base).join("headers").join(arch.kernel_arch())
    }

    /// Output folder of the statically linked test programs (the selftests
    /// and guest/programs) for `arch`.
    pub fn selftests(&self, base: Base, arch: Arch) -> PathBuf {
        self.base_dir(base).join("selftests").join(arch.kernel_arch())
    }

    /// A guest userland of another architecture than the host's (its
    /// busybox and bash, from Debian's packages): the same for every base.
    pub fn userland(&self, arch: Arch) -> PathBuf {
        self.build.join("userland").join(arch.kernel_arch())
    }

    /// A variant's initramfs image.
    pub fn initramfs(&self, v: &Variant) -> PathBuf {
        self.base_dir(v.base).join("initramfs").join(format!("{}.cpio", v.name()))
    }

    /// Logs of steps that belong to no base (the build root, setup).
    pub fn logs(&self) -> PathBuf {
        self.build.join("logs")
    }

    /// Logs of long steps of `base` (builds, apply).
    pub fn base_logs(&self, base: Base) -> PathBuf {
        self.base_dir(base).join("logs")
    }

    /// Results of guest runs: one folder per invocation.
    pub fn runs(&self) -> PathBuf {
        self.build.join("runs")
    }
}

/// `path` as a `file://` URL (the links of KCIDB reports and LAVA jobs).
pub fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

/// A new folder under `runs` for this invocation's results (a guest run's,
/// a benchmark's), named for the time, and `<runs>/latest` pointing at it.
pub fn dated_dir(runs: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(runs)?;
    // make test runs two bases' guests at once: two runs may start in the
    // same second, and each must get a folder of its own.
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
    let mut n = 1;
    let dir = loop {
        let dir = if n == 1 { runs.join(&stamp) } else { runs.join(format!("{stamp}-{n}")) };
        match std::fs::create_dir(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e).with_context(|| format!("cannot make {}", dir.display())),
        }
    };
    // A new link renamed over the old one: never a moment without `latest`,
    // nor an error when another run replaces it at the same time.
    let name = dir.file_name().context("run dir has a name")?;
    let tmp = runs.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)?;
    std::fs::rename(&tmp, runs.join("latest"))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_started_in_the_same_second_get_folders_of_their_own() {
        let repo = tempfile::tempdir().unwrap();
        let layout = Layout::new(repo.path());
        let dirs: Vec<PathBuf> = (0..3).map(|_| dated_dir(&layout.runs()).unwrap()).collect();
        assert_ne!(dirs[0], dirs[1]);
        assert_ne!(dirs[1], dirs[2]);
        let latest = std::fs::read_link(layout.runs().join("latest")).unwrap();
        assert_eq!(latest, dirs[2].file_name().unwrap());
    }
}
