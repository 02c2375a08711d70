//! The kernel configurations in config/: what makes each variant's kernel,
//! and which variants each base has.
//!
//! The configurations of a base are the `<name>.config` files of
//! `config/<base>/` (bench-only ones in `config/<base>/bench/`): what the
//! series sets for that configuration on that base. A kernel of variant
//! `<arch>-<name>` of a base is tinyconfig's fragments from that base's
//! tree, then, each when present:
//!
//! 1. `config/base.config`: every kernel of every base;
//! 2. `config/arch/<arch>.config`: the architecture;
//! 3. `config/<base>/base.config`: every kernel of this base;
//! 4. `config/<name>.config`: what the configuration is on every base
//!    (`debug`: the runtime checkers);
//! 5. `config/<base>/<name>.config` (or `config/<base>/bench/<name>.config`):
//!    what the series sets for it on this base.
//!
//! `config/<base>/guests` lists the variants `lab test` boots for the base.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

use crate::base::Base;
use crate::layout::Layout;
use crate::variant::Variant;

/// The configurations a folder defines: its `<name>.config` files, sorted,
/// without `skip`.
fn configs_in(dir: &Path, skip: &[&str]) -> Result<Vec<String>> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut v = Vec::new();
    for e in fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let e = e?;
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(stem) = n.strip_suffix(".config") {
            if !skip.contains(&stem) && e.file_type()?.is_file() {
                v.push(stem.to_string());
            }
        }
    }
    v.sort();
    Ok(v)
}

/// The configurations of `base` (`config/<base>/<name>.config`).
pub fn configs(layout: &Layout, base: Base) -> Result<Vec<String>> {
    configs_in(&layout.base_config(base), &["base"])
}

/// The bench-only configurations of `base` (config/<base>/bench/): kernels
/// `lab bench` boots, which `lab test` and `lab check` do not build.
pub fn bench_configs(layout: &Layout, base: Base) -> Result<Vec<String>> {
    configs_in(&layout.base_config(base).join("bench"), &[])
}

/// The variants `lab test` boots for `base`, from config/<base>/guests (one
/// variant name a line, `#` comments), in that order.
pub fn guests(layout: &Layout, base: Base) -> Result<Vec<Variant>> {
    let file = layout.base_config(base).join("guests");
    let text = fs::read_to_string(&file).with_context(|| {
        format!("cannot read {}: it lists the variants `lab test` boots for {base}", file.display())
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or("").trim();
        if name.is_empty() {
            continue;
        }
        let v = Variant::parse(base, name);
        if !configs(layout, base)?.contains(&v.config) {
            bail!(
                "{}:{}: {name} is no configuration of {base}: there is no {}",
                file.display(),
                n + 1,
                layout.base_config(base).join(format!("{}.config", v.config)).display()
            );
        }
        out.push(v);
    }
    Ok(out)
}

/// What `make` builds for a variant: its fragments and its folder.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub variant: Variant,
    /// In merge order; later fragments override earlier ones.
    pub fragments: Vec<PathBuf>,
    /// The out-of-tree build folder.
    pub out: PathBuf,
    /// Ignore requested symbols that the tree's Kconfig does not define: a
    /// build of an early patch of the series, before the patch that adds
    /// them.
    pub lenient: bool,
}

impl Kernel {
    /// The kernel of `v`, built in `build/<base>/kernel/<name>`.
    pub fn of(layout: &Layout, v: &Variant) -> Result<Self> {
        let base_dir = layout.base_config(v.base);
        if v.config == "base" {
            bail!("`base` is no variant: config/{}/base.config is what every {} kernel shares", v.base, v.base);
        }
        let own = base_dir.join(format!("{}.config", v.config));
        let bench = base_dir.join("bench").join(format!("{}.config", v.config));
        let own = if own.is_file() {
            own
        } else if bench.is_file() {
            bench
        } else {
            let (known, bench_only) = (configs(layout, v.base)?, bench_configs(layout, v.base)?);
            bail!(
                "unknown variant {:?} of {}: there is neither {} nor {} (its configurations: {}; bench-only: {}); \
                 check the name, or write the fragment",
                v.config,
                v.base,
                own.display(),
                bench.display(),
                if known.is_empty() { "none".to_string() } else { known.join(", ") },
                if bench_only.is_empty() { "none".to_string() } else { bench_only.join(", ") }
            );
        };
        let arch_frag = layout.config().join("arch").join(format!("{}.config", v.arch));
        if !arch_frag.is_file() {
            bail!("no configuration for ARCH={}: write {}", v.arch, arch_frag.display());
        }
        let tree = layout.tree(v.base);
        let mut fragments = vec![tree.join("kernel/configs/tiny.config")];
        let arch_tiny = tree.join(format!("arch/{}/configs/tiny.config", v.arch.src_arch()));
        if arch_tiny.is_file() {
            fragments.push(arch_tiny);
        }
        fragments.extend([layout.config().join("base.config"), arch_frag]);
        for shared in [base_dir.join("base.config"), layout.config().join(format!("{}.config", v.config))] {
            if shared.is_file() {
                fragments.push(shared);
            }
        }
        fragments.push(own);
        Ok(Self { variant: v.clone(), fragments, out: layout.kbuild(v), lenient: false })
    }

    /// The image `make` builds for this architecture (`bzImage`, `Image`).
    pub fn image_target(&self) -> &'static str {
        self.variant.arch.image().rsplit('/').next().unwrap_or("vmlinux")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_with(files: &[&str]) -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        for f in files {
            let p = layout.config().join(f);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, "").unwrap();
        }
        (dir, layout)
    }

    #[test]
    fn fragments_layer_from_every_kernel_to_this_base_and_configuration() {
        let (_d, layout) = layout_with(&[
            "base.config",
            "debug.config",
            "arch/x86_64.config",
            "arch/arm64.config",
            "6.12/base.config",
            "6.12/debug.config",
            "6.12/rust.config",
            "6.12/bench/noretry.config",
            "mainline/c.config",
        ]);
        let rel = |k: &Kernel| -> Vec<String> {
            k.fragments
                .iter()
                .filter_map(|f| f.strip_prefix(&layout.repo).ok())
                .map(|p| p.display().to_string())
                .collect()
        };
        let d = Kernel::of(&layout, &Variant::parse(Base::Lts612, "debug")).unwrap();
        assert_eq!(
            rel(&d)[1..],
            [
                "config/base.config",
                "config/arch/x86_64.config",
                "config/6.12/base.config",
                "config/debug.config",
                "config/6.12/debug.config"
            ]
        );
        assert_eq!(d.out, layout.build.join("6.12/kernel/debug"));
        let a = Kernel::of(&layout, &Variant::parse(Base::Lts612, "arm64-rust")).unwrap();
        assert_eq!(a.image_target(), "Image");
        assert_eq!(a.out, layout.build.join("6.12/kernel/arm64-rust"));
        assert_eq!(rel(&a).last().unwrap(), "config/6.12/rust.config");
        let n = Kernel::of(&layout, &Variant::parse(Base::Lts612, "noretry")).unwrap();
        assert_eq!(rel(&n).last().unwrap(), "config/6.12/bench/noretry.config");
        let m = Kernel::of(&layout, &Variant::parse(Base::Mainline, "c")).unwrap();
        assert_eq!(rel(&m)[1..], ["config/base.config", "config/arch/x86_64.config", "config/mainline/c.config"]);
        let e = Kernel::of(&layout, &Variant::parse(Base::Mainline, "rust")).unwrap_err().to_string();
        assert!(e.contains("unknown variant \"rust\" of mainline") && e.contains("configurations: c;"), "{e}");
        assert_eq!(configs(&layout, Base::Lts612).unwrap(), ["debug", "rust"]);
        assert_eq!(bench_configs(&layout, Base::Lts612).unwrap(), ["noretry"]);
    }

    #[test]
    fn guests_name_configurations_of_their_base() {
        let (_d, layout) = layout_with(&["6.12/c.config", "6.12/rust.config"]);
        fs::write(layout.base_config(Base::Lts612).join("guests"), "# boots\nc\nrust  # the series\narm64-rust\n")
            .unwrap();
        let g = guests(&layout, Base::Lts612).unwrap();
        assert_eq!(g.iter().map(|v| v.to_string()).collect::<Vec<_>>(), ["6.12/c", "6.12/rust", "6.12/arm64-rust"]);
        fs::write(layout.base_config(Base::Lts612).join("guests"), "debug\n").unwrap();
        let e = guests(&layout, Base::Lts612).unwrap_err().to_string();
        assert!(e.contains(":1: debug is no configuration of 6.12"), "{e}");
    }
}
