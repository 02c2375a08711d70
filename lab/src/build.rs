//! Configuring and building kernels (out of tree, one folder per variant)
//! and the statically linked mm selftests.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::arch::Arch;
use crate::base::Base;
use crate::cmd;
use crate::config::{self, Kernel};
use crate::git::git;
use crate::kconfig::{self, Fragment};
use crate::layout::Layout;
use crate::lock::FolderLock;
use crate::progress::Progress;
use crate::setup::Toolchain;
use crate::tip::{SourceTree, Tip};
use crate::variant::Variant;

/// Parallel jobs for make: one more than the CPUs.
pub fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 1
}

/// `make` in the build root on the kernel source tree `src` of `base`
/// (the work tree or the tip checkout) for `arch` (kbuild's `ARCH=`), with the base's LLVM (`LLVM=-22` for mainline, `-19` for
/// 6.12), a bindgen whose libclang is the same release, and every tool
/// pinned by its full path.
///
/// C goes through ccache (in build/ccache), so that objects rebuilt with
/// the same input, as when `make check` walks the series again, come from
/// the cache. Rust goes through clippy (`CLIPPY=1`), so that every build
/// also lints: clippy-driver produces the objects rustc would.
pub fn kmake(layout: &Layout, tc: &Toolchain, base: Base, src: &Path, out: &Path, arch: &str) -> Command {
    let mut c = tc.command("make");
    c.arg("-C").arg(src).arg(format!("O={}", out.display()));
    let llvm = tc.llvm(base);
    c.arg(format!("ARCH={arch}")).arg(format!("LLVM={llvm}"));
    c.arg(format!("CC={} clang{llvm}", tc.ccache.display()));
    c.env("CCACHE_DIR", layout.ccache());
    c.env("CCACHE_MAXSIZE", "6G");
    let bindgen = tc.bindgen(base);
    c.env("LIBCLANG_PATH", &bindgen.libclang_dir);
    c.arg(format!("RUSTC={}", tc.rustc.display()));
    c.arg(format!("RUSTDOC={}", tc.rustdoc.display()));
    c.arg(format!("HOSTRUSTC={}", tc.rustc.display()));
    c.arg(format!("BINDGEN={}", bindgen.path.display()));
    c.arg(format!("CLIPPY_DRIVER={}", tc.clippy_driver.display()));
    c.arg(format!("RUSTFMT={}", tc.rustfmt.display()));
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
    let status = git(tree)
        .args(["grep", "-q", "-E", &format!("^\\s*(menu)?config {symbol}\\s*$"), "--", "*Kconfig*"])
        .stdout(std::process::Stdio::null())
        .status()?;
    Ok(status.success())
}

/// Configures a variant in the source tree `tree` when its fragments or the
/// tree changed, then checks that every requested value took.
fn configure(layout: &Layout, tc: &Toolchain, tree: &Path, k: &Kernel) -> Result<()> {
    let (out, v) = (&k.out, &k.variant);
    fs::create_dir_all(out)?;
    let frag = Fragment::from_files(&k.fragments)?;
    let merged = frag.render();
    let key = format!("{}{merged}", crate::git::head(tree)?);
    let stamp_file = out.join(".lab-config-input");
    let dot_config = out.join(".config");
    if dot_config.is_file() && stamp(&stamp_file) == key {
        return Ok(());
    }
    let frag_file = out.join("lab.fragment");
    fs::write(&frag_file, &merged)?;
    let log = layout.base_logs(v.base).join(format!("config-{}.log", v.name()));
    let _ = fs::remove_file(&log);
    eprintln!("lab: configuring {v} (log: {})", log.display());
    let mut c = kmake(layout, tc, v.base, tree, out, v.arch.kernel_arch());
    c.arg(format!("KCONFIG_ALLCONFIG={}", frag_file.display())).arg("allnoconfig");
    cmd::run_logged(&mut c, &log, |_| {})?;
    let got = fs::read_to_string(&dot_config)?;
    // tinyconfig's own fragments are best effort (arch/x86/configs/tiny.config
    // also serves 32-bit); the lab's fragments must take exactly.
    let ours = layout.config().display().to_string();
    let mut bad = Vec::new();
    for m in frag.mismatches(&got).into_iter().filter(|m| m.origin.starts_with(&ours)) {
        if k.lenient && !kconfig_defines(tree, &m.symbol)? {
            continue;
        }
        bad.push(m);
    }
    if !bad.is_empty() {
        bail!("variant {v}: {}", kconfig::explain(&bad, out));
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
/// decides. The kernels `lab check` walks build in the work tree, the
/// others in the tip checkout ([`crate::tip`]).
pub fn build_kernel(layout: &Layout, tc: &Toolchain, k: &Kernel) -> Result<Built> {
    let started = std::time::Instant::now();
    let what = format!("building the {} kernel", k.variant);
    // The tip checkout before the build folder: every holder of both takes
    // them in this order.
    let src = SourceTree::of(layout, &k.variant, &what)?;
    let tree = src.path();
    let _lock = FolderLock::acquire(&k.out, &what)?;
    configure(layout, tc, tree, k)?;
    let (out, v) = (&k.out, &k.variant);
    let label = v.to_string();
    let log = build_log(layout, v);
    let _ = fs::remove_file(&log);
    // The previous full build's step count estimates this one.
    let count_file = out.join(".lab-build-steps");
    let estimate: u64 = stamp(&count_file)
        .trim()
        .parse()
        .ok()
        .or_else(|| {
            // Another variant's full build is a good guess for this one.
            config::configs(layout, v.base)
                .ok()?
                .iter()
                .find_map(|o| stamp(&layout.kbuild_named(v.base, o).join(".lab-build-steps")).trim().parse().ok())
        })
        .unwrap_or(1500);
    let mut pb =
        Progress::bar(&format!("build {label}"), estimate, "{prefix:22} {bar:30} {pos}/{len} steps [{elapsed}] {msg}");
    let mut built = Built::default();
    let mut last_step = String::new();
    let mut c = kmake(layout, tc, v.base, tree, out, v.arch.kernel_arch());
    c.env("KBUILD_BUILD_TIMESTAMP", "");
    // usr/gen_init_cpio comes with it (the built-in initramfs uses it).
    c.arg(k.image_target());
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
        "lab: {label}: {} ({} build steps, {} warnings, {:.0}s)",
        out.join(v.arch.image()).display(),
        built.steps,
        built.warnings.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(built)
}

/// The log of a variant's kernel build.
pub fn build_log(layout: &Layout, v: &Variant) -> PathBuf {
    layout.base_logs(v.base).join(format!("build-{}.log", v.name()))
}

/// The variant's kernel image (bzImage on x86_64, Image on arm64).
pub fn image(layout: &Layout, v: &Variant) -> PathBuf {
    layout.kbuild(v).join(v.arch.image())
}

/// Builds the listed test programs for `arch`, statically linked against
/// the UAPI headers of the tip checkout ([`crate::tip`]: the walk in the
/// work tree may be at any patch), into `build/<base>/selftests/<arch>/` (for
/// another architecture than the host's, with Debian's cross compiler): the
/// lab's own from `guest/programs/<name>.c`, the others from
/// tools/testing/selftests/mm.
pub fn build_selftests(layout: &Layout, tc: &Toolchain, base: Base, names: &[String], arch: Arch) -> Result<()> {
    let out = layout.selftests(base, arch);
    let what = format!("building the {base} test programs for {arch}");
    let tip = Tip::checkout(layout, base, &what)?;
    let tree = tip.path();
    let _lock = FolderLock::acquire(&out, &what)?;
    let log = layout.base_logs(base).join(format!("selftests-{arch}.log"));
    let _ = fs::remove_file(&log);
    let headers = layout.headers(base, arch);
    fs::create_dir_all(&headers)?;
    let mut h = kmake(layout, tc, base, tree, &headers, arch.kernel_arch());
    h.arg("headers");
    cmd::run_logged(&mut h, &log, |_| {}).context("exporting the UAPI headers for the selftests failed")?;
    fs::create_dir_all(&out)?;
    let mm = tree.join("tools/testing/selftests/mm");
    // Optional programs (`name?`) only where this tree has their source.
    let names: Vec<String> = names
        .iter()
        .filter_map(|n| match crate::plan::optional(n) {
            Some(n) => mm.join(format!("{n}.c")).is_file().then(|| n.to_string()),
            None => Some(n.clone()),
        })
        .collect();
    let (own, names): (Vec<String>, Vec<String>) =
        names.into_iter().partition(|n| layout.guest_programs().join(format!("{n}.c")).is_file());
    if !own.is_empty() {
        let guest = GuestPrograms { layout, tc, tree, base, arch, log: &log };
        let vm_util = guest.vm_util()?;
        for n in &own {
            guest.build(n, &vm_util)?;
        }
    }
    // Scripts of the selftests folder (run_vmtests.sh) ship as they are.
    let (scripts, names): (Vec<String>, Vec<String>) = names.into_iter().partition(|n| n.ends_with(".sh"));
    for s in &scripts {
        let src = mm.join(s);
        if !src.is_file() {
            bail!("the plan needs {s}, but {} does not exist", src.display());
        }
        fs::copy(&src, out.join(s)).with_context(|| format!("cannot copy {}", src.display()))?;
    }
    if names.is_empty() {
        return Ok(());
    }
    let mut c = tc.command("make");
    c.arg("-C").arg(&mm);
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
    eprintln!("lab: building {base} selftests for {arch}: {} (log: {})", names.join(" "), log.display());
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

/// What compiling the lab's guest programs (guest/programs/) for one base
/// and architecture needs: they are built as the mm selftests are (static,
/// glibc, the tree's UAPI headers, kselftest_harness.h and vm_util.h).
struct GuestPrograms<'a> {
    layout: &'a Layout,
    tc: &'a Toolchain,
    /// The tip checkout's tree.
    tree: &'a Path,
    base: Base,
    arch: Arch,
    log: &'a Path,
}

impl GuestPrograms<'_> {
    /// Compiles the tree's tools/testing/selftests/mm/vm_util.c as the mm
    /// selftests' Makefile does (`-Wall`, not the guest programs'
    /// `-Werror`: it is the tree's code) into the base's selftests folder;
    /// returns the object the programs link.
    fn vm_util(&self) -> Result<PathBuf> {
        let src = self.tree.join("tools/testing/selftests/mm/vm_util.c");
        let out = self.layout.selftests(self.base, self.arch).join("vm_util.o");
        let mut c = self.tc.command(self.arch.gcc().0);
        c.args(["-O2", "-g", "-Wall", "-c"]);
        c.arg("-isystem").arg(self.layout.headers(self.base, self.arch).join("usr/include"));
        c.arg("-I").arg(self.tree.join("tools/testing/selftests"));
        c.arg("-o").arg(&out).arg(&src);
        cmd::run_logged(&mut c, self.log, |_| {}).with_context(|| format!("compiling {} failed", src.display()))?;
        Ok(out)
    }

    /// Compiles guest/programs/<name>.c, linked with `vm_util`
    /// ([`Self::vm_util`]), with every warning an error but two that
    /// 6.12's kselftest_harness.h itself trips under -Wextra: unused
    /// parameters (its macros declare `_metadata`, `self` and `variant` for
    /// every test) and -Wclobbered (its TEST_F() wrapper keeps the forked
    /// pid in a local across setjmp()).
    fn build(&self, name: &str, vm_util: &Path) -> Result<()> {
        let src = self.layout.guest_programs().join(format!("{name}.c"));
        let out = self.layout.selftests(self.base, self.arch).join(name);
        let selftests = self.tree.join("tools/testing/selftests");
        let mut c = self.tc.command(self.arch.gcc().0);
        c.args(["-static", "-O2", "-g", "-pthread"]);
        c.args(["-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-clobbered", "-Werror"]);
        c.arg("-isystem").arg(self.layout.headers(self.base, self.arch).join("usr/include"));
        c.arg("-I").arg(&selftests).arg("-I").arg(selftests.join("mm"));
        c.arg("-o").arg(&out).arg(&src).arg(vm_util);
        eprintln!(
            "lab: building guest program {name} for {} on {} (log: {})",
            self.base,
            self.arch,
            self.log.display()
        );
        // run_logged's error already quotes the first errors and names the log.
        cmd::run_logged(&mut c, self.log, |_| {}).with_context(|| format!("compiling {} failed", src.display()))
    }
}
