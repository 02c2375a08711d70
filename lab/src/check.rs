//! `make check`: what a maintainer or a build bot checks on each patch of
//! the series, and on the series as a whole for other architectures.
//!
//! For each commit after `base` the work tree is checked out (detached) and
//! gets checkpatch --strict, get_maintainer.pl, `make rustfmtcheck` (when
//! the patch touches Rust), a build of the `c` and the `rust` variant (the
//! series' option off and on; CLIPPY=1, and any compiler warning is red;
//! skipped for a patch that changes nothing the kernel build reads)
//! and `make rustdoc` (when it touches a documented crate: rust/kernel/,
//! rust/macros/, rust/ffi.rs). The builds use the same
//! folders as `make test`, so the last one leaves its kernels built, and
//! ccache makes a second walk cheap. Then, on the tip of the series: an
//! arm64 build with the option on, and `arch/<arch>/mm/fault.o` of
//! powerpc, s390, riscv and arm, the other users of the shared fault tail;
//! and `make htmldocs` of the documentation the series touches.

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::Serialize;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::LazyLock;
use std::time::Instant;

use crate::arch::Arch;
use crate::base::Base;
use crate::build;
use crate::cmd;
use crate::config::{self, Kernel};
use crate::git::{git, series_files, BASE_TAG};
use crate::layout::Layout;
use crate::lock::FolderLock;
use crate::maintainers::{get_maintainer, parse_maintainers};
use crate::results::Status;
use crate::setup::Toolchain;
use crate::tip::{Tip, WALKED};
use crate::variant::Variant;

/// One cell of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Cell {
    pub check: String,
    pub status: Status,
    /// A short explanation; the log has the rest.
    pub detail: String,
    pub log: Option<PathBuf>,
    pub secs: f64,
}

/// One row: a patch of the series, or the series as a whole.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// `01`..`NN`, or `series`.
    pub name: String,
    pub subject: String,
    pub cells: Vec<Cell>,
}

/// The per-patch checks, in table order.
pub const PATCH_CHECKS: &[&str] = &["checkpatch", "maintainers", "rustfmt", "build-c", "build-rust", "rustdoc"];

/// checkpatch.pl's closing count.
static CHECKPATCH_TOTAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"total: (\d+) errors, (\d+) warnings, (\d+) checks").expect("valid regex"));

/// Reads checkpatch.pl's output: `(errors, warnings, checks)` and the
/// first line of each message.
pub fn parse_checkpatch(out: &str) -> Option<((u32, u32, u32), Vec<String>)> {
    let c = CHECKPATCH_TOTAL.captures(out)?;
    let n = |i: usize| c[i].parse().unwrap_or(u32::MAX);
    let msgs = out
        .lines()
        .filter(|l| l.starts_with("ERROR:") || l.starts_with("WARNING:") || l.starts_with("CHECK:"))
        .map(str::to_string)
        .collect();
    Some(((n(1), n(2), n(3)), msgs))
}

/// Files a commit changes.
/// A commit a Fixes: tag may name (config/known-commits).
#[derive(Debug, PartialEq)]
pub struct KnownCommit {
    pub id: String,
    pub subject: String,
}

/// Reads config/known-commits: `<40-digit id> <subject>` lines, `#`
/// comments and blank lines.
pub fn parse_known_commits(text: &str) -> Result<Vec<KnownCommit>> {
    let mut known = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, subject) = line.split_once(' ').unwrap_or((line, ""));
        if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || subject.trim().is_empty() {
            bail!("config/known-commits line {}: expected `<40-digit id> <subject>`, got `{line}`", n + 1);
        }
        known.push(KnownCommit { id: id.to_ascii_lowercase(), subject: subject.trim().to_string() });
    }
    Ok(known)
}

/// The commits a patch names that `known` does not hold, each with what is
/// wrong: its Fixes: tags (an id of at least 12 digits that starts a known
/// id, and that commit's subject) and, for a backport, its `commit <id>
/// upstream.` line (the full id of a known commit whose subject is the
/// patch's own, as stable backports keep it).
pub fn unknown_commits(patch: &str, known: &[KnownCommit]) -> Vec<String> {
    let mut bad = unknown_fixes(patch, known);
    let message = patch.lines().take_while(|l| *l != "---");
    for line in message.filter(|l| l.starts_with("commit ") && l.contains(" upstream")) {
        let Some(id) = upstream_id(line) else {
            bad.push(format!("`{line}`: not `commit <40-digit id> upstream.`"));
            continue;
        };
        match known.iter().find(|k| k.id == id) {
            None => bad.push(format!(
                "`{line}`: {id} is not in config/known-commits; check it in mainline \
                 (git log -1 --format='%H %s' {id}) and add it"
            )),
            Some(k) if crate::tree::mail_subject(patch).as_deref() != Some(k.subject.as_str()) => bad.push(format!(
                "`{line}`: the patch's subject is not \"{}\", the upstream commit's in config/known-commits",
                k.subject
            )),
            Some(_) => {}
        }
    }
    bad
}

/// The upstream id a backport's `commit <40-digit id> upstream.` line
/// names, lower case; None for any other line.
pub fn upstream_id(line: &str) -> Option<String> {
    static UPSTREAM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^commit ([0-9a-fA-F]{40}) upstream\.$").unwrap());
    UPSTREAM.captures(line.trim_end()).map(|c| c[1].to_ascii_lowercase())
}

/// The Fixes: tags of a patch that name no commit of `known` (by an id of
/// at least 12 digits that starts a known id, and that commit's subject),
/// each with what is wrong.
fn unknown_fixes(patch: &str, known: &[KnownCommit]) -> Vec<String> {
    static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"^Fixes: ([0-9a-fA-F]{12,40}) \("(.*)"\)$"#).unwrap());
    let mut bad = Vec::new();
    // The tags are in the commit message, before the diffstat's `---`.
    for line in patch.lines().take_while(|l| *l != "---").filter(|l| l.starts_with("Fixes:")) {
        let Some(c) = TAG.captures(line) else {
            bad.push(format!("`{line}`: not `Fixes: <12+ digit id> (\"<subject>\")`"));
            continue;
        };
        let (id, subject) = (c[1].to_ascii_lowercase(), &c[2]);
        match known.iter().find(|k| k.id.starts_with(&id)) {
            None => bad.push(format!(
                "`{line}`: {id} is not in config/known-commits; check it in mainline \
                 (git log -1 --format='%H %s' {id}) and add it"
            )),
            Some(k) if k.subject != subject => {
                bad.push(format!("`{line}`: {} is \"{}\" in config/known-commits", k.id, k.subject))
            }
            Some(_) => {}
        }
    }
    bad
}

/// Whether the kernel build reads `file`: everything but the selftests and
/// other tools, MAINTAINERS and the reStructuredText documentation
/// (Documentation/Kconfig is sourced by the top Kconfig, so only .rst).
fn kernel_build_reads(file: &str) -> bool {
    !(file.starts_with("tools/")
        || file == "MAINTAINERS"
        || (file.starts_with("Documentation/") && file.ends_with(".rst")))
}

fn changed_files(tree: &Path, commit: &str) -> Result<Vec<String>> {
    let out = cmd::output(git(tree).args(["diff-tree", "--no-commit-id", "--name-only", "-r", commit]))?;
    Ok(out.lines().map(str::to_string).collect())
}

/// The files `commit` adds.
fn added_files(tree: &Path, commit: &str) -> Result<Vec<String>> {
    let out =
        cmd::output(git(tree).args(["diff-tree", "--no-commit-id", "--name-only", "--diff-filter=A", "-r", commit]))?;
    Ok(out.lines().map(str::to_string).collect())
}

/// Runs `c` with its output in `log`; returns whether it succeeded and its
/// output.
fn run_to_log(c: &mut Command, log: &Path) -> (bool, String) {
    let mut text = String::new();
    let ok = cmd::run_logged(c, log, |l| {
        text.push_str(l);
        text.push('\n');
    })
    .is_ok();
    (ok, text)
}

/// The first line of a failed command's error that names the error.
fn first_error(e: &anyhow::Error, otherwise: &str) -> String {
    let msg = format!("{e:#}");
    msg.lines().find(|l| cmd::looks_like_error(l)).unwrap_or(otherwise).trim().to_string()
}

/// A cell from a check's outcome, timed from `start`.
fn cell(check: &str, status: Status, detail: String, log: Option<PathBuf>, start: Instant) -> Cell {
    Cell { check: check.into(), status, detail, log, secs: start.elapsed().as_secs_f64() }
}

fn not_applicable(check: &str, why: &str) -> Cell {
    Cell { check: check.into(), status: Status::Skip, detail: why.into(), log: None, secs: 0.0 }
}

/// A cell for a kernel build: red on failure or on any warning.
fn build_cell(check: &str, res: Result<build::Built>, start: Instant) -> Cell {
    match res {
        Ok(b) if b.warnings.is_empty() => cell(check, Status::Pass, format!("{} steps", b.steps), None, start),
        Ok(b) => {
            cell(check, Status::Fail, format!("{} warnings, first: {}", b.warnings.len(), b.warnings[0]), None, start)
        }
        Err(e) => cell(check, Status::Fail, first_error(&e, "build failed"), None, start),
    }
}

/// The work tree's branch, restored when the walk ends, however it ends.
struct Restore {
    tree: PathBuf,
    branch: String,
}

impl Drop for Restore {
    fn drop(&mut self) {
        let ok = git(&self.tree).args(["checkout", "-q", &self.branch]).status().is_ok_and(|s| s.success());
        if !ok {
            eprintln!(
                "lab: could not return {} to branch {}: run `git -C {} checkout {}`",
                self.tree.display(),
                self.branch,
                self.tree.display(),
                self.branch
            );
        }
    }
}

/// Set by SIGINT or SIGTERM during the walk.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Catches SIGINT and SIGTERM so that the walk stops at the next step and
/// the work tree goes back to its branch. A handler (not SIG_IGN) is reset
/// in the children, so make and the compilers still stop at once.
fn catch_interrupts() {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` only stores to an atomic, which is
        // async-signal-safe.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
}

/// Ends the walk between two steps of a patch once SIGINT or SIGTERM came:
/// the step that was running got the signal too, and the patch's other
/// steps must not run after it.
fn stop_if_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Puts back the default action of SIGINT and SIGTERM.
fn default_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: Restoring the default action has no precondition.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// Runs every check; prints the table and returns whether all passed.
/// Which checks `run` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every patch, then the tip.
    All,
    /// Every patch: the walk alone (`make test` runs the tip's checks
    /// beside it, from the tip checkout).
    Patches,
    /// The tip's checks only: other architectures and documentation.
    Series,
    /// The documentation only.
    Docs,
}

/// Runs the checks of `scope` on the series of `base`; returns whether
/// every cell passed.
pub fn run(layout: &Layout, tc: &Toolchain, base: Base, scope: Scope) -> Result<bool> {
    if crate::tree::read_series(&layout.patches(base))?.is_empty() {
        println!("make check: the {base} series is empty ({}): nothing to check", layout.patches(base).display());
        return Ok(true);
    }
    let dir = layout.base_dir(base).join("check");
    let logs = dir.join("logs");
    let mail = dir.join("mail");
    for d in [&logs, &mail] {
        // A partial run keeps the logs of the last whole one.
        if scope == Scope::All {
            let _ = fs::remove_dir_all(d);
        }
        fs::create_dir_all(d)?;
    }
    let mut rows = match scope {
        Scope::All | Scope::Patches => walk(layout, tc, base, &logs, &mail)?,
        Scope::Series | Scope::Docs => Vec::new(),
    };
    if scope != Scope::Patches {
        eprintln!("lab: check {base} series: other architectures, documentation");
        let tip = Tip::checkout(layout, base, &format!("checking the {base} series at its tip"))?;
        let mut cells =
            if scope == Scope::Docs { Vec::new() } else { check_arches(layout, tc, base, tip.path(), &logs)? };
        cells.push(check_docs(layout, tc, base, tip.path(), &logs)?);
        rows.push(Row { name: "series".into(), subject: "the tip: other architectures, documentation".into(), cells });
    }
    let text = table(&rows);
    print!("{text}");
    // A partial check keeps the whole one's results.
    let results = match scope {
        Scope::All => "results.json",
        Scope::Patches => "results-patches.json",
        Scope::Series => "results-series.json",
        Scope::Docs => "results-docs.json",
    };
    fs::write(dir.join(results), serde_json::to_string_pretty(&rows)?)?;
    let failed = rows.iter().flat_map(|r| &r.cells).filter(|c| c.status.failed()).count();
    println!("logs: {}", logs.display());
    if failed == 0 {
        println!("make check: {base}: every cell passed");
    } else {
        println!("make check: {base}: {failed} red cells");
    }
    Ok(failed == 0)
}

/// Checks out each patch of the series in the work tree in turn and checks
/// it; returns a row per patch.
fn walk(layout: &Layout, tc: &Toolchain, base: Base, logs: &Path, mail: &Path) -> Result<Vec<Row>> {
    let tree = layout.tree(base);
    // No other lab process may apply the series in the work tree, or build
    // from it, until the branch is back (tree::apply takes this lock). The
    // tip's checks build in the tip checkout, as every kernel the walk
    // does not build.
    let walk_lock = FolderLock::acquire(&tree, &format!("checking each patch of the {base} series"))?;
    let dirty = crate::git::uncommitted(&tree)?;
    if !dirty.trim().is_empty() {
        bail!(
            "{} has uncommitted changes:\n{dirty}make check checks out each commit of the series there; \
             commit the changes (then `make export`) or stash them, and run it again",
            tree.display()
        );
    }
    let branch = cmd::output(git(&tree).args(["symbolic-ref", "--short", "HEAD"]))
        .context("the work tree is not on a branch (an interrupted `make check`?): check out `main` first")?
        .trim()
        .to_string();
    let commits: Vec<String> = cmd::output(git(&tree).args(["rev-list", "--reverse", &format!("{BASE_TAG}..HEAD")]))?
        .lines()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    {
        let _restore = Restore { tree: tree.clone(), branch: branch.clone() };
        catch_interrupts();
        for (i, commit) in commits.iter().enumerate() {
            if INTERRUPTED.load(Ordering::SeqCst) {
                bail!("interrupted; {} is back on {branch}", tree.display());
            }
            let name = format!("{:02}", i + 1);
            let subject = cmd::output(git(&tree).args(["log", "-1", "--format=%s", commit]))?.trim().to_string();
            eprintln!("lab: check {base} {name}/{:02}: {subject}", commits.len());
            cmd::output(git(&tree).args(["checkout", "-q", "--detach", commit]))?;
            let cells = match check_patch(layout, tc, base, commit, &name, logs, mail, i == 0) {
                Err(_) if INTERRUPTED.load(Ordering::SeqCst) => {
                    bail!("interrupted; {} is back on {branch}", tree.display())
                }
                cells => cells?,
            };
            rows.push(Row { name, subject, cells });
        }
    }
    drop(walk_lock);
    default_interrupts();
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted; {} is back on {branch}", tree.display());
    }
    Ok(rows)
}

/// The checks of one commit, checked out in the work tree.
#[allow(clippy::too_many_arguments)]
fn check_patch(
    layout: &Layout,
    tc: &Toolchain,
    base: Base,
    commit: &str,
    name: &str,
    logs: &Path,
    mail: &Path,
    first: bool,
) -> Result<Vec<Cell>> {
    let tree = layout.tree(base);
    let files = changed_files(&tree, commit)?;
    // A patch that changes only selftests, MAINTAINERS or .rst files leaves
    // the kernel sources as the previous patch had them, and that patch's
    // builds stand for this one (about 5 minutes saved per such patch on a
    // cold CI machine). The first patch has no previous build.
    let same_kernel = !first && !files.iter().any(|f| kernel_build_reads(f));
    let mut cells = Vec::new();

    let patch = mail.join(format!("{name}.patch"));
    fs::write(&patch, cmd::output(git(&tree).args(["format-patch", "-1", "--stdout", commit]))?)?;

    let start = Instant::now();
    let log = logs.join(format!("{name}-checkpatch.log"));
    let mut c = tc.command(tree.join("scripts/checkpatch.pl"));
    // UNKNOWN_COMMIT_ID: the tree is a release tarball with no upstream
    // history, so checkpatch.pl cannot find the commit a Fixes: tag names
    // and warns about every one; unknown_commits() checks them instead,
    // against config/known-commits. FILE_PATH_CHANGES: checkpatch.pl asks
    // about MAINTAINERS for every new file, whether or not a section
    // covers it; the maintainers cell below checks that one does.
    c.current_dir(&tree).args(["--strict", "--ignore", "UNKNOWN_COMMIT_ID,FILE_PATH_CHANGES"]).arg(&patch);
    let (_, out) = run_to_log(&mut c, &log);
    let broken = out.lines().find(|l| l.starts_with("Traceback") || l.contains("Error:"));
    let known = parse_known_commits(&fs::read_to_string(layout.config().join("known-commits")).unwrap_or_default())?;
    let fixes = unknown_commits(&fs::read_to_string(&patch)?, &known);
    cells.push(match parse_checkpatch(&out) {
        _ if !fixes.is_empty() => cell("checkpatch", Status::Fail, fixes.join("; "), Some(log), start),
        _ if broken.is_some() => cell(
            "checkpatch",
            Status::Fail,
            format!("a checkpatch helper failed: {}", broken.unwrap_or_default()),
            Some(log),
            start,
        ),
        Some(((0, 0, 0), _)) => {
            cell("checkpatch", Status::Pass, "0 errors, 0 warnings, 0 checks".into(), Some(log), start)
        }
        Some(((e, w, k), msgs)) => cell(
            "checkpatch",
            Status::Fail,
            format!("{e} errors, {w} warnings, {k} checks: {}", msgs.first().map_or("", |m| m.as_str())),
            Some(log),
            start,
        ),
        None => cell("checkpatch", Status::Fail, "checkpatch.pl printed no total".into(), Some(log), start),
    });

    stop_if_interrupted()?;
    let start = Instant::now();
    let log = logs.join(format!("{name}-maintainers.log"));
    let (ok, out) = run_to_log(&mut get_maintainer(&tc.root, &tree, &patch), &log);
    let r = parse_maintainers(&out);
    fs::write(mail.join(format!("{name}.recipients.json")), serde_json::to_string_pretty(&r)?)?;
    // Each patch must reach a maintainer and a subsystem's list of its own.
    // linux-mm is not required of every patch: fs/userfaultfd.c has no mm
    // entry in 6.12's MAINTAINERS, and the series as a whole goes to
    // linux-mm through its own entry.
    // And every file the patch adds has a section of its own (not only
    // THE REST), so that later patches to it reach someone.
    let mut orphans = Vec::new();
    for f in added_files(&tree, commit)? {
        if crate::maintainers::sections(&tc.root, &tree, &f)?.is_empty() {
            orphans.push(f);
        }
    }
    cells.push(if !orphans.is_empty() {
        cell(
            "maintainers",
            Status::Fail,
            format!("in no MAINTAINERS section: {} (add an F: line)", orphans.join(", ")),
            Some(log),
            start,
        )
    } else if ok && !r.to.is_empty() && !r.lists.is_empty() {
        cell("maintainers", Status::Pass, format!("To {}, Cc {}", r.to.len(), r.cc.len()), Some(log), start)
    } else {
        cell("maintainers", Status::Fail, "no maintainer, or no subsystem list in Cc".into(), Some(log), start)
    });

    let configs = config::configs(layout, base)?;
    for config in WALKED {
        stop_if_interrupted()?;
        if same_kernel {
            cells.push(not_applicable(
                &format!("build-{config}"),
                "no file the kernel build reads: the previous patch's build stands",
            ));
            continue;
        }
        if !configs.iter().any(|c| c == config) {
            cells.push(not_applicable(&format!("build-{config}"), &format!("{base} has no {config} configuration")));
            continue;
        }
        let start = Instant::now();
        let v = Variant::new(base, Arch::X86_64, config);
        let mut k = Kernel::of(layout, &v)?;
        k.lenient = true;
        let res = build::build_kernel(layout, tc, &k);
        let mut bc = build_cell(&format!("build-{config}"), res, start);
        bc.log = Some(build::build_log(layout, &v));
        if let Some(l) = &bc.log {
            let _ = fs::copy(l, logs.join(format!("{name}-build-{config}.log")));
        }
        cells.push(bc);
    }

    let rust_kbuild = layout.kbuild(&Variant::new(base, Arch::X86_64, "rust"));
    let rust_target = |check: &str, target: &str, applies: bool, why_not: &str| {
        if !applies {
            return not_applicable(check, why_not);
        }
        let start = Instant::now();
        let log = logs.join(format!("{name}-{check}.log"));
        let mut c = build::kmake(layout, tc, base, &tree, &rust_kbuild, "x86_64");
        c.arg(target);
        let (ok, out) = run_to_log(&mut c, &log);
        // rustfmtcheck prints "Diff in <file>"; rustdoc warns or errs.
        let bad = out.lines().find(|l| l.starts_with("Diff in") || l.contains("warning:") || l.contains("error:"));
        match bad {
            None if ok => cell(check, Status::Pass, format!("make {target}: clean"), Some(log), start),
            _ => cell(check, Status::Fail, bad.unwrap_or("see the log").to_string(), Some(log), start),
        }
    };
    let has_rust = configs.iter().any(|c| c == "rust");
    stop_if_interrupted()?;
    cells.push(rust_target("rustfmt", "rustfmtcheck", has_rust && files.iter().any(|f| f.ends_with(".rs")), "no Rust"));
    // `make rustdoc` documents the kernel, macros, ffi and compiler_builtins
    // crates (and core, again each time: about 40 s); helpers and bindings
    // have no docs of their own.
    let documented = files.iter().any(|f| {
        ["rust/kernel/", "rust/macros/", "rust/ffi.rs", "rust/compiler_builtins.rs"].iter().any(|d| f.starts_with(d))
    });
    stop_if_interrupted()?;
    cells.push(rust_target("rustdoc", "rustdoc", has_rust && documented, "no change to a documented crate"));
    // The check wants rustdoc's warnings, not its pages: about 480 MB
    // (core's among them) that make test's disk can spare better. `make
    // rustdoc` in the kernel makes them again.
    let _ = fs::remove_dir_all(rust_kbuild.join("Documentation/output/rust"));
    Ok(cells)
}

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
fn check_arches(layout: &Layout, tc: &Toolchain, base: Base, tree: &Path, logs: &Path) -> Result<Vec<Cell>> {
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

/// The documentation folders (under Documentation/) that show what the
/// series changes: those of the pages it changes, and those whose pages
/// pull kernel-doc from a file it changes.
fn docs_dirs(tree: &Path, ours: &[String]) -> Result<Vec<String>> {
    let mut pages: Vec<String> =
        ours.iter().filter(|f| f.starts_with("Documentation/") && f.ends_with(".rst")).cloned().collect();
    for f in ours.iter().filter(|f| !f.starts_with("Documentation/")) {
        // `git grep` exits 1 when nothing matches.
        if let Ok(out) =
            cmd::output(git(tree).args(["grep", "-l", &format!("kernel-doc:: {f}"), "--", "Documentation"]))
        {
            pages.extend(out.lines().map(str::to_string));
        }
    }
    let mut dirs: Vec<String> = pages
        .iter()
        .filter_map(|p| p.strip_prefix("Documentation/")?.split_once('/').map(|(d, _)| d.to_string()))
        .collect();
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

/// Warnings of `scripts/kernel-doc -none -Wall` on `file`.
fn kernel_doc_warnings(tc: &Toolchain, tree: &Path, file: &Path) -> Result<Vec<String>> {
    let out = tc
        .command(tree.join("scripts/kernel-doc"))
        .args(["-none", "-Wall"])
        .arg(file)
        .output()
        .context("cannot run scripts/kernel-doc")?;
    if !out.status.success() {
        bail!(
            "scripts/kernel-doc failed on {} ({}): {}",
            file.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).lines().next().unwrap_or("")
        );
    }
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok(text.lines().filter(|l| l.contains("warning:")).map(str::to_string).collect())
}

/// The lines of a docs build that warn about one of the `added` files:
/// naming it, or, for a page, naming it as a toctree does
/// ("Documentation/mm/fault_lock.rst" is "mm/fault_lock" there).
fn warnings_about<'a>(text: &'a str, added: &[String]) -> Vec<&'a str> {
    let names: Vec<String> = added
        .iter()
        .flat_map(|f| {
            let page = f.strip_prefix("Documentation/").and_then(|p| p.strip_suffix(".rst")).map(str::to_string);
            std::iter::once(f.clone()).chain(page)
        })
        .collect();
    text.lines()
        .filter(|l| l.to_ascii_lowercase().contains("warning") && names.iter().any(|n| l.contains(n.as_str())))
        .collect()
}

/// `make htmldocs` for the documentation folders the series touches, red
/// on a warning the series adds or on a page of the series not rendered.
///
/// A restricted build (SPHINXDIRS) warns about references into folders it
/// did not build, in the series' files too (mm/index.rst), so a warning
/// counts when it names or mentions a file the series adds. The kernel-doc
/// comments of the files it changes are compared with base directly:
/// kernel-doc's warnings on each, before and after.
fn check_docs(layout: &Layout, tc: &Toolchain, base: Base, tree: &Path, logs: &Path) -> Result<Cell> {
    let start = Instant::now();
    let ours = series_files(tree)?;
    let dirs = docs_dirs(tree, &ours)?;
    if dirs.is_empty() {
        return Ok(not_applicable("htmldocs", "no documentation is changed or pulls kernel-doc from the series"));
    }
    let what = format!("SPHINXDIRS=\"{}\"", dirs.join(" "));
    let added: Vec<String> =
        cmd::output(git(tree).args(["diff", "--name-only", "--diff-filter=A", &format!("{BASE_TAG}..HEAD")]))?
            .lines()
            .map(str::to_string)
            .collect();

    // kernel-doc on each changed source file, against its base version.
    let scratch = layout.base_dir(base).join("tmp").join("kernel-doc");
    fs::create_dir_all(&scratch)?;
    for f in ours.iter().filter(|f| !f.starts_with("Documentation/") && (f.ends_with(".c") || f.ends_with(".h"))) {
        let now = match kernel_doc_warnings(tc, tree, &tree.join(f)) {
            Ok(w) => w,
            Err(e) => return Ok(cell("htmldocs", Status::Fail, format!("{e:#}"), None, start)),
        };
        let before = match cmd::output(git(tree).args(["show", &format!("{BASE_TAG}:{f}")])) {
            Ok(text) => {
                let old = scratch.join(f.replace('/', "_"));
                fs::write(&old, text)?;
                kernel_doc_warnings(tc, tree, &old)?.len()
            }
            Err(_) => 0,
        };
        if now.len() > before {
            return Ok(cell(
                "htmldocs",
                Status::Fail,
                format!("kernel-doc: {f} has {} warnings, {before} at base: {}", now.len(), now[0]),
                None,
                start,
            ));
        }
    }
    let _ = fs::remove_dir_all(&scratch);

    let out = layout.kbuild_named(base, "htmldocs");
    let _ = fs::remove_dir_all(out.join("Documentation/output"));
    fs::create_dir_all(&out)?;
    let log = logs.join("series-htmldocs.log");
    let _ = fs::remove_file(&log);
    let mut c = tc.command("make");
    c.arg("-C").arg(tree).arg(format!("O={}", out.display()));
    c.arg(format!("SPHINXDIRS={}", dirs.join(" "))).arg("htmldocs");
    let (ok, text) = run_to_log(&mut c, &log);
    if !ok {
        let first = text.lines().find(|l| cmd::looks_like_error(l) || l.contains("ERROR")).unwrap_or("see the log");
        return Ok(cell("htmldocs", Status::Fail, format!("{what}: {first}"), Some(log), start));
    }
    let warnings = warnings_about(&text, &added);
    // Each page the series adds was rendered.
    let html = out.join("Documentation/output");
    let unrendered = added
        .iter()
        .filter_map(|f| f.strip_prefix("Documentation/")?.strip_suffix(".rst"))
        .map(|page| html.join(format!("{page}.html")))
        .find(|file| !file.is_file());
    let failure = match (warnings.first(), unrendered) {
        (Some(w), _) => Some(format!("{what}: {} warnings about the series' pages, first: {w}", warnings.len())),
        (None, Some(file)) => Some(format!("{what}: a page the series adds was not rendered to {}", file.display())),
        (None, None) => None,
    };
    if let Some(detail) = failure {
        return Ok(cell("htmldocs", Status::Fail, detail, Some(log), start));
    }
    Ok(cell("htmldocs", Status::Pass, format!("{what}: rendered, no new warning"), Some(log), start))
}

/// The patch x check table, the series' checks, then the detail of every
/// red cell.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::new();
    let widths: Vec<usize> = PATCH_CHECKS.iter().map(|c| c.len().max(4)).collect();
    let _ = write!(s, "{:6}", "patch");
    for (c, w) in PATCH_CHECKS.iter().zip(&widths) {
        let _ = write!(s, "  {c:w$}");
    }
    let _ = writeln!(s, "  subject");
    for r in rows.iter().filter(|r| r.name != "series") {
        let _ = write!(s, "{:6}", r.name);
        for (c, w) in PATCH_CHECKS.iter().zip(&widths) {
            let label = match r.cells.iter().find(|x| x.check == *c) {
                Some(x) if x.status == Status::Skip => "-",
                Some(x) => x.status.label(),
                None => "",
            };
            let _ = write!(s, "  {label:w$}");
        }
        let _ = writeln!(s, "  {}", r.subject);
    }
    for r in rows.iter().filter(|r| r.name == "series") {
        let _ = writeln!(s, "\n{}:", r.subject);
        let w = r.cells.iter().map(|c| c.check.len()).max().unwrap_or(0);
        for c in &r.cells {
            let _ = writeln!(s, "  {:w$}  {:4}  {:>5.0}s  {}", c.check, c.status.label(), c.secs, c.detail);
        }
    }
    for r in rows {
        for c in r.cells.iter().filter(|c| c.status.failed()) {
            let _ = writeln!(s, "\n{} {}: {}", r.name, c.check, c.detail);
            if let Some(l) = &c.log {
                let _ = writeln!(s, "  log: {}", l.display());
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpatch_totals() {
        let out = "WARNING: added, moved or deleted file(s), does MAINTAINERS need updating?\n#12: \n\n\
                   total: 0 errors, 1 warnings, 0 checks, 40 lines checked\n";
        let (t, msgs) = parse_checkpatch(out).unwrap();
        assert_eq!(t, (0, 1, 0));
        assert_eq!(msgs.len(), 1);
        assert!(parse_checkpatch("no total here").is_none());
    }

    #[test]
    fn docs_warnings_count_only_about_what_the_series_adds() {
        let added = vec!["Documentation/mm/fault_lock.rst".to_string(), "include/linux/fault_lock.h".to_string()];
        let log = "/t/Documentation/mm/index.rst:5: WARNING: undefined label: 'memory_allocation'\n\
                   /t/Documentation/mm/fault_lock.rst:12: WARNING: Title underline too short.\n\
                   /t/Documentation/mm/index.rst:10: WARNING: toctree contains reference to nonexisting document 'mm/fault_lock'\n\
                   /t/include/linux/fault_lock.h:60: warning: Function parameter or struct member 'vma' not described\n\
                   /t/Documentation/mm/fault_lock.rst:3: INFO: nothing to see\n";
        let w = warnings_about(log, &added);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w.iter().all(|l| !l.contains("memory_allocation")));
    }

    #[test]
    fn builds_skip_only_what_kbuild_never_reads() {
        for f in ["tools/testing/selftests/mm/vma_lock_faults.c", "MAINTAINERS", "Documentation/mm/fault_lock.rst"] {
            assert!(!kernel_build_reads(f), "{f}");
        }
        for f in ["Documentation/Kconfig", "mm/Kconfig", "include/linux/fault_lock.h", "rust/kernel/mm/fault.rs"] {
            assert!(kernel_build_reads(f), "{f}");
        }
    }

    #[test]
    fn fixes_tags_must_name_a_known_commit() {
        let known = parse_known_commits(
            "# comment\n\n29a22b9e08d70d6c9b075c12c47b6e895cb65cf0 mm: handle userfaults under VMA lock\n",
        )
        .unwrap();
        assert_eq!(known.len(), 1);
        let patch = |tag: &str| format!("Subject: [PATCH] x\n\nWhy.\n\n{tag}\nSigned-off-by: A <a@b>\n---\n f | 1 +\n");
        let good = patch("Fixes: 29a22b9e08d7 (\"mm: handle userfaults under VMA lock\")");
        assert!(unknown_fixes(&good, &known).is_empty());
        // The mm-unstable id of the same change: not the mainline one.
        let unknown = unknown_fixes(&patch("Fixes: 50b88b63e3e4 (\"mm: handle userfaults under VMA lock\")"), &known);
        assert!(unknown.len() == 1 && unknown[0].contains("not in config/known-commits"), "{unknown:?}");
        let subject =
            unknown_fixes(&patch("Fixes: 29a22b9e08d7 (\"mm: handle userfaults under the VMA lock\")"), &known);
        assert!(
            subject.len() == 1 && subject[0].contains("is \"mm: handle userfaults under VMA lock\""),
            "{subject:?}"
        );
        assert_eq!(unknown_fixes(&patch("Fixes: 29a22b9 (\"mm: handle userfaults under VMA lock\")"), &known).len(), 1);
        // Only the commit message counts, not a diff that adds such a line.
        assert!(unknown_fixes(&format!("{good}+Fixes: 0123456789ab (\"x\")\n"), &known).is_empty());
        assert!(parse_known_commits("29a22b9e08d7 short id\n").is_err());
        // The repository's own list parses.
        let ours = include_str!("../../config/known-commits");
        assert!(!parse_known_commits(ours).unwrap().is_empty());
    }

    #[test]
    fn backports_name_a_known_upstream_commit_with_its_subject() {
        let known =
            parse_known_commits("e7572e5deaf3bc36818f19ba35ac8e0c454c8bac rust: types: add `NotThreadSafe`\n").unwrap();
        let patch = |subject: &str, line: &str| {
            format!("Subject: [PATCH 03/14] {subject}\n\n{line}\n\nWhy.\n\nSigned-off-by: A <a@b>\n---\n f | 1 +\n")
        };
        let line = "commit e7572e5deaf3bc36818f19ba35ac8e0c454c8bac upstream.";
        assert!(unknown_commits(&patch("rust: types: add `NotThreadSafe`", line), &known).is_empty());
        // A subject that format-patch folded over two lines.
        let folded = patch("rust: types: add\n `NotThreadSafe`", line);
        assert!(unknown_commits(&folded, &known).is_empty(), "{:?}", unknown_commits(&folded, &known));
        let other = unknown_commits(&patch("rust: types: add a marker", line), &known);
        assert!(other.len() == 1 && other[0].contains("subject is not"), "{other:?}");
        let unknown = unknown_commits(&patch("x", "commit 0123456789abcdef0123456789abcdef01234567 upstream."), &known);
        assert!(unknown.len() == 1 && unknown[0].contains("not in config/known-commits"), "{unknown:?}");
        let short =
            unknown_commits(&patch("rust: types: add `NotThreadSafe`", "commit e7572e5deaf3 upstream."), &known);
        assert!(short.len() == 1 && short[0].contains("40-digit"), "{short:?}");
        // The repository's own 6.12 backports name known commits.
        let ours = parse_known_commits(include_str!("../../config/known-commits")).unwrap();
        for p in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../patches/6.12")).unwrap() {
            let text = std::fs::read_to_string(p.unwrap().path()).unwrap();
            assert!(unknown_commits(&text, &ours).is_empty(), "{:?}", unknown_commits(&text, &ours));
        }
    }

    #[test]
    fn maintainers_split() {
        let out = "Andrew Morton <akpm@linux-foundation.org> (maintainer:MEMORY MANAGEMENT)\n\
                   Miguel Ojeda <ojeda@kernel.org> (maintainer:RUST)\n\
                   Boqun Feng <boqun.feng@gmail.com> (reviewer:RUST)\n\
                   \"Matthew Wilcox (Oracle)\" <willy@infradead.org> (maintainer:PAGE CACHE)\n\
                   linux-mm@kvack.org (open list:MEMORY MANAGEMENT)\n\
                   linux-kernel@vger.kernel.org (open list)\n";
        let r = parse_maintainers(out);
        assert_eq!(r.to.len(), 4);
        assert_eq!(r.to[3], "\"Matthew Wilcox (Oracle)\" <willy@infradead.org>");
        assert_eq!(r.cc, vec!["linux-mm@kvack.org", "linux-kernel@vger.kernel.org"]);
        assert_eq!(r.lists, vec!["linux-mm@kvack.org"]);
        // The catch-all list alone is no subsystem's list.
        let r = parse_maintainers("linux-kernel@vger.kernel.org (open list)\n");
        assert!(r.lists.is_empty());
    }
}
