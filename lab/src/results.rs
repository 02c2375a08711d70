//! Reading a guest's serial log: test sections, their results, and kernel
//! splats.
//!
//! The guest's init brackets each test with `LAB: BEGIN <name>` and
//! `LAB: END <name> rc=<status> ms=<elapsed>`, and ends with `LAB: DONE`
//! ([`crate::console`] reads those lines).
//! KTAP output is handed to the kernel's own parser
//! (tools/testing/kunit/kunit.py); uffd-unit-tests' format is read here.

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use crate::console::{self, Marker};
use crate::plan::{Format, Plan};
use crate::qemu::HostOutcome;
use crate::root::Root;
use crate::variant::Variant;

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

/// Reads KTAP text into cases.
pub trait KtapParser {
    fn parse(&self, name: &str, text: &str) -> Result<Vec<Case>>;
}

/// The kernel's KTAP parser, run as `kunit.py parse --json` with the build
/// root's python3.
pub struct KunitPy {
    /// tools/testing/kunit/kunit.py in the kernel tree.
    pub script: PathBuf,
    /// Where the section files and JSON go (shared with the root).
    pub workdir: PathBuf,
    pub root: Root,
}

impl KunitPy {
    pub fn new(root: &Root, tree: &Path, workdir: &Path) -> Result<Self> {
        let script = tree.join("tools/testing/kunit/kunit.py");
        if !script.is_file() {
            bail!(
                "{} is missing: the lab reads KTAP with the kernel's own parser; create the tree with `lab tree`",
                script.display()
            );
        }
        Ok(Self { script, workdir: workdir.to_path_buf(), root: root.clone() })
    }
}

/// Flattens kunit.py's JSON groups into cases named `suite.case`; `path`
/// is the enclosing suites (empty for kunit.py's own top group).
fn collect_cases(group: &serde_json::Value, path: &str, out: &mut Vec<Case>) {
    let join = |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
    if let Some(cases) = group["test_cases"].as_array() {
        for (i, c) in cases.iter().enumerate() {
            // kunit.py reports a planned test that never printed a result
            // as a crashed test with no name.
            let name = match c["name"].as_str() {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => format!("test {} (no result)", i + 1),
            };
            out.push(Case { name: join(&name), status: c["status"].as_str().unwrap_or("FAIL").to_string() });
        }
    }
    if let Some(groups) = group["sub_groups"].as_array() {
        for g in groups {
            collect_cases(g, &join(g["name"].as_str().unwrap_or("?")), out);
        }
    }
}

/// A top-level TAP plan (`1..N`), which kselftest's runners (run_vmtests.sh)
/// print after their tests.
static PLAN_LINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^1\.\.\d+$").expect("valid regex"));

/// Moves a top-level TAP plan printed after the tests up to just after
/// `TAP version`, where kunit_parser reads it; TAP 13 allows either place,
/// and kunit_parser would otherwise wait for one more test than ran.
pub fn plan_first(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let first_result = lines.iter().position(|l| l.starts_with("ok ") || l.starts_with("not ok "));
    let version = lines.iter().position(|l| l.starts_with("TAP version") || l.starts_with("KTAP version"));
    let plan = lines.iter().position(|l| PLAN_LINE.is_match(l));
    match (version, first_result, plan) {
        (Some(v), Some(r), Some(p)) if v < r && r < p => {
            let mut out: Vec<&str> = Vec::with_capacity(lines.len());
            for (i, l) in lines.iter().enumerate() {
                if i != p {
                    out.push(l);
                }
                if i == v {
                    out.push(lines[p]);
                }
            }
            out.join("\n") + "\n"
        }
        _ => text.to_string(),
    }
}

/// kselftest's runner (run_vmtests.sh) announcing a program: `# running
/// ./cow`.
static RUNNER_PROGRAM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^# running (?:\./)?(.+?)\s*$").expect("valid regex"));
/// A result line of the program's own TAP, under the runner's `# `
/// prefix.
static RUNNER_CASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^# (not )?ok (\d+)(?: - | )?(.*?)(?:\s*# (SKIP|XFAIL|XPASS|TODO)\b.*)?$").expect("valid regex")
});

/// The cases of the programs a kselftest runner ran, from their TAP under
/// its `# ` prefix: `cow: 3` for cow's third case. A program is named by
/// its `# running` line, with its arguments (gup_test runs five times); a
/// case counts as PASS, SKIP (skip, xfail) or FAIL.
pub fn runner_subcases(lines: &[String]) -> Vec<Case> {
    let mut program: Option<String> = None;
    let mut out = Vec::new();
    for l in lines {
        if let Some(c) = RUNNER_PROGRAM.captures(l) {
            program = Some(c[1].to_string());
            continue;
        }
        // The runner's own result line ends the program's output.
        if l.starts_with("ok ") || l.starts_with("not ok ") {
            program = None;
            continue;
        }
        let (Some(p), Some(c)) = (&program, RUNNER_CASE.captures(l)) else { continue };
        let status = match (c.get(1).is_some(), c.get(4).map(|m| m.as_str())) {
            (_, Some("SKIP" | "XFAIL")) => "SKIP",
            (false, _) => "PASS",
            (true, _) => "FAIL",
        };
        // By number: descriptions may carry what a run measured
        // (pagemap_ioctl's "Extra pages 18 (0.0%)"), and the same program
        // on the same architecture numbers its cases the same way.
        out.push(Case { name: format!("{p}: {}", &c[2]), status: status.into() });
    }
    out
}

static DIRECTIVE_FIRST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(\s*(?:not )?ok \d+) # (XFAIL|XPASS|SKIP|TODO)\b ?(.*)$").expect("valid regex"));

/// Rewrites kselftest's `ok 5 # XFAIL reason` (a directive with no test
/// description) as `ok 5 reason # XFAIL`, the form kunit_parser reads; it
/// would otherwise lose the line and misnumber every later test.
pub fn normalise_directives(text: &str) -> String {
    DIRECTIVE_FIRST.replace_all(text, "$1 $3 # $2").into_owned()
}

impl KtapParser for KunitPy {
    fn parse(&self, name: &str, text: &str) -> Result<Vec<Case>> {
        let text = &normalise_directives(&plan_first(text));
        std::fs::create_dir_all(&self.workdir)?;
        let input = self.workdir.join(format!("{name}.ktap"));
        let json = self.workdir.join(format!("{name}.json"));
        std::fs::write(&input, text)?;
        let _ = std::fs::remove_file(&json);
        // kunit.py exits non-zero when tests failed; the JSON still tells.
        let out = self
            .root
            .command("python3")
            .arg(&self.script)
            .arg("parse")
            .arg(format!("--json={}", json.display()))
            .arg(&input)
            .output()
            .context("cannot run the build root's python3 for the kernel's KTAP parser")?;
        std::fs::write(self.workdir.join(format!("{name}.parsed")), &out.stdout)?;
        let data = std::fs::read_to_string(&json)
            .with_context(|| format!("kunit.py wrote no JSON for {name}:\n{}", String::from_utf8_lossy(&out.stderr)))?;
        let v: serde_json::Value = serde_json::from_str(&data)?;
        let mut cases = Vec::new();
        // The top group is kunit.py's wrapper: its cases carry no prefix.
        collect_cases(&v, "", &mut cases);
        Ok(cases)
    }
}

static UFFD_CASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Testing (.+?)\.\.\. (done|skipped|failed)(?: \[reason: (.*)\])?").expect("valid regex")
});
static UFFD_SUMMARY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"Userfaults unit tests: pass=(\d+), skip=(\d+), fail=(\d+) \(total=(\d+)\)").expect("valid regex")
});
static KERNEL_HEAD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:\[\s*\d+\.\d+\]\s*)?(?:\[\s*[TC]\d+\]\s*)?(BUG|WARNING|Oops|UBSAN): ").expect("valid regex")
});

/// Substrings that are kernel reports wherever they appear on a line (the
/// console may print them in the middle of a program's partial line).
const SPLATS: &[(&str, &str)] = &[
    ("Kernel panic - not syncing", "panic"),
    ("BUG: KASAN:", "KASAN"),
    ("BUG: KFENCE:", "KFENCE"),
    ("WARNING: possible circular locking", "lockdep"),
    ("WARNING: possible recursive locking", "lockdep"),
    ("WARNING: inconsistent lock state", "lockdep"),
    ("WARNING: suspicious RCU usage", "lockdep"),
    ("WARNING: bad unlock balance", "lockdep"),
    ("WARNING: held lock freed", "lockdep"),
    ("WARNING: lock held when returning to user space", "lockdep"),
    ("WARNING: possible irq lock inversion", "lockdep"),
    ("lock order detected", "lockdep"),
    ("WARNING: CPU:", "WARNING"),
    ("kernel BUG at", "BUG"),
    ("BUG: unable to handle", "BUG"),
    ("BUG: sleeping function called", "BUG"),
    ("BUG: scheduling while atomic", "BUG"),
    ("BUG: soft lockup", "soft lockup"),
    ("BUG: workqueue lockup", "BUG"),
    ("BUG: Bad page", "BUG"),
    ("BUG: Bad rss-counter", "BUG"),
    ("Oops:", "Oops"),
    ("general protection fault", "Oops"),
    ("Unable to handle kernel", "Oops"),
    ("list_add corruption", "list corruption"),
    ("list_del corruption", "list corruption"),
    ("detected stalls on CPUs", "RCU stall"),
    ("self-detected stall on CPU", "RCU stall"),
    ("blocked for more than", "hung task"),
    ("UBSAN:", "UBSAN"),
];

/// The kind of kernel report starting on `line`, if any.
pub fn splat_kind(line: &str) -> Option<String> {
    if line.contains(console::PREFIX) {
        return None;
    }
    for (needle, kind) in SPLATS {
        if line.contains(needle) {
            return Some((*kind).to_string());
        }
    }
    KERNEL_HEAD.captures(line).map(|c| c[1].to_string())
}

/// Finds kernel reports, with up to 40 lines of each.
pub fn find_splats(lines: &[&str]) -> Vec<Splat> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(kind) = splat_kind(lines[i]) {
            let mut end = (i + 40).min(lines.len());
            for (j, l) in lines.iter().enumerate().take(end).skip(i + 1) {
                if l.contains("---[ end") || l.contains(console::PREFIX) {
                    end = j + usize::from(l.contains("---[ end"));
                    break;
                }
            }
            out.push(Splat { kind, line: i + 1, excerpt: lines[i..end].join("\n") });
            // A report's own lines (a panic after an oops, lockdep's chain)
            // are part of it, not new reports.
            i = end.max(i + 1);
        } else {
            i += 1;
        }
    }
    out
}

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
        // the test ended.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_reports_are_recognised() {
        assert_eq!(splat_kind("[   12.3] WARNING: CPU: 1 PID: 7 at mm/memory.c:1 f+0x1"), Some("WARNING".into()));
        assert_eq!(splat_kind("BUG: KASAN: slab-use-after-free in handle_mm_fault"), Some("KASAN".into()));
        assert_eq!(splat_kind("xyz[ 3.1] Oops: general protection fault"), Some("Oops".into()));
        assert_eq!(splat_kind("[    5.0] BUG: spinlock bad magic on CPU#0"), Some("BUG".into()));
        assert_eq!(splat_kind("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:"), Some("RCU stall".into()));
        assert_eq!(splat_kind("# [INFO] some test said WARNING: it is fine"), None);
        assert_eq!(splat_kind("ok 3 Basic COW after fork() with base page"), None);
    }

    #[test]
    fn kselftest_directives_are_moved_after_the_description() {
        let t =
            "ok 1 fine\nok 159 # XFAIL Leak from parent\nok 638 # SKIP MADV_COLLAPSE failed\nnot ok 7 # TODO later\n";
        assert_eq!(
            normalise_directives(t),
            "ok 1 fine\nok 159 Leak from parent # XFAIL\nok 638 MADV_COLLAPSE failed # SKIP\nnot ok 7 later # TODO\n"
        );
    }

    #[test]
    fn a_plan_printed_last_is_read_first() {
        let t = "TAP version 13\n# running ./a\nok 1 a\n# b\nnot ok 2 b # exit=1\n# SUMMARY: PASS=1\n1..2\n";
        assert_eq!(
            plan_first(t),
            "TAP version 13\n1..2\n# running ./a\nok 1 a\n# b\nnot ok 2 b # exit=1\n# SUMMARY: PASS=1\n"
        );
        // A plan already first, and nested plans, stay where they are.
        let first = "TAP version 13\n1..2\nok 1 a\n# 1..5\nok 2 b\n";
        assert_eq!(plan_first(first), first);
    }

    #[test]
    fn a_runners_programs_give_their_own_cases() {
        let log = "TAP version 13\n# -----\n# running ./cow\n# -----\n# TAP version 13\n# 1..3\n\
                   # # [RUN] a\n# ok 1 Basic COW with base page\n# ok 2 with THP # SKIP no THP\n\
                   # not ok 3 with hugetlb\n# # Totals: pass:1\n# [FAIL]\nnot ok 1 cow # exit=1\n\
                   # running ./gup_test -u\n# ok 1 - fine\n# ok 2 # XFAIL known\n# [PASS]\nok 2 gup_test -u\n\
                   # SUMMARY: PASS=1\n# ok 9 not in a program\n";
        let lines: Vec<String> = log.lines().map(str::to_string).collect();
        let got: Vec<(String, String)> = runner_subcases(&lines).into_iter().map(|c| (c.name, c.status)).collect();
        let want = [
            ("cow: 1", "PASS"),
            ("cow: 2", "SKIP"),
            ("cow: 3", "FAIL"),
            ("gup_test -u: 1", "PASS"),
            ("gup_test -u: 2", "SKIP"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }

    #[test]
    fn a_report_is_one_splat_with_its_lines() {
        let log = [
            "a",
            "BUG: unable to handle page fault",
            "RIP: x",
            "Kernel panic - not syncing: Fatal exception",
            "---[ end Kernel panic ]---",
            "b",
        ];
        let s = find_splats(&log);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].line, 2);
        assert!(s[0].excerpt.ends_with("---[ end Kernel panic ]---"));
    }
}
