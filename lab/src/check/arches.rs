//! The tip of the series on other architectures: an arm64 kernel with
//! the series' option on, and `arch/<arch>/mm/fault.o` of the other
//! architectures that share the per-VMA-locked fault's tail.

use anyhow::Result;
use std::fs;
use std::path::Path;
use std::time::Instant;

use super::{build_cell, cell, first_error, not_applicable, Cell};
use crate::arch::Arch;
use crate::base::Base;
use crate::build;
use crate::cmd;
use crate::config::{self, Kernel};
use crate::git::series_files;
use crate::layout::Layout;
use crate::results::Status;
use crate::setup::Toolchain;
use crate::variant::Variant;

/// An architecture whose `fault.o` is compiled with clang in its defconfig.
struct FaultObject {
    check: &'static str,
    arch: &'static str,
    defconfig: &'static str,
    /// More make arguments.
    extra: &'static [&'static str],
}

/// Compiles `arch/<arch>/mm/fault.o` in `tree`, the tip checkout.
fn compile_fault_o(
    layout: &Layout,
    tc: &Toolchain,
    base: Base,
    tree: &Path,
    logs: &Path,
    f: &FaultObject,
) -> Result<Cell> {
    let FaultObject { check, arch, defconfig, extra } = *f;
    let start = Instant::now();
    let out = layout.kbuild_named(base, &format!("{arch}-fault"));
    fs::create_dir_all(&out)?;
    let log = logs.join(format!("series-{check}.log"));
    let _ = fs::remove_file(&log);
    let kmake = || {
        let mut c = build::kmake(layout, tc, base, tree, &out, arch);
        c.args(extra);
        c
    };
    if !out.join(".config").is_file() {
        cmd::run_logged(kmake().arg(defconfig), &log, |_| {})?;
    }
    let dot = fs::read_to_string(out.join(".config"))?;
    if !dot.lines().any(|l| l == "CONFIG_PER_VMA_LOCK=y") {
        return Ok(cell(
            check,
            Status::Fail,
            format!("{defconfig} has no PER_VMA_LOCK: the tail is not compiled"),
            Some(log),
            start,
        ));
    }
    let obj = format!("arch/{arch}/mm/fault.o");
    let _ = fs::remove_file(out.join(&obj));
    let mut c = kmake();
    c.arg(&obj);
    let res = cmd::run_logged(&mut c, &log, |_| {});
    if let Err(e) = res {
        return Ok(cell(check, Status::Fail, first_error(&e, "compile failed"), Some(log), start));
    }
    // The architecture's own headers warn under clang (s390's asm-generic
    // I/O accessors): only warnings in files the series changes count.
    let ours = series_files(tree)?;
    let text = fs::read_to_string(&log)?;
    let warnings: Vec<&str> =
        text.lines().filter(|l| l.contains("warning:") && ours.iter().any(|f| l.contains(&format!("{f}:")))).collect();
    Ok(if warnings.is_empty() {
        cell(check, Status::Pass, format!("{obj} compiled (LLVM={})", tc.llvm(base)), Some(log), start)
    } else {
        cell(check, Status::Fail, format!("{} warnings, first: {}", warnings.len(), warnings[0]), Some(log), start)
    })
}

/// The tip of the series (`tree`, the tip checkout) on other architectures.
pub(super) fn check_arches(layout: &Layout, tc: &Toolchain, base: Base, tree: &Path, logs: &Path) -> Result<Vec<Cell>> {
    let mut cells = Vec::new();
    let start = Instant::now();
    let v = Variant::new(base, Arch::Arm64, "rust");
    if config::configs(layout, base)?.contains(&v.config) {
        let res = build::build_kernel(layout, tc, &Kernel::of(layout, &v)?);
        let mut c = build_cell("arm64", res, start);
        c.log = Some(build::build_log(layout, &v));
        cells.push(c);
    } else {
        cells.push(not_applicable("arm64", &format!("{base} has no rust configuration")));
    }
    let objects = [
        FaultObject { check: "powerpc-fault.o", arch: "powerpc", defconfig: "ppc64le_defconfig", extra: &[] },
        // ld.lld has no s390 emulation for the vDSO that `prepare` links.
        FaultObject { check: "s390-fault.o", arch: "s390", defconfig: "defconfig", extra: &["LD=s390x-linux-gnu-ld"] },
    ];
    let more = [
        FaultObject { check: "riscv-fault.o", arch: "riscv", defconfig: "defconfig", extra: &[] },
        FaultObject { check: "arm-fault.o", arch: "arm", defconfig: "multi_v7_defconfig", extra: &[] },
    ];
    // loongarch handles faults under the per-VMA lock in mainline (7.x),
    // not in 6.12.
    let newer = match base {
        Base::Mainline => {
            &[FaultObject { check: "loongarch-fault.o", arch: "loongarch", defconfig: "defconfig", extra: &[] }][..]
        }
        Base::Lts612 => &[][..],
    };
    for f in objects.iter().chain(&more).chain(newer) {
        cells.push(compile_fault_o(layout, tc, base, tree, logs, f)?);
    }
    Ok(cells)
}
