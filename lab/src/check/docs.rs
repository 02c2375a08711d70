//! The documentation the series touches: `make htmldocs` of its folders,
//! and kernel-doc on the files it changes, against base.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::Path;
use std::time::Instant;

use super::{cell, not_applicable, run_to_log, Cell};
use crate::base::Base;
use crate::cmd;
use crate::git::{git, series_files, BASE_TAG};
use crate::layout::Layout;
use crate::results::Status;
use crate::setup::Toolchain;

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
pub(super) fn check_docs(layout: &Layout, tc: &Toolchain, base: Base, tree: &Path, logs: &Path) -> Result<Cell> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
