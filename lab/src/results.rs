//! Reading a guest's serial log: test sections, their results, and kernel
//! splats.
//!
//! The guest's init brackets each test with `LAB: BEGIN <name>` and
//! `LAB: END <name> rc=<status> ms=<elapsed>`, and ends with `LAB: DONE`
//! ([`crate::console`] reads those lines). KTAP output is handed to the
//! kernel's own parser (tools/testing/kunit/kunit.py; `results/ktap.rs`),
//! kernel reports are found in `results/splat.rs`; uffd-unit-tests' format
//! is read here, where each test's section is judged.

use regex::Regex;
use serde::Serialize;
use std::sync::LazyLock;

use crate::console::{self, Marker};
use crate::plan::{Format, Plan};
use crate::qemu::HostOutcome;
use crate::variant::Variant;

mod ktap;
mod splat;

pub use ktap::{normalise_directives, plan_first, runner_subcases, KtapParser, KunitPy};
pub use splat::{find_splats, splat_kind};

/// The outcome of one row of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Skip,
    Fail,
    /// The kernel reported a BUG, WARNING, oops, panic, KASAN, lockdep or
    /// RCU-stall splat while this test ran.
    Crash,
    /// The test (or the guest) stopped making progress and was killed.
    Hang,
    /// The guest ended before the test started.
    NotRun,
}

impl Status {
    /// Whether this status counts as a failure.
    pub fn failed(self) -> bool {
        !matches!(self, Status::Pass | Status::Skip)
    }

    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
            Status::Fail => "FAIL",
            Status::Crash => "CRASH",
            Status::Hang => "HANG",
            Status::NotRun => "NOT RUN",
        }
    }
}

/// One sub-result (a KTAP case or a uffd-unit-tests case).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Case {
    pub name: String,
    /// PASS, SKIP, FAIL or ERROR, as the parser reported it.
    pub status: String,
}

/// A kernel report found in the serial log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Splat {
    /// What matched: "BUG", "WARNING", "Oops", "panic", "KASAN", "lockdep",
    /// "RCU stall", "hung task", ...
    pub kind: String,
    /// 1-based line in the serial log.
    pub line: usize,
    /// The report's first lines.
    pub excerpt: String,
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestResult {
    pub variant: Variant,
    pub test: String,
    pub status: Status,
    /// Seconds the test ran, as the guest measured it.
    pub secs: Option<f64>,
    /// A short explanation: counts of cases, the failure, the exit code.
    pub detail: String,
    pub cases: Vec<Case>,
    /// The cases of the programs a runner ran (run_vmtests.sh's tests'
    /// own TAP), named `<program>: <number>`; what the baseline comparison
    /// holds to the plain kernel, beside `cases`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subcases: Vec<Case>,
    pub splats: Vec<Splat>,
}

impl TestResult {
    /// A row with no time, cases or splats yet.
    pub fn new(variant: &Variant, test: &str, status: Status, detail: String) -> Self {
        Self {
            variant: variant.clone(),
            test: test.into(),
            status,
            secs: None,
            detail,
            cases: Vec::new(),
            subcases: Vec::new(),
            splats: Vec::new(),
        }
    }
}

static UFFD_CASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Testing (.+?)\.\.\. (done|skipped|failed)(?: \[reason: (.*)\])?").expect("valid regex")
});
static UFFD_SUMMARY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Userfaults unit tests: pass=(\d+), skip=(\d+), fail=(\d+) \(total=(\d+)\)").expect("valid regex")
});
#[derive(Debug, Default)]
struct Section {
    name: String,
    first_line: usize,
    lines: Vec<String>,
    end: Option<(i32, u64)>,
    end_line: Option<usize>,
}

/// Reads one variant's serial log into report rows: `boot`, each planned
/// test, and `shutdown` (the end-of-run sentinel).
pub fn analyse(
    variant: &Variant,
    log: &str,
    plan: &Plan,
    outcome: &HostOutcome,
    ktap: &dyn KtapParser,
) -> Vec<TestResult> {
    let lines: Vec<&str> = log.lines().collect();
    let mut boot = Section { name: "boot".into(), ..Default::default() };
    let mut sections: Vec<Section> = Vec::new();
    let mut started = false;
    let mut done = false;
    let mut setup_fail = Vec::new();
    let mut current: Option<usize> = None;
    for (i, line) in lines.iter().enumerate() {
        if let Some(m) = console::marker(line) {
            started = true;
            match m {
                Marker::Begin(name) => {
                    sections.push(Section { name: name.to_string(), first_line: i + 1, ..Default::default() });
                    current = Some(sections.len() - 1);
                }
                Marker::End { rc, ms, .. } => {
                    if let Some(k) = current.take() {
                        sections[k].end = Some((rc, ms));
                        sections[k].end_line = Some(i + 1);
                    }
                }
                Marker::Done => done = true,
                Marker::SetupFail(what) => setup_fail.push(what.to_string()),
                Marker::Info(_) => {}
            }
            continue;
        }
        match current {
            Some(k) => sections[k].lines.push((*line).to_string()),
            None if sections.is_empty() => boot.lines.push((*line).to_string()),
            None => {}
        }
    }

    // Attribute every report to the section it appeared in.
    let splats = find_splats(&lines);
    // The test whose BEGIN..END holds `line`.
    let owner = |line: usize| -> Option<usize> {
        sections.iter().position(|s| s.first_line <= line && s.end_line.is_none_or(|e| line <= e))
    };
    let before_tests = |line: usize| sections.first().is_none_or(|s| line < s.first_line);
    let panicked = lines.iter().any(|l| l.contains("Kernel panic - not syncing"));

    let row = |test: &str, status: Status, detail: String| TestResult::new(variant, test, status, detail);
    let mut rows = Vec::new();

    // boot: the kernel reached init, with no report on the way.
    let mut r = if started {
        row("boot", Status::Pass, "init started".into())
    } else {
        match outcome {
            HostOutcome::TimedOut { secs, .. } => {
                row("boot", Status::Hang, format!("init never started; no output for {secs}s"))
            }
            HostOutcome::Exited { code } => {
                row("boot", Status::Fail, format!("guest ended before init started (QEMU exit {code:?})"))
            }
        }
    };
    if !setup_fail.is_empty() {
        r.status = Status::Fail;
        r.detail = format!("guest setup failed: {}", setup_fail.join("; "));
    }
    r.splats = splats.iter().filter(|s| before_tests(s.line)).cloned().collect();
    if !r.splats.is_empty() {
        r.status = Status::Crash;
        r.detail = format!("kernel {} during boot", r.splats[0].kind);
    }
    // The kernel's own KUnit suites (Rust doctests among them) run at boot.
    if boot.lines.iter().any(|l| l.contains("KTAP version 1")) {
        let mut k = row("kunit", Status::Pass, String::new());
        match ktap.parse(&format!("{}-kunit", variant.name()), &boot.lines.join("\n")) {
            Ok(cases) => judge_cases(&mut k, cases, 0),
            Err(e) => {
                k.status = Status::Fail;
                k.detail = format!("cannot parse KUnit output: {e}");
            }
        }
        rows.push(r);
        rows.push(k);
    } else {
        rows.push(r);
    }

    for test in &plan.tests {
        let Some(idx) = sections.iter().position(|s| s.name == test.name) else {
            rows.push(row(&test.name, Status::NotRun, "the guest ended before this test".into()));
            continue;
        };
        let s = &sections[idx];
        let mut r = row(&test.name, Status::Pass, String::new());
        r.splats = splats.iter().filter(|sp| owner(sp.line) == Some(idx)).cloned().collect();
        match s.end {
            None => {
                r.status = match outcome {
                    _ if panicked => Status::Crash,
                    HostOutcome::TimedOut { .. } => Status::Hang,
                    HostOutcome::Exited { .. } => Status::Fail,
                };
                r.detail = match outcome {
                    HostOutcome::TimedOut { secs, .. } => {
                        format!("no progress for {secs}s; the watchdog killed the guest")
                    }
                    _ if panicked => "the kernel panicked during the test".into(),
                    HostOutcome::Exited { code } => format!("the guest ended during the test (QEMU exit {code:?})"),
                };
            }
            Some((rc, ms)) => {
                r.secs = Some(ms as f64 / 1000.0);
                judge(&mut r, test, rc, ms, &s.lines, ktap, variant);
            }
        }
        if !r.splats.is_empty() && r.status != Status::Hang {
            r.detail = format!("kernel {} at serial line {}; {}", r.splats[0].kind, r.splats[0].line, r.detail);
            r.status = Status::Crash;
        }
        // A randomised test prints its seed, so that a failure can be
        // replayed, and how much it did: both belong in the report, however
        // the test ended. The guest programs print them as kselftest
        // diagnostics, once a run: `# seed N[: what the run does]` before
        // the first case (fault_stress, memcg_thrash: replay with `-s N`)
        // and `# volume NAME=COUNT ...` after the cases that did the work
        // (fault_stress's stress.mixed, fault_inject's summary).
        for key in ["# seed ", "# volume "] {
            if let Some(v) = s.lines.iter().find_map(|l| l.trim_start().strip_prefix(key)) {
                r.detail.push_str(&format!("; {}{}", &key[2..], v.trim()));
            }
        }
        rows.push(r);
    }

    // shutdown: the sentinel arrived and no report followed it.
    let mut r = if done {
        row("shutdown", Status::Pass, "LAB: DONE seen".into())
    } else {
        let why = match outcome {
            HostOutcome::TimedOut { phase, secs } => {
                format!("no LAB: DONE; watchdog fired after {secs}s without progress ({phase})")
            }
            HostOutcome::Exited { code } if panicked => {
                format!("no LAB: DONE; the kernel panicked (QEMU exit {code:?})")
            }
            HostOutcome::Exited { code } => format!("no LAB: DONE; QEMU exited {code:?}"),
        };
        let st = if matches!(outcome, HostOutcome::TimedOut { .. }) { Status::Hang } else { Status::Fail };
        row("shutdown", st, why)
    };
    // Reports between tests or after the last one.
    let after: Vec<Splat> =
        splats.iter().filter(|s| !before_tests(s.line) && owner(s.line).is_none()).cloned().collect();
    if !after.is_empty() {
        r.status = Status::Crash;
        r.detail = format!("kernel {} outside any test, at serial line {}", after[0].kind, after[0].line);
        r.splats = after;
    }
    rows.push(r);
    rows
}

fn judge(
    r: &mut TestResult,
    test: &crate::plan::Test,
    rc: i32,
    ms: u64,
    lines: &[String],
    ktap: &dyn KtapParser,
    variant: &Variant,
) {
    let timed_out = test.timeout > 0 && (rc == 124 || rc == 143) && ms + 2000 >= test.timeout * 1000;
    if timed_out {
        r.status = Status::Hang;
        r.detail = format!("killed by the guest's {}s timeout", test.timeout);
        return;
    }
    // busybox sh: "sh: NAME: not found".
    let missing = lines.iter().find_map(|l| l.strip_prefix("sh: ")?.strip_suffix(": not found"));
    if let (127, Some(prog)) = (rc, missing) {
        r.status = Status::Fail;
        r.detail = format!(
            "exit 127: `{prog}` is missing from the guest: the lab ships the programs the plan names (a command's \
             first word, or needs=), from tools/testing/selftests/mm or guest/programs"
        );
        return;
    }
    let text = lines.join("\n");
    // uffd-unit-tests prints kselftest's KTAP since Linux 6.15 (mainline),
    // its own lines before (6.12).
    let format = match test.format {
        Format::Uffd if lines.iter().any(|l| l.starts_with("TAP version")) => Format::Ktap,
        f => f,
    };
    match format {
        Format::Exit => {}
        Format::Ktap => match ktap.parse(&format!("{}-{}", variant.name(), test.name), &text) {
            Ok(cases) => {
                r.cases = cases;
                r.subcases = runner_subcases(lines);
            }
            Err(e) => {
                r.status = Status::Fail;
                r.detail = format!("cannot parse KTAP output: {e}");
                return;
            }
        },
        Format::Uffd => {
            r.cases = lines
                .iter()
                .filter_map(|l| UFFD_CASE.captures(l))
                .map(|c| Case {
                    name: c[1].to_string(),
                    status: match &c[2] {
                        "done" => "PASS",
                        "skipped" => "SKIP",
                        _ => "FAIL",
                    }
                    .to_string(),
                })
                .collect();
            // The console may split a case's line with kernel messages, so
            // the program's own summary is the count that decides.
            let Some(sum) = lines.iter().find_map(|l| UFFD_SUMMARY.captures(l)) else {
                (r.status, r.detail) = if rc == 4 {
                    (Status::Skip, "exit 4 (skipped): userfaultfd is not available".into())
                } else {
                    (Status::Fail, format!("exit {rc}, and no `Userfaults unit tests:` summary line"))
                };
                return;
            };
            let n = |i: usize| sum[i].parse::<usize>().unwrap_or(0);
            let (pass, skip, fail) = (n(1), n(2), n(3));
            r.status = if rc != 0 || fail > 0 {
                Status::Fail
            } else if pass == 0 && skip > 0 {
                Status::Skip
            } else {
                Status::Pass
            };
            r.detail = format!("{pass} pass, {skip} skip, {fail} fail");
            if rc != 0 {
                r.detail.push_str(&format!("; exit {rc}"));
            }
            let failed: Vec<&str> = r.cases.iter().filter(|c| c.status == "FAIL").map(|c| c.name.as_str()).collect();
            if !failed.is_empty() {
                r.detail.push_str(&format!("; failed: {}", failed.join(", ")));
            }
            return;
        }
    }
    let cases = std::mem::take(&mut r.cases);
    judge_cases(r, cases, rc);
    if !r.subcases.is_empty() {
        let count = |s: &str| r.subcases.iter().filter(|c| c.status == s).count();
        r.detail.push_str(&format!(
            "; inside: {} cases, {} pass, {} skip, {} fail",
            r.subcases.len(),
            count("PASS"),
            count("SKIP"),
            count("FAIL")
        ));
    }
    if rc == 4 {
        // KSFT_SKIP: the whole program skipped; its reason beats the counts.
        let why = lines
            .iter()
            .find_map(|l| l.split_once("# SKIP").map(|(_, w)| w).or_else(|| l.strip_prefix("skip:")))
            .map_or(String::new(), |w| format!(": {}", w.trim()));
        r.detail = format!("exit 4 (skipped){why}");
    }
    if let Some(bail) = lines.iter().find_map(|l| l.split_once("Bail out!").map(|(_, why)| why.trim())) {
        r.detail.push_str(&format!("; bailed out: {bail}"));
    }
}

/// Sets status and detail from sub-results and the exit status.
fn judge_cases(r: &mut TestResult, cases: Vec<Case>, rc: i32) {
    let count = |s: &str| cases.iter().filter(|c| c.status == s).count();
    let (pass, skip) = (count("PASS"), count("SKIP"));
    let fail = cases.len() - pass - skip;
    r.status = if rc == 4 || (!cases.is_empty() && pass == 0 && fail == 0) {
        Status::Skip
    } else if rc != 0 || fail > 0 {
        Status::Fail
    } else {
        Status::Pass
    };
    r.detail = if cases.is_empty() {
        format!("exit {rc}")
    } else {
        let mut d = format!("{pass} pass, {skip} skip, {fail} fail");
        if rc != 0 {
            d.push_str(&format!("; exit {rc}"));
        }
        let failed: Vec<&str> =
            cases.iter().filter(|c| c.status != "PASS" && c.status != "SKIP").map(|c| c.name.as_str()).collect();
        if !failed.is_empty() {
            d.push_str(&format!("; failed: {}", failed.iter().take(3).copied().collect::<Vec<_>>().join(", ")));
            if failed.len() > 3 {
                d.push_str(&format!(" and {} more", failed.len() - 3));
            }
        }
        d
    };
    r.cases = cases;
}
