//! `make check`: what a maintainer or a build bot checks on each patch of
//! the series, and on the series as a whole for other architectures.
//!
//! The walk (`check/walk.rs`): for each commit after `base` the work tree is
//! checked out (detached) and gets checkpatch --strict and the `Fixes:`
//! check (`check/checkpatch.rs`), get_maintainer.pl, `make rustfmtcheck` (when
//! the patch touches Rust), a build of the `c` and the `rust` variant (the
//! series' option off and on; CLIPPY=1, and any compiler warning is red;
//! skipped for a patch that changes nothing the kernel build reads) and
//! `make rustdoc` (when it touches a documented crate: rust/kernel/,
//! rust/macros/, rust/ffi.rs). The builds use the same folders as `make
//! test`, so the last one leaves its kernels built, and ccache makes a
//! second walk cheap. Then, on the tip of the series, in the tip checkout
//! ([`crate::tip`]): an arm64 build with the option on, and
//! `arch/<arch>/mm/fault.o` of the other users of the shared fault tail
//! (`check/arches.rs`); and `make htmldocs` of the documentation the series
//! touches (`check/docs.rs`).

use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::base::Base;
use crate::build;
use crate::cmd;
use crate::layout::Layout;
use crate::results::Status;
use crate::setup::Toolchain;
use crate::tip::Tip;

mod arches;
mod checkpatch;
mod docs;
mod walk;

pub use checkpatch::{parse_checkpatch, parse_known_commits, unknown_commits, upstream_id, KnownCommit};

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
        Scope::All | Scope::Patches => walk::walk(layout, tc, base, &logs, &mail)?,
        Scope::Series | Scope::Docs => Vec::new(),
    };
    if scope != Scope::Patches {
        eprintln!("lab: check {base} series: other architectures, documentation");
        let tip = Tip::checkout(layout, base, &format!("checking the {base} series at its tip"))?;
        let mut cells =
            if scope == Scope::Docs { Vec::new() } else { arches::check_arches(layout, tc, base, tip.path(), &logs)? };
        cells.push(docs::check_docs(layout, tc, base, tip.path(), &logs)?);
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
