//! The main job: series -> kernels -> guests -> results -> report.

use anyhow::{bail, Context, Result};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use crate::arch::Arch;
use crate::base::{Base, Source};
use crate::baseline;
use crate::build;
use crate::callpath;
use crate::config::{self, Kernel};
use crate::decode;
use crate::kcidb;
use crate::kconfig::{self, Value};
use crate::layout::Layout;
use crate::plan::Plan;
use crate::progress::Progress;
use crate::qemu::{self, Disk, Event, HostOutcome, Machine, Watchdog};
use crate::report;
use crate::results::{self, KunitPy, Status, TestResult};
use crate::setup::Toolchain;
use crate::tip::SourceTree;
use crate::tree;
use crate::variant::Variant;

/// The guest's disks (qemu::Disk): a swap disk of 512 MiB, room for the
/// tests' swap (/dev/vda), and one of 64 MiB for a filesystem (/dev/vdb),
/// each a fresh sparse image in the run folder, removed after the boot
/// (guest/init formats them). 1000 requests a second, about a millisecond
/// a request: a slow flash disk, slow enough that a fault waits for its
/// read.
const DISKS_MIB: [(&str, u64); 2] = [("swap-disk", 512), ("data-disk", 64)];
const DISK_IOPS: u32 = 1000;

/// The kernel command line of an `arch` guest with `cpus` CPUs. No
/// `quiet`: it would hide WARNING splats. An oops panics, and a panic ends
/// QEMU (-no-reboot). `initramfs_async=0` unpacks the initramfs before the
/// built-in KUnit suites run: unpacked in the background, its "Freeing
/// initrd memory" line could land between a suite's "KTAP version 1" and
/// "# Subtest:" lines, and kunit.py's parser then reports a test with no
/// result (seen twice in 15 runs). guest/init checks that `lab.cpus` CPUs
/// came up.
///
/// A KASAN kernel on x86_64 also gets `no5lvl` (4-level paging, though
/// QEMU's `max` CPU has LA57). identify_cpu() clears the boot CPU's
/// capability words before it reads them back, and while they are clear
/// pgtable_l5_enabled() reads false: KASAN's shadow then starts where
/// 4-level paging's would, and an interrupt taken in that window
/// (handle_edge_irq() locking its irq_desc in LA57's direct map) is
/// reported as "wild-memory-access in do_raw_spin_lock", which also turns
/// lockdep off for the rest of the boot. Seen in 3 of 5 boots of
/// mainline's debug kernel with the disk guests' PCI devices.
pub fn append(arch: Arch, cpus: u32, kasan: bool) -> String {
    let mut line =
        format!("console={} panic=-1 oops=panic printk.time=1 initramfs_async=0 lab.cpus={cpus}", arch.console());
    if kasan && arch == Arch::X86_64 {
        line.push_str(" no5lvl");
    }
    line
}

/// The configuration the kernel of `v` was built with (its `.config`).
fn built_config(layout: &Layout, v: &Variant) -> Result<BTreeMap<String, Value>> {
    let dot_config = layout.kbuild(v).join(".config");
    let text = std::fs::read_to_string(&dot_config)
        .with_context(|| format!("cannot read {}: build the {v} kernel first", dot_config.display()))?;
    Ok(text.lines().filter_map(kconfig::parse_line).collect())
}

/// Whether `symbol` (without `CONFIG_`) is `y` in `config`.
fn is_y(config: &BTreeMap<String, Value>, symbol: &str) -> bool {
    matches!(config.get(symbol), Some(Value::Set(v)) if v == "y")
}

/// Brings the work tree of `base` up to date with its series, creating it
/// from the build root's source first; returns the source the tree was
/// made from (an older Debian version than the root's, until the developer
/// moves the tree on).
pub fn prepare_base(layout: &Layout, tc: &Toolchain, base: Base) -> Result<Source> {
    tree::ensure_base(layout, &tc.root, base, &tc.source(base)?)?;
    tree::apply(layout, base, false)?;
    tree::recorded_source(layout, base)
}

/// Builds the kernels of `variants`, and the test programs `plan` needs for
/// each base and architecture among them.
pub fn build_all(layout: &Layout, tc: &Toolchain, variants: &[Variant], plan: &Plan) -> Result<()> {
    for v in variants {
        build::build_kernel(layout, tc, &Kernel::of(layout, v)?)?;
    }
    for base in Base::ALL {
        for a in Arch::ALL {
            let names = programs_for(plan, variants, base, a);
            if !names.is_empty() {
                build::build_selftests(layout, tc, base, &names, a)?;
            }
        }
    }
    Ok(())
}

/// The test programs that `plan` runs on the `variants` of `base` on
/// `arch`, without duplicates.
fn programs_for(plan: &Plan, variants: &[Variant], base: Base, arch: Arch) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for v in variants.iter().filter(|v| v.base == base && v.arch == arch) {
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

/// The machine that boots `v` with `plan` in its initramfs: the kernel,
/// the guest's shape, and fresh disk images in `dir` (which the caller
/// removes once QEMU has ended).
pub fn machine(layout: &Layout, tc: &Toolchain, v: &Variant, plan: &Plan, dir: &Path, guest: Guest) -> Result<Machine> {
    let initrd = crate::initramfs::build(layout, tc, v, plan)?;
    let mut disks = Vec::new();
    for (name, mib) in DISKS_MIB {
        let image = dir.join(format!("{name}.img"));
        std::fs::File::create(&image)
            .and_then(|f| f.set_len(mib << 20))
            .with_context(|| format!("cannot create the disk image {}", image.display()))?;
        disks.push(Disk { image, iops: DISK_IOPS });
    }
    Ok(Machine {
        arch: v.arch,
        qemu: tc.qemu_for(v.arch).to_path_buf(),
        bios: v.arch.is_host().then(|| tc.qboot.clone()),
        kernel: build::image(layout, v),
        initrd,
        cpus: guest.cpus,
        // 4 GiB: mremap_test's 2 GB cases (run_vmtests.sh) need that much
        // under the overcommit heuristic once KASAN's shadow (an eighth of
        // memory) and the 256 MiB hugetlb pool are taken; with 2 GiB they
        // failed on debug kernels only.
        mem_mib: 4096,
        append: append(v.arch, guest.cpus, is_y(&built_config(layout, v)?, "KASAN")),
        icount: guest.icount,
        disks,
        interactive: false,
    })
}

/// `lab shell`: builds `v` and boots it with the test plan's programs and
/// the machine the tests get (disks, cgroup, swap), but an interactive
/// shell on the console of this terminal instead of the plan. Returns when
/// the guest powers off.
pub fn shell(layout: &Layout, tc: &Toolchain, v: &Variant) -> Result<()> {
    let plan = Plan::load(&layout.guest().join("plan"))?;
    prepare_base(layout, tc, v.base)?;
    build_all(layout, tc, std::slice::from_ref(v), &plan)?;
    let dir = crate::layout::dated_dir(&layout.runs())?;
    let mut m = machine(layout, tc, v, &plan.for_variant(v), &dir, Guest::TEST)?;
    m.interactive = true;
    m.append.push_str(" lab.shell=1");
    let mut c = m.command(&tc.root);
    std::fs::write(dir.join("qemu.cmd"), crate::cmd::describe(&c) + "\n")?;
    eprintln!("lab: shell on {v} (Ctrl-A x quits QEMU; the command line is in {})", dir.join("qemu.cmd").display());
    let status = c.status().context("cannot start QEMU");
    for d in &m.disks {
        let _ = std::fs::remove_file(&d.image);
    }
    let status = status?;
    if !status.success() {
        bail!("QEMU ended with {status}");
    }
    Ok(())
}

/// Boots one variant with `plan`, writing the serial log to `dir`, and
/// reads the results.
pub fn boot(
    layout: &Layout,
    tc: &Toolchain,
    v: &Variant,
    plan: &Plan,
    dir: &Path,
    wd: &Watchdog,
    guest: Guest,
) -> Result<(Vec<TestResult>, HostOutcome)> {
    std::fs::create_dir_all(dir)?;
    let plan = &plan.for_variant(v);
    let machine = machine(layout, tc, v, plan, dir, guest)?;
    let disks = machine.disks.clone();
    let log = dir.join("serial.log");
    let what = if guest.icount { format!("guest {v} (icount)") } else { format!("guest {v}") };
    let pb = Progress::spinner(&what, "booting");
    let start = Instant::now();
    let mut began = Instant::now();
    let command = machine.command(&tc.root);
    // The command line, to boot the same guest again by hand.
    std::fs::write(dir.join("qemu.cmd"), crate::cmd::describe(&command) + "\n")?;
    let outcome = qemu::run(command, &log, plan, wd, |e| match e {
        Event::Begin(name) => {
            began = Instant::now();
            pb.message(&format!("{name} started at {}s", start.elapsed().as_secs()));
        }
        Event::End { name, rc } => {
            pb.println(&format!("lab: {what}: {name} finished (exit {rc}, {:.0}s)", began.elapsed().as_secs_f64()));
        }
        Event::Line(_) => {}
    });
    for d in &disks {
        let _ = std::fs::remove_file(&d.image);
    }
    let outcome = outcome?;
    pb.finish();
    eprintln!("lab: {what}: done in {:.0}s", start.elapsed().as_secs_f64());
    // With the log and the plan, this replays the analysis (lab/tests/data).
    std::fs::write(dir.join("outcome.json"), serde_json::to_string_pretty(&outcome)?)?;
    std::fs::write(dir.join("plan"), plan.render())?;
    let text = String::from_utf8_lossy(&std::fs::read(&log)?).into_owned();
    let ktap = KunitPy::new(&tc.root, &layout.tree(v.base), &dir.join("ktap"))?;
    let mut rows = results::analyse(v, &text, plan, &outcome, &ktap);
    // A kernel that runs KUnit at boot must print its KTAP: a missing
    // `kunit` row would otherwise pass unseen (7.x needs
    // KUNIT_AUTORUN_ENABLED for it, which 6.12 does not have).
    let config = built_config(layout, v).unwrap_or_default();
    let kunit_at_boot =
        is_y(&config, "KUNIT_DEFAULT_ENABLED") && config.get("KUNIT_AUTORUN_ENABLED") != Some(&Value::No);
    if kunit_at_boot && !rows.iter().any(|r| r.test == "kunit") {
        let at = rows.iter().position(|r| r.test == "boot").map_or(0, |i| i + 1);
        let detail =
            "the kernel runs KUnit at boot (CONFIG_KUNIT_DEFAULT_ENABLED), but the console has no KTAP before \
                      the tests: check that the suites are built in (FAULT_LOCK_KUNIT_TEST) and that autorun is on";
        rows.insert(at, TestResult::new(v, "kunit", Status::Fail, detail.into()));
    }
    if rows.iter().any(|r| !r.splats.is_empty()) && is_y(&config, "DEBUG_INFO") {
        let note = decode_reports(layout, tc, v, &log, dir);
        for r in rows.iter_mut().filter(|r| !r.splats.is_empty()) {
            r.detail.push_str(&format!("; {note}"));
        }
    }
    Ok((rows, outcome))
}

/// The serial log `log` of `v`'s guest with its kernel reports' stack
/// traces decoded ([`decode`]) into `dir`; says where, or why not.
fn decode_reports(layout: &Layout, tc: &Toolchain, v: &Variant, log: &Path, dir: &Path) -> String {
    let out = dir.join("serial.decoded.log");
    let decoded = SourceTree::of(layout, v, &format!("decoding the kernel reports of {v}"))
        .and_then(|src| decode::decode(&tc.root, v.base, src.path(), &layout.kbuild(v).join("vmlinux"), log, &out));
    match decoded {
        Ok(()) => format!("stack traces with file and line: {}", out.display()),
        Err(e) => format!("stack traces not decoded: {e:#}"),
    }
}

/// The run's results as KCIDB JSON (`kcidb.json` in the run folder `dir`),
/// checked with kcidb-io.
fn write_kcidb(
    layout: &Layout,
    tc: &Toolchain,
    dir: &Path,
    start: &str,
    sources: &BTreeMap<Base, Source>,
    variants: &[Variant],
    rows: &[TestResult],
) -> Result<()> {
    let mut checkouts = Vec::new();
    for (base, source) in sources {
        checkouts.push(kcidb::CheckoutInput {
            base: *base,
            kernel: tree::kernel_version(&layout.tree(*base)).unwrap_or_default(),
            source: source.clone(),
            patches: tree::read_series(&layout.patches(*base))?,
        });
    }
    let rustc = tc.root.package_version("rustc-web").unwrap_or_default();
    let builds: Vec<kcidb::BuildInput> = variants
        .iter()
        .map(|v| {
            let llvm = crate::setup::llvm_of(v.base);
            let clang = tc.root.package_version(&format!("clang-{llvm}")).unwrap_or_default();
            kcidb::BuildInput {
                variant: v.clone(),
                compiler: format!("clang-{llvm} {clang}, rustc-web {rustc} (Debian trixie)"),
                config: layout.kbuild(v).join(".config"),
                log: build::build_log(layout, v),
                image: build::image(layout, v),
                serial_log: dir.join(v.base.name()).join(v.name()).join("serial.log"),
            }
        })
        .collect();
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let path = dir.join("kcidb.json");
    kcidb::Report::new(&name, start, &checkouts, &builds, rows)?.write(&path)?;
    let count = kcidb::validate(&tc.kcidb_python, &path)?;
    eprintln!("lab: KCIDB report {} ({count}, valid)", path.display());
    Ok(())
}

/// The `call-path` row: whether the built kernel calls the Rust or the C
/// implementation, as its option says (see config/<base>/call-path; none
/// for a base whose series has no Rust option yet).
pub fn call_path(layout: &Layout, v: &Variant) -> Result<Option<TestResult>> {
    let file = layout.base_config(v.base).join("call-path");
    if !file.is_file() {
        return Ok(None);
    }
    let cp = callpath::CallPath::parse(&std::fs::read_to_string(&file)?, &file.display().to_string())?
        .for_arch(v.arch.src_arch());
    let (status, detail) = match callpath::check(&layout.kbuild(v), &cp) {
        Ok(found) => (Status::Pass, found),
        Err(e) => (Status::Fail, format!("{e:#}")),
    };
    Ok(Some(TestResult::new(v, "call-path", status, detail)))
}

/// The `compile-fail` row: the programs of checks/compile-fail/<base> must
/// fail to compile with their expected error (only on the `rust`
/// configuration, x86_64 and arm64, and only where the kernel has the series' Rust object, whose rustc
/// command serves as the template).
pub fn compile_fail(layout: &Layout, tc: &Toolchain, v: &Variant) -> Result<Option<TestResult>> {
    let dir = layout.repo.join("checks/compile-fail").join(v.base.name());
    let kbuild = layout.kbuild(v);
    if v.config != "rust" || !dir.is_dir() || !kbuild.join("mm/.fault_lock.o.cmd").is_file() {
        return Ok(None);
    }
    let work = layout.base_dir(v.base).join("compile-fail").join(v.name());
    // kbuild's rustc command names the source tree the kernel was built
    // from: the tip checkout for all but the kernels the walk builds.
    let src = SourceTree::of(layout, v, &format!("compiling the compile-fail programs against {v}"))?;
    let (status, detail) = match crate::compilefail::check(&tc.root, &kbuild, src.path(), &dir, &work) {
        Ok(found) => (Status::Pass, format!("rejected as expected: {}", found.join(", "))),
        Err(e) => (Status::Fail, format!("{e:#}")),
    };
    Ok(Some(TestResult::new(v, "compile-fail", status, detail)))
}

/// Every variant a plan's `only=` may name: each base's configurations on
/// x86_64 and the guests it boots.
pub fn known_variants(layout: &Layout) -> Result<Vec<Variant>> {
    let mut known = Vec::new();
    for base in Base::ALL {
        known.extend(config::configs(layout, base)?.iter().map(|c| Variant::new(base, Arch::X86_64, c)));
        known.extend(config::guests(layout, base)?);
    }
    Ok(known)
}

/// The whole job for `variants` (of one or more bases): returns whether
/// everything passed.
pub fn run(
    layout: &Layout,
    tc: &Toolchain,
    variants: &[Variant],
    plan_path: Option<&Path>,
    skip: &[String],
    wd: &Watchdog,
) -> Result<bool> {
    let mut sources = BTreeMap::new();
    for v in variants {
        if let std::collections::btree_map::Entry::Vacant(e) = sources.entry(v.base) {
            e.insert(prepare_base(layout, tc, v.base)?);
        }
    }
    let plan_path = plan_path.map_or_else(|| layout.guest().join("plan"), Path::to_path_buf);
    let plan = Plan::load(&plan_path)?.without(skip)?;
    plan.check_variants(&known_variants(layout)?)?;
    build_all(layout, tc, variants, &plan)?;
    let dir = crate::layout::dated_dir(&layout.runs())?;
    let start = chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    let mut rows = Vec::new();
    for v in variants {
        if let Some(r) = call_path(layout, v)? {
            rows.push(r);
        }
        if let Some(r) = compile_fail(layout, tc, v)? {
            rows.push(r);
        }
        let (r, _) = boot(layout, tc, v, &plan, &dir.join(v.base.name()).join(v.name()), wd, Guest::TEST)?;
        rows.extend(r);
    }
    baseline::compare(&mut rows, &plan);
    let mut bases = serde_json::Map::new();
    for (base, source) in &sources {
        let series = tree::read_series(&layout.patches(*base))?;
        bases.insert(
            base.name().to_string(),
            serde_json::json!({
                "kernel": tree::kernel_version(&layout.tree(*base)).unwrap_or_default(),
                "debian_package": source.package,
                "debian_version": source.version,
                "series": series.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().into_owned()).collect::<Vec<_>>(),
            }),
        );
    }
    let meta = serde_json::json!({
        "bases": bases,
        "build_root": { "suite": crate::root::SUITE, "rustc": tc.root.package_version("rustc-web").unwrap_or_default(),
                         "clang": Base::ALL.iter().map(|b| (b.name(), tc.root.package_version(&format!("clang-{}", crate::setup::llvm_of(*b))).unwrap_or_default())).collect::<BTreeMap<_, _>>(),
                         "bindgen": Base::ALL.iter().map(|b| (b.name(), tc.bindgen(*b).version)).collect::<BTreeMap<_, _>>() },
        "variants": variants,
        "plan": plan,
    });
    let json = dir.join("results.json");
    report::write_json(&json, &rows, &meta)?;
    print!("{}", report::table(&rows));
    for (base, source) in &sources {
        println!(
            "{base}: Linux {} from Debian {} {}",
            tree::kernel_version(&layout.tree(*base)).unwrap_or_default(),
            source.package,
            source.version
        );
    }
    println!("serial logs and results: {}", dir.display());
    // After the table: a report kcidb-io refuses must not hide the results.
    write_kcidb(layout, tc, &dir, &start, &sources, variants, &rows)?;
    let t = report::totals(&rows);
    println!("{}", report::closing_line(&t));
    Ok(t.failed == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_config_tells_y_from_not_set_and_absent() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let v = Variant::parse(Base::Mainline, "debug");
        std::fs::create_dir_all(layout.kbuild(&v)).unwrap();
        std::fs::write(
            layout.kbuild(&v).join(".config"),
            "CONFIG_KASAN=y\n# CONFIG_KUNIT_AUTORUN_ENABLED is not set\nCONFIG_NR_CPUS=64\n",
        )
        .unwrap();
        let c = built_config(&layout, &v).unwrap();
        assert!(is_y(&c, "KASAN"));
        assert!(!is_y(&c, "NR_CPUS") && !is_y(&c, "KUNIT_AUTORUN_ENABLED") && !is_y(&c, "KCSAN"));
        assert_eq!(c.get("KUNIT_AUTORUN_ENABLED"), Some(&Value::No));
        let other = Variant::parse(Base::Mainline, "c");
        assert!(built_config(&layout, &other).is_err());
    }

    #[test]
    fn each_guest_gets_its_own_console_and_the_cpu_count_init_checks() {
        assert_eq!(
            append(Arch::X86_64, 2, false),
            "console=ttyS0 panic=-1 oops=panic printk.time=1 initramfs_async=0 lab.cpus=2"
        );
        assert_eq!(
            append(Arch::Arm64, 2, false),
            "console=ttyAMA0 panic=-1 oops=panic printk.time=1 initramfs_async=0 lab.cpus=2"
        );
        // KASAN's shadow range and LA57: see append().
        assert!(append(Arch::X86_64, 2, true).ends_with(" lab.cpus=2 no5lvl"));
        assert!(!append(Arch::Arm64, 2, true).contains("no5lvl"));
    }

    #[test]
    fn each_base_and_architecture_builds_the_programs_its_variants_run() {
        let plan = Plan::parse("a ktap 9 x\nb ktap 9 only=debug y\nc ktap 9 only=rust z\nd ktap 9 only=6.12 w\n", "p")
            .unwrap();
        let v = |b: Base, s: &[&str]| s.iter().map(|s| Variant::parse(b, s)).collect::<Vec<_>>();
        let mut all = v(Base::Lts612, &["c", "debug", "rust", "arm64-rust"]);
        all.extend(v(Base::Mainline, &["c"]));
        assert_eq!(programs_for(&plan, &all, Base::Lts612, Arch::X86_64), ["x", "w", "y", "z"]);
        assert_eq!(programs_for(&plan, &all, Base::Lts612, Arch::Arm64), ["x", "z", "w"]);
        assert_eq!(programs_for(&plan, &all, Base::Mainline, Arch::X86_64), ["x"]);
        assert!(programs_for(&plan, &all, Base::Mainline, Arch::Arm64).is_empty());
    }
}
