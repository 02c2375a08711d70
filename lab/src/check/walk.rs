//! The walk: each patch of the series checked out in the work tree in
//! turn, with checkpatch, get_maintainer.pl, the builds with the series'
//! option off and on, rustfmt and rustdoc; interrupted cleanly between
//! steps, and the branch put back however it ends.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use super::checkpatch::{parse_checkpatch, parse_known_commits, unknown_commits};
use super::{build_cell, cell, not_applicable, run_to_log, Cell, Row};
use crate::arch::Arch;
use crate::base::Base;
use crate::build;
use crate::cmd;
use crate::config::{self, Kernel};
use crate::git::{git, BASE_TAG};
use crate::layout::Layout;
use crate::lock::FolderLock;
use crate::maintainers::{get_maintainer, parse_maintainers};
use crate::results::Status;
use crate::setup::Toolchain;
use crate::tip::WALKED;
use crate::variant::Variant;

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

/// Checks out each patch of the series in the work tree in turn and checks
/// it; returns a row per patch.
pub(super) fn walk(layout: &Layout, tc: &Toolchain, base: Base, logs: &Path, mail: &Path) -> Result<Vec<Row>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_skip_only_what_kbuild_never_reads() {
        for f in ["tools/testing/selftests/mm/vma_lock_faults.c", "MAINTAINERS", "Documentation/mm/fault_lock.rst"] {
            assert!(!kernel_build_reads(f), "{f}");
        }
        for f in ["Documentation/Kconfig", "mm/Kconfig", "include/linux/fault_lock.h", "rust/kernel/mm/fault.rs"] {
            assert!(kernel_build_reads(f), "{f}");
        }
    }
}
