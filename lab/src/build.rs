//! Configuring and building kernels (out of tree, one folder per variant)
//! and the statically linked mm selftests.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd;
use crate::kconfig::{self, Fragment};
use crate::layout::Layout;
use crate::progress::Progress;
use crate::setup::Toolchain;

/// A kernel variant: a name and the fragments that make its configuration.
#[derive(Clone, Debug)]
pub struct Variant {
    pub name: String,
    /// In merge order; later fragments override earlier ones.
    pub fragments: Vec<PathBuf>,
}

impl Variant {
    /// The variant `name`: tinyconfig's fragments from the tree, then
    /// config/base.config, config/x86_64.config and config/<name>.config.
    pub fn load(layout: &Layout, name: &str) -> Result<Self> {
        let own = layout.config().join(format!("{name}.config"));
        if !own.is_file() {
            let known: Vec<String> = variants(layout)?;
            bail!("unknown variant {name:?}: there is no {} (known: {})", own.display(), known.join(", "));
        }
        let tree = layout.tree();
        Ok(Self {
            name: name.to_string(),
            fragments: vec![
                tree.join("kernel/configs/tiny.config"),
                tree.join("arch/x86/configs/tiny.config"),
                layout.config().join("base.config"),
                layout.config().join("x86_64.config"),
                own,
            ],
        })
    }
}

/// The variants that config/ defines (every `<name>.config` but the shared
/// base and arch fragments).
pub fn variants(layout: &Layout) -> Result<Vec<String>> {
    let mut v = Vec::new();
    for e in fs::read_dir(layout.config())? {
        let n = e?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = n.strip_suffix(".config") {
            if stem != "base" && stem != "x86_64" {
                v.push(stem.to_string());
            }
        }
    }
    v.sort();
    Ok(v)
}

/// Parallel jobs for make: one more than the CPUs.
pub fn jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) + 1
}

/// `make` on the kernel tree with the lab's toolchain pinned.
pub fn kmake(layout: &Layout, tc: &Toolchain, out: &Path) -> Command {
    let mut c = Command::new("make");
    c.arg("-C").arg(layout.tree()).arg(format!("O={}", out.display()));
    c.args(["ARCH=x86_64", "LLVM=1"]);
    c.arg(format!("RUSTC={}", tc.rustc.display()));
    c.arg(format!("RUSTDOC={}", tc.rustdoc.display()));
    c.arg(format!("HOSTRUSTC={}", tc.rustc.display()));
    c.arg(format!("BINDGEN={}", tc.bindgen.display()));
    c.arg(format!("CLIPPY_DRIVER={}", tc.clippy_driver.display()));
    c.arg(format!("-j{}", jobs()));
    // Keep the user's environment from steering kbuild.
    for k in ["ARCH", "CROSS_COMPILE", "KCONFIG_CONFIG", "KBUILD_OUTPUT", "RUSTFLAGS", "CC", "LLVM"] {
        c.env_remove(k);
    }
    c
}

fn stamp(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

/// Configures a variant when its fragments or the tree changed, then checks
/// that every requested value took.
pub fn configure(layout: &Layout, tc: &Toolchain, v: &Variant) -> Result<()> {
    let out = layout.kbuild(&v.name);
    fs::create_dir_all(&out)?;
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
    let log = layout.logs().join(format!("config-{}.log", v.name));
    let _ = fs::remove_file(&log);
    eprintln!("lab: configuring {} (log: {})", v.name, log.display());
    let mut c = kmake(layout, tc, &out);
    c.arg(format!("KCONFIG_ALLCONFIG={}", frag_file.display())).arg("allnoconfig");
    cmd::run_logged(&mut c, &log, |_| {})?;
    let got = fs::read_to_string(&dot_config)?;
    // tinyconfig's own fragments are best effort (arch/x86/configs/tiny.config
    // also serves 32-bit); the lab's fragments must take exactly.
    let ours = layout.config().display().to_string();
    let bad: Vec<_> = frag.mismatches(&got).into_iter().filter(|m| m.origin.starts_with(&ours)).collect();
    if !bad.is_empty() {
        bail!("variant {}: {}", v.name, kconfig::explain(&bad, &out));
    }
    fs::write(&stamp_file, key)?;
    Ok(())
}

/// Builds a variant's bzImage (and the kernel's gen_init_cpio), with a
/// progress bar. Nothing changed means nothing rebuilt: kbuild decides.
pub fn build_kernel(layout: &Layout, tc: &Toolchain, v: &Variant) -> Result<()> {
    configure(layout, tc, v)?;
    let out = layout.kbuild(&v.name);
    let log = layout.logs().join(format!("build-{}.log", v.name));
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
    let mut pb = Progress::bar(
        &format!("build {}", v.name),
        estimate,
        "{prefix:12} {bar:30} {pos}/{len} steps [{elapsed}] {msg}",
    );
    let mut steps = 0u64;
    let mut c = kmake(layout, tc, &out);
    // usr/gen_init_cpio comes with it (the built-in initramfs uses it).
    c.arg("bzImage");
    let res = cmd::run_logged(&mut c, &log, |line| {
        // kbuild's quiet output: "  CC      mm/memory.o".
        let t = line.trim_start();
        if line.starts_with("  ")
            && t.split_whitespace()
                .next()
                .is_some_and(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
        {
            steps += 1;
            pb.set(steps, t.split_whitespace().nth(1).unwrap_or(""));
        }
    });
    pb.finish();
    res.with_context(|| format!("kernel build of variant {} failed", v.name))?;
    if steps > 500 {
        fs::write(&count_file, steps.to_string())?;
    }
    eprintln!("lab: {}: {} ({} build steps)", v.name, bzimage(layout, &v.name).display(), steps);
    Ok(())
}

/// The variant's kernel image.
pub fn bzimage(layout: &Layout, variant: &str) -> PathBuf {
    layout.kbuild(variant).join("arch/x86/boot/bzImage")
}

/// Builds the listed selftests from tools/testing/selftests/mm, statically
/// linked, against the tree's UAPI headers.
pub fn build_selftests(layout: &Layout, tc: &Toolchain, names: &[String]) -> Result<()> {
    let log = layout.logs().join("selftests.log");
    let _ = fs::remove_file(&log);
    let headers = layout.headers();
    fs::create_dir_all(&headers)?;
    let mut h = kmake(layout, tc, &headers);
    h.arg("headers");
    cmd::run_logged(&mut h, &log, |_| {}).context("exporting the UAPI headers for the selftests failed")?;
    if names.is_empty() {
        return Ok(());
    }
    let out = layout.selftests();
    fs::create_dir_all(&out)?;
    let mut c = Command::new("make");
    c.arg("-C").arg(layout.tree().join("tools/testing/selftests/mm"));
    c.arg(format!("OUTPUT={}", out.display()));
    c.arg(format!("KHDR_INCLUDES=-isystem {}", headers.join("usr/include").display()));
    c.arg("LDFLAGS=-static");
    c.arg(format!("-j{}", jobs()));
    for k in ["ARCH", "CROSS_COMPILE", "CC", "LLVM", "CFLAGS"] {
        c.env_remove(k);
    }
    for n in names {
        c.arg(out.join(n));
    }
    eprintln!("lab: building selftests {} (log: {})", names.join(" "), log.display());
    cmd::run_logged(&mut c, &log, |_| {}).context("building the mm selftests failed")?;
    for n in names {
        let p = out.join(n);
        if !p.is_file() {
            bail!(
                "the plan needs {n}, but building tools/testing/selftests/mm did not produce {}: \
                 check the name in guest/plan and the log {}",
                p.display(),
                log.display()
            );
        }
    }
    Ok(())
}
