//! The main job: series -> kernels -> guests -> results -> report.

use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::arch::{self, Arch};
use crate::build::{self, Variant};
use crate::callpath;
use crate::layout::Layout;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::qemu::{self, Event, Machine, Watchdog};
use crate::report;
use crate::results::{self, HostOutcome, KunitPy, Status, TestResult};
use crate::setup::{self, Toolchain};
use crate::tree;

/// The kernel command line of an `arch` guest with `cpus` CPUs. No
/// `quiet`: it would hide WARNING splats. An oops panics, and a panic ends
/// QEMU (-no-reboot). `initramfs_async=0` unpacks the initramfs before the
/// built-in KUnit suites run: unpacked in the background, its "Freeing
/// initrd memory" line could land between a suite's "KTAP version 1" and
/// "# Subtest:" lines, and kunit.py's parser then reports a test with no
/// result (seen twice in 15 runs). guest/init checks that `lab.cpus` CPUs
/// came up.
pub fn append(arch: Arch, cpus: u32) -> String {
    format!("console={} panic=-1 oops=panic printk.time=1 initramfs_async=0 lab.cpus={cpus}", arch.console())
}

/// Installs what is missing and prepares the tree with the series applied.
pub fn prepare(layout: &Layout) -> Result<Toolchain> {
    let tc = setup::ensure(&layout.logs())?;
    tree::ensure_base(layout, &tc.source_tarball, &tc.source_version)?;
    tree::apply(layout, false)?;
    Ok(tc)
}

/// Builds the kernels of `variants`, and the test programs `plan` needs for
/// each of their architectures.
pub fn build_all(layout: &Layout, tc: &Toolchain, variants: &[String], plan: &Plan) -> Result<()> {
    for v in variants {
        let v = Variant::load(layout, v)?;
        build::build_kernel(layout, tc, &v)?;
    }
    for a in Arch::ALL {
        let names = programs_for(plan, variants, a);
        if !names.is_empty() {
            build::build_selftests(layout, tc, &names, a)?;
        }
    }
    Ok(())
}

/// The test programs that `plan` runs on the `variants` of `arch`, without
/// duplicates.
fn programs_for(plan: &Plan, variants: &[String], arch: Arch) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for v in variants.iter().filter(|v| arch::of_variant(v) == arch) {
        for n in plan.for_variant(v).selftests() {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    names
}

/// The shape of a guest: how many vCPUs, and whether its clock counts
/// instructions (see [`Machine::icount`]).
#[derive(Clone, Copy, Debug)]
pub struct Guest {
    pub cpus: u32,
    pub icount: bool,
}

impl Guest {
    /// The guest of the test runs: 2 vCPUs under multi-threaded TCG.
    pub const TEST: Guest = Guest { cpus: 2, icount: false };
}

/// Boots one variant with `plan`, writing the serial log to `dir`, and
/// reads the results.
pub fn boot(
    layout: &Layout,
    tc: &Toolchain,
    variant: &str,
    plan: &Plan,
    dir: &Path,
    wd: &Watchdog,
    guest: Guest,
) -> Result<(Vec<TestResult>, HostOutcome)> {
    std::fs::create_dir_all(dir)?;
    let plan = &plan.for_variant(variant);
    let initrd = crate::initramfs::build(layout, tc, variant, plan)?;
    let arch = arch::of_variant(variant);
    let machine = Machine {
        arch,
        qemu: tc.qemu_for(arch).to_path_buf(),
        bios: arch.is_host().then(|| tc.qboot.clone()),
        kernel: build::image(layout, variant),
        initrd,
        cpus: guest.cpus,
        mem_mib: 2048,
        append: append(arch, guest.cpus),
        icount: guest.icount,
    };
    let log = dir.join("serial.log");
    let what = if guest.icount { format!("guest {variant} (icount)") } else { format!("guest {variant}") };
    let pb = Progress::spinner(&what, "booting");
    let start = Instant::now();
    let mut began = Instant::now();
    let outcome = qemu::run(machine.command(), &log, plan, wd, |e| match e {
        Event::Begin(name) => {
            began = Instant::now();
            pb.message(&format!("{name} started at {}s", start.elapsed().as_secs()));
        }
        Event::End { name, rc } => {
            pb.println(&format!("lab: {what}: {name} finished (exit {rc}, {:.0}s)", began.elapsed().as_secs_f64()));
        }
        Event::Line(_) => {}
    })?;
    pb.finish();
    // With the log and the plan, this replays the analysis (lab/tests/data).
    std::fs::write(dir.join("outcome.json"), serde_json::to_string_pretty(&outcome)?)?;
    std::fs::write(dir.join("plan"), plan.render())?;
    let text = String::from_utf8_lossy(&std::fs::read(&log)?).into_owned();
    let ktap = KunitPy::new(&layout.tree(), &dir.join("ktap"))?;
    let rows = results::analyse(variant, &text, plan, &outcome, &ktap);
    Ok((rows, outcome))
}

/// The `call-path` row: whether the built kernel calls the Rust or the C
/// implementation, as its option says (see config/call-path).
pub fn call_path(layout: &Layout, variant: &str) -> Result<Option<TestResult>> {
    let file = layout.config().join("call-path");
    if !file.is_file() {
        return Ok(None);
    }
    let cp = callpath::CallPath::parse(&std::fs::read_to_string(&file)?, &file.display().to_string())?
        .for_arch(arch::of_variant(variant).src_arch());
    let (status, detail) = match callpath::check(&layout.kbuild(variant), &cp) {
        Ok(found) => (Status::Pass, found),
        Err(e) => (Status::Fail, format!("{e:#}")),
    };
    Ok(Some(TestResult::new(variant, "call-path", status, detail)))
}

/// The `compile-fail` row: the programs of checks/compile-fail must fail
/// to compile with their expected error (only where the kernel has the
/// series' Rust object, whose rustc command serves as the template).
pub fn compile_fail(layout: &Layout, variant: &str) -> Result<Option<TestResult>> {
    let dir = layout.repo.join("checks/compile-fail");
    let kbuild = layout.kbuild(variant);
    if !dir.is_dir() || !kbuild.join("mm/.fault_lock.o.cmd").is_file() {
        return Ok(None);
    }
    let work = layout.build.join("compile-fail").join(variant);
    let (status, detail) = match crate::compilefail::check(&kbuild, &layout.tree(), &dir, &work) {
        Ok(found) => (Status::Pass, format!("rejected as expected: {}", found.join(", "))),
        Err(e) => (Status::Fail, format!("{e:#}")),
    };
    Ok(Some(TestResult::new(variant, "compile-fail", status, detail)))
}

/// A new folder for this invocation's results, and `runs/latest` pointing
/// at it.
pub fn new_run_dir(layout: &Layout) -> Result<PathBuf> {
    let runs = layout.runs();
    std::fs::create_dir_all(&runs)?;
    let dir = runs.join(chrono::Local::now().format("%Y%m%d-%H%M%S").to_string());
    std::fs::create_dir_all(&dir)?;
    let latest = runs.join("latest");
    let _ = std::fs::remove_file(&latest);
    std::os::unix::fs::symlink(dir.file_name().context("run dir has a name")?, &latest)?;
    Ok(dir)
}

/// The whole job for `variants`: returns whether everything passed.
pub fn run(layout: &Layout, variants: &[String], plan_path: Option<&Path>, wd: &Watchdog) -> Result<bool> {
    let tc = prepare(layout)?;
    let plan_path = plan_path.map_or_else(|| layout.guest().join("plan"), Path::to_path_buf);
    let plan = Plan::load(&plan_path)?;
    plan.check_variants(&build::guest_variants(layout)?)?;
    build_all(layout, &tc, variants, &plan)?;
    let dir = new_run_dir(layout)?;
    let mut rows = Vec::new();
    for v in variants {
        if let Some(r) = call_path(layout, v)? {
            rows.push(r);
        }
        if let Some(r) = compile_fail(layout, v)? {
            rows.push(r);
        }
        let (r, _) = boot(layout, &tc, v, &plan, &dir.join(v), wd, Guest::TEST)?;
        rows.extend(r);
    }
    let base = tree::kernel_version(&layout.tree()).unwrap_or_default();
    let series = tree::read_series(&layout.patches())?;
    let meta = serde_json::json!({
        "kernel": base,
        "debian_package": tc.source_version,
        "series": series.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "variants": variants,
        "plan": plan,
    });
    let json = dir.join("results.json");
    report::write_json(&json, &rows, &meta)?;
    print!("{}", report::table(&rows));
    println!("serial logs and results: {}", dir.display());
    let t = report::totals(&rows);
    println!("{}", report::closing_line(&t));
    Ok(t.failed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_guest_gets_its_own_console_and_the_cpu_count_init_checks() {
        assert_eq!(
            append(Arch::X86_64, 2),
            "console=ttyS0 panic=-1 oops=panic printk.time=1 initramfs_async=0 lab.cpus=2"
        );
        assert_eq!(
            append(Arch::Arm64, 2),
            "console=ttyAMA0 panic=-1 oops=panic printk.time=1 initramfs_async=0 lab.cpus=2"
        );
    }

    #[test]
    fn each_architecture_builds_the_programs_its_variants_run() {
        let plan = Plan::parse("a ktap 9 x\nb ktap 9 only=debug y\nc ktap 9 only=rust z\n", "p").unwrap();
        let v = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let all = v(&["c", "debug", "rust", "arm64-rust"]);
        assert_eq!(programs_for(&plan, &all, Arch::X86_64), ["x", "y", "z"]);
        assert_eq!(programs_for(&plan, &all, Arch::Arm64), ["x", "z"]);
        assert!(programs_for(&plan, &v(&["rust"]), Arch::Arm64).is_empty());
    }
}
