//! Configuring and building kernels (out of tree, one folder per variant)
//! and the statically linked mm selftests.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::arch::{self, Arch};
use crate::cmd;
use crate::kconfig::{self, Fragment};
use crate::layout::Layout;
use crate::progress::Progress;
use crate::setup::Toolchain;

/// A kernel variant: a name, an architecture and the fragments that make
/// its configuration.
#[derive(Clone, Debug)]
pub struct Variant {
    pub name: String,
    /// Kernel `ARCH=`.
    pub arch: Arch,
    /// In merge order; later fragments override earlier ones.
    pub fragments: Vec<PathBuf>,
    /// The out-of-tree build folder.
    pub out: PathBuf,
    /// Ignore requested symbols that the tree's Kconfig does not define: a
    /// build of an early patch of the series, before the patch that adds
    /// them.
    pub lenient: bool,
}

impl Variant {
    /// The guest variant `name`: `<arch>-<config>` (see
    /// [`arch::split_variant`]) is [`Variant::for_arch`]; a bare name is the
    /// x86_64 variant: tinyconfig's fragments from the tree, then
    /// config/base.config, config/arch/x86_64.config and config/<name>.config
    /// (or, for a bench-only configuration, config/bench/<name>.config),
    /// built in build/kernel/<name>.
    pub fn load(layout: &Layout, name: &str) -> Result<Self> {
        let (arch, config) = arch::split_variant(name);
        if !arch.is_host() {
            return Self::for_arch(layout, config, arch);
        }
        let mut v = Self::for_arch(layout, name, Arch::X86_64)?;
        v.out = layout.kbuild(name);
        Ok(v)
    }

    /// The variant `name` for another architecture: tinyconfig's generic
    /// fragment, then config/base.config, config/arch/<arch>.config and
    /// config/<name>.config (or config/bench/<name>.config), built in
    /// build/kernel/<arch>-<name>.
    pub fn for_arch(layout: &Layout, name: &str, arch: Arch) -> Result<Self> {
        let own = own_fragment(layout, name)?;
        let arch_frag = layout.config().join("arch").join(format!("{arch}.config"));
        if !arch_frag.is_file() {
            bail!("no configuration for ARCH={arch}: write {}", arch_frag.display());
        }
        let tree = layout.tree();
        let mut fragments = vec![tree.join("kernel/configs/tiny.config")];
        let arch_tiny = tree.join(format!("arch/{}/configs/tiny.config", arch.src_arch()));
        if arch_tiny.is_file() {
            fragments.push(arch_tiny);
        }
        fragments.extend([layout.config().join("base.config"), arch_frag, own]);
        Ok(Self {
            name: name.to_string(),
            arch,
            fragments,
            out: layout.kbuild(&format!("{arch}-{name}")),
            lenient: false,
        })
    }

    /// The image `make` builds for this architecture (`bzImage`, `Image`).
    pub fn image_target(&self) -> &'static str {
        self.arch.image().rsplit('/').next().unwrap_or("vmlinux")
    }
}

/// The fragment that makes configuration `name` what it is:
/// config/<name>.config, else the bench-only config/bench/<name>.config.
fn own_fragment(layout: &Layout, name: &str) -> Result<PathBuf> {
    let own = layout.config().join(format!("{name}.config"));
    let bench = layout.bench_config().join(format!("{name}.config"));
    if own.is_file() {
        return Ok(own);
    }
    if bench.is_file() {
        return Ok(bench);
    }
    let (known, bench_only) = (variants(layout)?, bench_variants(layout)?);
    bail!(
        "unknown variant {name:?}: there is neither {} nor {} (variants: {}; bench-only, in {}/: {}); \
         check the name, or write the fragment",
        own.display(),
        bench.display(),
        known.join(", "),
        layout.bench_config().display(),
        if bench_only.is_empty() { "none".to_string() } else { bench_only.join(", ") }
    )
}

/// The names of the `<name>.config` files directly in `dir`, sorted,
/// without `skip`.
fn configs_in(dir: &Path, skip: &[&str]) -> Result<Vec<String>> {
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

/// The variants that config/ defines (every `<name>.config` but the shared
/// base; architecture fragments live in config/arch/, bench-only
/// configurations in config/bench/).
pub fn variants(layout: &Layout) -> Result<Vec<String>> {
    configs_in(&layout.config(), &["base"])
}

/// The bench-only configurations (config/bench/<name>.config): kernels
/// `lab bench` boots, which `lab test` and `lab check` do not build.
pub fn bench_variants(layout: &Layout) -> Result<Vec<String>> {
    let dir = layout.bench_config();
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    configs_in(&dir, &[])
}

/// The variants `lab test` boots: every x86_64 variant of config/, then the
/// guests of other architectures ([`arch::OTHER_ARCH_GUESTS`]).
pub fn guest_variants(layout: &Layout) -> Result<Vec<String>> {
    let mut v = variants(layout)?;
    v.extend(arch::OTHER_ARCH_GUESTS.iter().map(|g| g.to_string()));
    Ok(v)
}

/// Parallel jobs for make: one more than the CPUs.
pub fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 1
}

/// `make` on the kernel tree for x86_64 with the lab's toolchain pinned.
pub fn kmake(layout: &Layout, tc: &Toolchain, out: &Path) -> Command {
    kmake_for(layout, tc, out, "x86_64", "1")
}

/// `make` on the kernel tree for `arch`, with `LLVM=<llvm>` (`1`, or a
/// version suffix such as `-16`) and the lab's toolchain pinned.
///
/// C goes through ccache (in build/ccache), so that objects rebuilt with
/// the same input, as when `make check` walks the series again, come from
/// the cache. Rust goes through clippy (`CLIPPY=1`), so that every build
/// also lints: clippy-driver produces the objects rustc would.
pub fn kmake_for(layout: &Layout, tc: &Toolchain, out: &Path, arch: &str, llvm: &str) -> Command {
    let mut c = Command::new("make");
    c.arg("-C").arg(layout.tree()).arg(format!("O={}", out.display()));
    c.arg(format!("ARCH={arch}")).arg(format!("LLVM={llvm}"));
    let suffix = if llvm.starts_with('-') { llvm } else { "" };
    c.arg(format!("CC={} clang{suffix}", tc.ccache.display()));
    c.env("CCACHE_DIR", layout.build.join("ccache"));
    c.env("CCACHE_MAXSIZE", "4G");
    c.env("LIBCLANG_PATH", &tc.libclang_dir);
    c.arg(format!("RUSTC={}", tc.rustc.display()));
    c.arg(format!("RUSTDOC={}", tc.rustdoc.display()));
    c.arg(format!("HOSTRUSTC={}", tc.rustc.display()));
    c.arg(format!("BINDGEN={}", tc.bindgen.display()));
    c.arg(format!("CLIPPY_DRIVER={}", tc.clippy_driver.display()));
    c.arg("CLIPPY=1");
    c.arg(format!("-j{}", jobs()));
    // Keep the user's environment from steering kbuild.
    for k in ["ARCH", "CROSS_COMPILE", "KCONFIG_CONFIG", "KBUILD_OUTPUT", "RUSTFLAGS", "CC", "LLVM", "CCACHE_PREFIX"] {
        c.env_remove(k);
    }
    c
}

fn stamp(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Whether the tree's Kconfig files define `symbol` (without `CONFIG_`).
fn kconfig_defines(tree: &Path, symbol: &str) -> Result<bool> {
    let status = crate::tree::git(tree)
        .args(["grep", "-q", "-E", &format!("^\\s*(menu)?config {symbol}\\s*$"), "--", "*Kconfig*"])
        .stdout(std::process::Stdio::null())
        .status()?;
    Ok(status.success())
}

/// Configures a variant when its fragments or the tree changed, then checks
/// that every requested value took.
pub fn configure(layout: &Layout, tc: &Toolchain, v: &Variant) -> Result<()> {
    let out = &v.out;
    fs::create_dir_all(out)?;
    let frag = Fragment::from_files(&v.fragments)?;
    let merged = frag.render();
    let head = cmd::output(crate::tree::git(&layout.tree()).args(["rev-parse", "HEAD"]))?;
    let key = format!("{}{merged}", head.trim());
    let stamp_file = out.join(".lab-config-input");
    let dot_config = out.join(".config");
    if dot_config.is_file() && stamp(&stamp_file) == key {
        return Ok(());
    }
    let frag_file = out.join("lab.fragment");
    fs::write(&frag_file, &merged)?;
    let log = layout.logs().join(format!("config-{}.log", out.file_name().unwrap_or_default().to_string_lossy()));
    let _ = fs::remove_file(&log);
    eprintln!("lab: configuring {} for {} (log: {})", v.name, v.arch, log.display());
    let mut c = kmake_for(layout, tc, out, v.arch.kernel_arch(), "1");
    c.arg(format!("KCONFIG_ALLCONFIG={}", frag_file.display())).arg("allnoconfig");
    cmd::run_logged(&mut c, &log, |_| {})?;
    let got = fs::read_to_string(&dot_config)?;
    // tinyconfig's own fragments are best effort (arch/x86/configs/tiny.config
    // also serves 32-bit); the lab's fragments must take exactly.
    let ours = layout.config().display().to_string();
    let mut bad = Vec::new();
    for m in frag.mismatches(&got).into_iter().filter(|m| m.origin.starts_with(&ours)) {
        if v.lenient && !kconfig_defines(&layout.tree(), &m.symbol)? {
            continue;
        }
        bad.push(m);
    }
    if !bad.is_empty() {
        bail!("variant {}: {}", v.name, kconfig::explain(&bad, out));
    }
    fs::write(&stamp_file, key)?;
    Ok(())
}

/// What a kernel build did.
#[derive(Debug, Default)]
pub struct Built {
    /// kbuild steps run (0: nothing to rebuild).
    pub steps: u64,
    /// Compiler and linker warnings of the objects this build made, with
    /// the line that names the object before each.
    pub warnings: Vec<String>,
}

/// Builds a variant's image (and, for x86_64, the kernel's gen_init_cpio),
/// with a progress bar. Nothing changed means nothing rebuilt: kbuild
/// decides.
pub fn build_kernel(layout: &Layout, tc: &Toolchain, v: &Variant) -> Result<Built> {
    configure(layout, tc, v)?;
    let out = &v.out;
    let label = out.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let log = layout.logs().join(format!("build-{label}.log"));
    let _ = fs::remove_file(&log);
    // The previous full build's step count estimates this one.
    let count_file = out.join(".lab-build-steps");
    let estimate: u64 = stamp(&count_file)
        .trim()
        .parse()
        .ok()
        .or_else(|| {
            // Another variant's full build is a good guess for this one.
            variants(layout)
                .ok()?
                .iter()
                .find_map(|o| stamp(&layout.kbuild(o).join(".lab-build-steps")).trim().parse().ok())
        })
        .unwrap_or(1500);
    let mut pb =
        Progress::bar(&format!("build {label}"), estimate, "{prefix:12} {bar:30} {pos}/{len} steps [{elapsed}] {msg}");
    let mut built = Built::default();
    let mut last_step = String::new();
    let mut c = kmake_for(layout, tc, out, v.arch.kernel_arch(), "1");
    c.env("KBUILD_BUILD_TIMESTAMP", "");
    // usr/gen_init_cpio comes with it (the built-in initramfs uses it).
    c.arg(v.image_target());
    let res = cmd::run_logged(&mut c, &log, |line| {
        // kbuild's quiet output: "  CC      mm/memory.o".
        let t = line.trim_start();
        if line.starts_with("  ")
            && t.split_whitespace()
                .next()
                .is_some_and(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
        {
            built.steps += 1;
            pb.set(built.steps, t.split_whitespace().nth(1).unwrap_or(""));
            last_step = t.to_string();
        } else if line.contains("warning:") {
            built.warnings.push(format!("{last_step}: {}", line.trim()));
        }
    });
    pb.finish();
    res.with_context(|| format!("kernel build of {label} failed"))?;
    if built.steps > 500 {
        fs::write(&count_file, built.steps.to_string())?;
    }
    eprintln!(
        "lab: {label}: {} ({} build steps, {} warnings)",
        out.join(v.arch.image()).display(),
        built.steps,
        built.warnings.len()
    );
    Ok(built)
}

/// The guest variant's kernel image (bzImage on x86_64, Image on arm64).
pub fn image(layout: &Layout, variant: &str) -> PathBuf {
    layout.kbuild(variant).join(arch::of_variant(variant).image())
}

/// Builds the listed test programs for `arch`, statically linked against
/// the tree's UAPI headers, into build/selftests (build/<arch>/selftests for
/// another architecture than the host's, with Debian's cross compiler): the
/// lab's own from guest/programs/<name>.c, the others from
/// tools/testing/selftests/mm.
pub fn build_selftests(layout: &Layout, tc: &Toolchain, names: &[String], arch: Arch) -> Result<()> {
    let log = layout.logs().join(if arch.is_host() { "selftests.log".into() } else { format!("selftests-{arch}.log") });
    let _ = fs::remove_file(&log);
    let headers = layout.headers(arch);
    fs::create_dir_all(&headers)?;
    let mut h = kmake_for(layout, tc, &headers, arch.kernel_arch(), "1");
    h.arg("headers");
    cmd::run_logged(&mut h, &log, |_| {}).context("exporting the UAPI headers for the selftests failed")?;
    let out = layout.selftests(arch);
    fs::create_dir_all(&out)?;
    let (own, names): (Vec<String>, Vec<String>) =
        names.iter().cloned().partition(|n| layout.guest_programs().join(format!("{n}.c")).is_file());
    for n in &own {
        build_guest_program(layout, n, &log, arch)?;
    }
    if names.is_empty() {
        return Ok(());
    }
    let mut c = Command::new("make");
    c.arg("-C").arg(layout.tree().join("tools/testing/selftests/mm"));
    c.arg(format!("OUTPUT={}", out.display()));
    c.arg(format!("KHDR_INCLUDES=-isystem {}", headers.join("usr/include").display()));
    c.arg("LDFLAGS=-static");
    c.arg(format!("-j{}", jobs()));
    for k in ["ARCH", "CROSS_COMPILE", "CC", "LLVM", "CFLAGS"] {
        c.env_remove(k);
    }
    if let Some(prefix) = arch.cross_compile() {
        c.arg(format!("ARCH={arch}")).arg(format!("CROSS_COMPILE={prefix}"));
    }
    for n in &names {
        c.arg(out.join(n));
    }
    eprintln!("lab: building selftests for {arch}: {} (log: {})", names.join(" "), log.display());
    cmd::run_logged(&mut c, &log, |_| {}).context("building the mm selftests failed")?;
    for n in &names {
        let p = out.join(n);
        if !p.is_file() {
            bail!(
                "the plan needs {n}, but building tools/testing/selftests/mm did not produce {}, \
                 and there is no guest/programs/{n}.c: check the name in guest/plan and the log {}",
                p.display(),
                log.display()
            );
        }
    }
    Ok(())
}

/// Compiles guest/programs/<name>.c for `arch` as the selftests are built:
/// static, glibc, against the tree's UAPI headers, and with every warning an
/// error.
fn build_guest_program(layout: &Layout, name: &str, log: &Path, arch: Arch) -> Result<()> {
    let src = layout.guest_programs().join(format!("{name}.c"));
    let out = layout.selftests(arch).join(name);
    let mut c = Command::new(arch.gcc().0);
    c.args(["-static", "-O2", "-g", "-pthread", "-Wall", "-Wextra", "-Werror"]);
    c.arg("-isystem").arg(layout.headers(arch).join("usr/include"));
    // kselftest.h, as the mm selftests use it.
    c.arg("-I").arg(layout.tree().join("tools/testing/selftests"));
    c.arg("-o").arg(&out).arg(&src);
    eprintln!("lab: building guest program {name} for {arch} (log: {})", log.display());
    // run_logged's error already quotes the first errors and names the log.
    cmd::run_logged(&mut c, log, |_| {}).with_context(|| format!("compiling {} failed", src.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout_with(configs: &[&str]) -> (tempfile::TempDir, Layout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        fs::create_dir_all(layout.config().join("arch")).unwrap();
        for c in configs {
            fs::write(layout.config().join(c), "").unwrap();
        }
        (dir, layout)
    }

    #[test]
    fn a_variant_named_for_another_arch_is_its_configuration_built_there() {
        let (_d, layout) =
            layout_with(&["base.config", "rust.config", "c.config", "arch/x86_64.config", "arch/arm64.config"]);
        let v = Variant::load(&layout, "arm64-rust").unwrap();
        assert_eq!((v.name.as_str(), v.arch), ("rust", Arch::Arm64));
        assert_eq!(v.image_target(), "Image");
        assert_eq!(v.out, layout.kbuild("arm64-rust"));
        let tail: Vec<_> = v.fragments.iter().rev().take(2).map(|f| f.strip_prefix(&layout.repo).unwrap()).collect();
        assert_eq!(tail, [Path::new("config/rust.config"), Path::new("config/arch/arm64.config")]);
        assert_eq!(image(&layout, "arm64-rust"), layout.kbuild("arm64-rust").join("arch/arm64/boot/Image"));
        let x = Variant::load(&layout, "rust").unwrap();
        assert_eq!((x.arch, x.out.clone()), (Arch::X86_64, layout.kbuild("rust")));
        assert_eq!(x.image_target(), "bzImage");
        assert_eq!(image(&layout, "rust"), layout.kbuild("rust").join("arch/x86/boot/bzImage"));
        assert_eq!(guest_variants(&layout).unwrap(), ["c", "rust", "arm64-rust"]);
        let e = Variant::load(&layout, "arm64-debug").unwrap_err().to_string();
        assert!(e.contains("unknown variant \"debug\"") && e.contains("c, rust"), "{e}");
        assert!(e.contains("config/bench/debug.config") && e.contains("bench-only, in "), "{e}");
    }

    #[test]
    fn a_bench_only_configuration_loads_but_is_no_variant_of_lab_test() {
        let (_d, layout) = layout_with(&["base.config", "rust.config", "c.config", "arch/x86_64.config"]);
        assert!(bench_variants(&layout).unwrap().is_empty());
        fs::create_dir_all(layout.bench_config()).unwrap();
        fs::write(layout.bench_config().join("noretry.config"), "").unwrap();
        fs::write(layout.bench_config().join("README"), "").unwrap();
        let v = Variant::load(&layout, "noretry").unwrap();
        assert_eq!((v.name.as_str(), v.arch, v.out.clone()), ("noretry", Arch::X86_64, layout.kbuild("noretry")));
        let last = v.fragments.last().unwrap().strip_prefix(&layout.repo).unwrap();
        assert_eq!(last, Path::new("config/bench/noretry.config"));
        assert_eq!(image(&layout, "noretry"), layout.kbuild("noretry").join("arch/x86/boot/bzImage"));
        assert_eq!(variants(&layout).unwrap(), ["c", "rust"]);
        assert_eq!(guest_variants(&layout).unwrap(), ["c", "rust", "arm64-rust"]);
        assert_eq!(bench_variants(&layout).unwrap(), ["noretry"]);
        // config/ comes first: a bench fragment cannot shadow a variant.
        fs::write(layout.bench_config().join("rust.config"), "").unwrap();
        let r = Variant::load(&layout, "rust").unwrap();
        assert_eq!(r.fragments.last().unwrap().strip_prefix(&layout.repo).unwrap(), Path::new("config/rust.config"));
        let e = Variant::load(&layout, "nope").unwrap_err().to_string();
        assert!(e.contains("variants: c, rust;") && e.contains("noretry, rust"), "{e}");
    }
}
