//! The result parsers on serial logs recorded from real guest runs
//! (`lab run --plan lab/tests/data/<case>.plan`; see lab/tests/data/README).
//!
//! KTAP is read by the kernel's own parser with the build root's python3,
//! so these tests need the root and the 6.12 tree (`lab setup` and `lab
//! tree --base 6.12` make them; `make test` does so first).

use lab::base::Base;
use lab::layout::Layout;
use lab::plan::Plan;
use lab::qemu::HostOutcome;
use lab::report;
use lab::results::{self, KunitPy, Status, TestResult};
use lab::root::Root;
use lab::variant::Variant;
use std::path::{Path, PathBuf};

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// The kernel's KTAP parser from the lab's 6.12 tree (where the recorded
/// runs come from), and its scratch folder.
fn kunit_py() -> (tempfile::TempDir, KunitPy) {
    let layout = Layout::new(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
    assert!(layout.root().join("usr/bin").is_dir(), "no build root: run `lab setup` first");
    // A folder of the checkout, which the root shares.
    let scratch = layout.build.join("tmp");
    std::fs::create_dir_all(&scratch).unwrap();
    let work = tempfile::tempdir_in(&scratch).unwrap();
    let root = Root::new(layout.root(), vec![layout.repo.clone()]);
    let ktap = KunitPy::new(&root, &layout.tree(Base::Lts612), work.path())
        .expect("the 6.12 kernel tree (for kunit.py): run `lab tree --base 6.12` first");
    (work, ktap)
}

fn v(name: &str) -> Variant {
    Variant::parse(Base::Lts612, name)
}

/// Analyses a recorded run: `<case>.plan`, `<case>/serial.log` and
/// `<case>/outcome.json`.
fn replay(case: &str) -> Vec<TestResult> {
    let d = data();
    let plan = Plan::load(&d.join(format!("{case}.plan"))).unwrap();
    let log = String::from_utf8_lossy(&std::fs::read(d.join(case).join("serial.log")).unwrap()).into_owned();
    let outcome: HostOutcome =
        serde_json::from_str(&std::fs::read_to_string(d.join(case).join("outcome.json")).unwrap()).unwrap();
    let (_work, ktap) = kunit_py();
    results::analyse(&v("rust"), &log, &plan, &outcome, &ktap)
}

fn status(rows: &[TestResult], test: &str) -> Status {
    rows.iter().find(|r| r.test == test).unwrap_or_else(|| panic!("no row {test} in {rows:#?}")).status
}

fn row<'a>(rows: &'a [TestResult], test: &str) -> &'a TestResult {
    rows.iter().find(|r| r.test == test).unwrap()
}

#[test]
fn a_passing_run() {
    let rows = replay("pass");
    let names: Vec<&str> = rows.iter().map(|r| r.test.as_str()).collect();
    assert_eq!(names, ["boot", "kunit", "uffd-unit-tests", "uffd-stress-anon", "uffd-stress-shmem", "cow", "shutdown"]);
    for r in &rows {
        assert_eq!(r.status, Status::Pass, "{r:#?}");
        assert!(r.splats.is_empty());
    }
    let uffd = row(&rows, "uffd-unit-tests");
    // 66 by the program's own summary, although the console split some of
    // its lines with kernel messages.
    assert_eq!(uffd.detail, "66 pass, 0 skip, 0 fail");
    assert!(uffd.cases.iter().any(|c| c.name == "UFFDIO_API (with syscall)"), "{:?}", uffd.cases[0]);
    assert!(uffd.cases.len() >= 60, "{}", uffd.cases.len());
    assert!(uffd.cases.iter().all(|c| c.status != "FAIL"));
    assert!(uffd.secs.unwrap() > 1.0);
    let cow = row(&rows, "cow");
    assert!(cow.cases.len() > 100, "cow's KTAP cases: {}", cow.cases.len());
    assert!(cow.cases.iter().any(|c| c.status == "SKIP"), "cow's one `ok N # SKIP` line is read as a skip");
    let kunit = row(&rows, "kunit");
    assert!(kunit.cases.len() > 100, "{}", kunit.cases.len());
    assert!(
        kunit.cases.iter().any(|c| c.name.starts_with("rust_doctests_kernel.rust_doctest_kernel_")),
        "{:?}",
        kunit.cases[0]
    );
    let t = report::totals(&rows);
    assert_eq!(report::closing_line(&t), "7 passed, 0 failed");
}

#[test]
fn a_failing_run() {
    let rows = replay("fail");
    let map = row(&rows, "map_populate");
    assert_eq!(map.status, Status::Fail);
    assert!(map.detail.contains("bailed out: [FAIL]") && map.detail.contains("socketpair"), "{}", map.detail);
    assert!(map.cases.iter().all(|c| c.status != "PASS" && !c.name.is_empty()), "{:?}", map.cases);
    let big = row(&rows, "uffd-stress-4g");
    assert_eq!(big.status, Status::Fail);
    assert_eq!(big.detail, "exit 1");
    assert_eq!(status(&rows, "uffd-stress-anon"), Status::Pass);
    assert_eq!(status(&rows, "shutdown"), Status::Pass);
    assert_eq!(report::totals(&rows).failed, 2);
}

#[test]
fn a_skipping_run() {
    let rows = replay("skip");
    assert_eq!(status(&rows, "soft-dirty"), Status::Skip);
    assert_eq!(status(&rows, "ksm_functional_tests"), Status::Skip);
    assert_eq!(row(&rows, "soft-dirty").detail, "exit 4 (skipped): soft-dirty is not support");
    assert!(row(&rows, "ksm_functional_tests").detail.contains("/sys/kernel/mm/ksm/run"));
    let t = report::totals(&rows);
    assert_eq!((t.failed, t.skipped), (0, 2));
}

#[test]
fn an_oops() {
    let rows = replay("oops");
    assert_eq!(status(&rows, "uffd-stress-anon"), Status::Pass);
    let crash = row(&rows, "sysrq-crash");
    assert_eq!(crash.status, Status::Crash);
    assert_eq!(crash.splats.len(), 1, "{:#?}", crash.splats);
    assert!(crash.splats[0].excerpt.contains("sysrq"), "{}", crash.splats[0].excerpt);
    assert!(crash.splats[0].excerpt.contains("Kernel panic"), "the excerpt runs to the panic");
    assert_eq!(status(&rows, "cow"), Status::NotRun);
    let end = row(&rows, "shutdown");
    assert_eq!(end.status, Status::Fail);
    assert!(end.detail.contains("no LAB: DONE") && end.detail.contains("panicked"), "{}", end.detail);
    let table = report::table(&rows);
    assert!(table.contains("--- 6.12/rust sysrq-crash: kernel"), "{table}");
    assert_eq!(report::totals(&rows).failed, 3);
}

#[test]
fn a_hang() {
    let rows = replay("hang");
    assert_eq!(status(&rows, "uffd-stress-anon"), Status::Pass);
    let stuck = row(&rows, "stuck");
    assert_eq!(stuck.status, Status::Hang);
    assert!(stuck.detail.contains("watchdog"), "{}", stuck.detail);
    assert_eq!(status(&rows, "shutdown"), Status::Hang);
    assert_eq!(report::totals(&rows).failed, 2);
}

#[test]
fn a_log_cut_before_init_is_a_boot_failure() {
    let plan = Plan::parse("cow ktap 600 cow\n", "p").unwrap();
    let log = "Linux version 6.12.117\nKernel panic - not syncing: VFS: Unable to mount root fs\n---[ end Kernel panic ]---\n";
    let (_work, ktap) = kunit_py();
    let rows = results::analyse(&v("c"), log, &plan, &HostOutcome::Exited { code: Some(0) }, &ktap);
    assert_eq!(status(&rows, "boot"), Status::Crash);
    assert_eq!(status(&rows, "cow"), Status::NotRun);
    assert_eq!(status(&rows, "shutdown"), Status::Fail);
}

/// A guest log in which init ran `plan`'s one test with `body` as its
/// output and exit status `rc`, then ended.
fn one_test_log(name: &str, body: &str, rc: i32) -> String {
    format!(
        "Linux version 6.12.117\nLAB: INFO kernel 6.12.117 cpus=2\nLAB: BEGIN {name}\n{body}\n\
         LAB: END {name} rc={rc} ms=5\nLAB: DONE\n"
    )
}

#[test]
fn a_program_missing_from_the_guest_is_named() {
    let plan = Plan::parse("fault-stress ktap 60 fault_stress -t 5\n", "p").unwrap();
    let log = one_test_log("fault-stress", "sh: fault_stress: not found", 127);
    let (_work, ktap) = kunit_py();
    let rows = results::analyse(&v("rust"), &log, &plan, &HostOutcome::Exited { code: Some(0) }, &ktap);
    let r = row(&rows, "fault-stress");
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.contains("missing from the guest") && r.detail.contains("fault_stress"), "{}", r.detail);
    // A test that exits 127 for its own reasons is judged as usual.
    let log = one_test_log("fault-stress", "TAP version 13\n1..1\nok 1 x", 127);
    let rows = results::analyse(&v("rust"), &log, &plan, &HostOutcome::Exited { code: Some(0) }, &ktap);
    assert!(!row(&rows, "fault-stress").detail.contains("missing"));
}

#[test]
fn a_seeded_test_reports_its_seed_and_volume() {
    let plan = Plan::parse("fault-stress ktap 60 fault_stress -t 5\n", "p").unwrap();
    let body = "TAP version 13\n# seed 1234\n1..2\nok 1 stress_mixed\n\
                # mismatch region=0 page=3 expected=0x1 got=0x0 op=read\nnot ok 2 fork_vs_fault\n\
                # volume checks=10 forks=2 mismatches=1";
    let (_work, ktap) = kunit_py();
    let rows = results::analyse(
        &v("rust"),
        &one_test_log("fault-stress", body, 1),
        &plan,
        &HostOutcome::Exited { code: Some(0) },
        &ktap,
    );
    let r = row(&rows, "fault-stress");
    assert_eq!(r.status, Status::Fail);
    assert!(r.detail.contains("failed: fork_vs_fault"), "{}", r.detail);
    assert!(r.detail.contains("seed 1234") && r.detail.contains("volume checks=10 forks=2"), "{}", r.detail);
    // A run that dies in the test is the one to replay.
    let log = "Linux version 6.12.117\nLAB: BEGIN fault-stress\n# seed 99\nTAP version 13\n";
    let rows = results::analyse(&v("rust"), log, &plan, &HostOutcome::Exited { code: Some(0) }, &ktap);
    let r = row(&rows, "fault-stress");
    assert_ne!(r.status, Status::Pass);
    assert!(r.detail.contains("ended during the test") && r.detail.contains("seed 99"), "{}", r.detail);
}
