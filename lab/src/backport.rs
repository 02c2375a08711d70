//! Whether the 6.12 backport is still the mainline series (`lab backport`):
//! the Rust sources of both series compared at their tips, each difference
//! explained by config/6.12/rust-differences.
//!
//! A series' Rust sources are what its own commits do to `.rs` files: for
//! each file, the net diff from the last backport of an upstream commit
//! (a `commit <id> upstream.` line) that touches it, or from the base, to
//! the tip. The lines each series adds (and removes) are compared as
//! multisets, whitespace trimmed; a line that one series has and the other
//! lacks is a difference, and must be listed under its file in
//! config/6.12/rust-differences with the reason, which the backport patch
//! also gives in its bracketed note. An explanation that no longer matches
//! a difference is reported too, so that the list cannot go stale.

use crate::{
    base::Base,
    cmd,
    git::{git, BASE_TAG},
    layout::Layout,
};
use anyhow::{bail, Context, Result};
use std::{
    collections::{BTreeMap, HashSet},
    fmt::Write as _,
    fs,
    path::Path,
};

/// The differences one file may have, and why (one block of
/// config/6.12/rust-differences).
#[derive(Debug, PartialEq)]
pub struct Explained {
    pub file: String,
    pub reason: String,
    /// Lines only mainline's series has (`-` lines), trimmed.
    pub mainline: Vec<String>,
    /// Lines only the backport has (`+` lines), trimmed.
    pub backport: Vec<String>,
}

/// Reads config/6.12/rust-differences: `file <path> -- <reason>` starts a
/// block, whose `- <line>` and `+ <line>` lines are what mainline's series
/// and the backport have that the other does not; `#` comments and blank
/// lines are skipped.
pub fn parse_differences(text: &str) -> Result<Vec<Explained>> {
    let mut blocks: Vec<Explained> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = || format!("config/6.12/rust-differences line {}", n + 1);
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("file ") {
            let Some((file, reason)) = rest.split_once(" -- ") else {
                bail!("{}: expected `file <path> -- <reason>`, got `{line}`", at());
            };
            blocks.push(Explained {
                file: file.trim().into(),
                reason: reason.trim().into(),
                mainline: Vec::new(),
                backport: Vec::new(),
            });
            continue;
        }
        let Some(block) = blocks.last_mut() else {
            bail!("{}: a `-` or `+` line before any `file <path> -- <reason>` line", at());
        };
        match line.split_at_checked(1) {
            Some(("-", l)) => block.mainline.push(l.trim().into()),
            Some(("+", l)) => block.backport.push(l.trim().into()),
            _ => bail!("{}: expected `- <line>`, `+ <line>` or `file <path> -- <reason>`, got `{line}`", at()),
        }
    }
    Ok(blocks)
}

/// The lines a series' own commits add and remove in one file (net),
/// trimmed, as multisets.
#[derive(Debug, Default, PartialEq)]
pub struct Change {
    pub added: BTreeMap<String, usize>,
    pub removed: BTreeMap<String, usize>,
}

impl Change {
    /// Reads a unified diff of one file.
    pub fn from_diff(diff: &str) -> Change {
        let mut c = Change::default();
        for line in diff.lines().filter(|l| !l.starts_with("+++") && !l.starts_with("---")) {
            let side = match line.split_at_checked(1) {
                Some(("+", l)) => (&mut c.added, l),
                Some(("-", l)) => (&mut c.removed, l),
                _ => continue,
            };
            let l = side.1.trim();
            if !l.is_empty() {
                *side.0.entry(l.to_string()).or_default() += 1;
            }
        }
        c
    }
}

/// What `a` has more of than `b`, each line as often as it is in excess.
fn excess(a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>) -> Vec<String> {
    a.iter()
        .flat_map(|(l, &n)| std::iter::repeat_n(l.clone(), n.saturating_sub(b.get(l).copied().unwrap_or(0))))
        .collect()
}

/// Takes each of `lines` out of `explained` (one occurrence each); returns
/// those it could not.
fn unexplained(lines: Vec<String>, explained: &mut Vec<String>) -> Vec<String> {
    lines
        .into_iter()
        .filter(|l| match explained.iter().position(|e| e == l) {
            Some(i) => {
                explained.swap_remove(i);
                false
            }
            None => true,
        })
        .collect()
}

/// Compares the two series' changes of each file against the explanations;
/// returns every finding (an empty list: one design).
pub fn compare(
    mainline: &BTreeMap<String, Change>,
    backport: &BTreeMap<String, Change>,
    explained: &[Explained],
) -> Vec<String> {
    let mut findings = Vec::new();
    let files: std::collections::BTreeSet<&String> = mainline.keys().chain(backport.keys()).collect();
    let empty = Change::default();
    for file in files {
        let (m, b) = (mainline.get(file).unwrap_or(&empty), backport.get(file).unwrap_or(&empty));
        let mut only_m = excess(&m.added, &b.added);
        only_m.extend(excess(&b.removed, &m.removed));
        let mut only_b = excess(&b.added, &m.added);
        only_b.extend(excess(&m.removed, &b.removed));
        let mut ok_m: Vec<String> =
            explained.iter().filter(|e| &e.file == file).flat_map(|e| e.mainline.clone()).collect();
        let mut ok_b: Vec<String> =
            explained.iter().filter(|e| &e.file == file).flat_map(|e| e.backport.clone()).collect();
        for l in unexplained(only_m, &mut ok_m) {
            findings.push(format!("{file}: only mainline's series has `{l}`"));
        }
        for l in unexplained(only_b, &mut ok_b) {
            findings.push(format!("{file}: only the 6.12 backport has `{l}`"));
        }
        for l in ok_m.iter().map(|l| format!("- {l}")).chain(ok_b.iter().map(|l| format!("+ {l}"))) {
            findings
                .push(format!("{file}: config/6.12/rust-differences explains `{l}`, which is no longer a difference"));
        }
    }
    for e in explained.iter().filter(|e| !mainline.contains_key(&e.file) && !backport.contains_key(&e.file)) {
        findings.push(format!("config/6.12/rust-differences names {}, which neither series changes", e.file));
    }
    findings
}

/// The commits of `tree`'s series that backport an upstream commit (a
/// `commit <id> upstream.` line), read once.
fn upstream_backports(tree: &Path) -> Result<HashSet<String>> {
    let log = cmd::output(git(tree).args(["log", "--format=%H%x00%B%x01", &format!("{BASE_TAG}..HEAD")]))?;
    Ok(log
        .split('\x01')
        .filter_map(|c| c.trim_start().split_once('\0'))
        .filter(|(_, msg)| msg.lines().any(|l| crate::check::upstream_id(l).is_some()))
        .map(|(id, _)| id.to_string())
        .collect())
}

/// The series' own changes of each `.rs` file of `tree` (see the module
/// documentation).
pub fn series_rust_changes(tree: &Path) -> Result<BTreeMap<String, Change>> {
    let backports = upstream_backports(tree)?;
    let files = cmd::output(git(tree).args(["diff", "--name-only", BASE_TAG, "HEAD", "--", "*.rs"]))?;
    let mut changes = BTreeMap::new();
    for file in files.lines() {
        // Newest first: the series' own commits, then the last backport
        // that touches the file, which must have none of its own below.
        let out = cmd::output(git(tree).args(["log", "--format=%H", &format!("{BASE_TAG}..HEAD"), "--", file]))?;
        let commits: Vec<&str> = out.lines().collect();
        let start = match commits.iter().position(|c| backports.contains(*c)) {
            Some(i) => {
                if let Some(own) = commits[i..].iter().find(|c| !backports.contains(**c)) {
                    bail!(
                        "{}: {file} is changed by the series' own commit {own} before the backport {}: \
                         put the backports of upstream commits first",
                        tree.display(),
                        commits[i]
                    );
                }
                commits[i].to_string()
            }
            None => BASE_TAG.to_string(),
        };
        let diff = cmd::output(git(tree).args(["diff", &start, "HEAD", "--", file]))?;
        let change = Change::from_diff(&diff);
        // A file only backports of upstream commits change is not the series'.
        if change != Change::default() {
            changes.insert(file.to_string(), change);
        }
    }
    Ok(changes)
}

/// `lab backport`: compares the trees' series; prints what it compared and
/// fails with every unexplained difference.
pub fn check(layout: &Layout) -> Result<()> {
    let path = layout.base_config(Base::Lts612).join("rust-differences");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let explained = parse_differences(&text)?;
    let mainline = series_rust_changes(&layout.tree(Base::Mainline))?;
    let backport = series_rust_changes(&layout.tree(Base::Lts612))?;
    let findings = compare(&mainline, &backport, &explained);
    let mut files = String::new();
    for f in mainline.keys().chain(backport.keys().filter(|f| !mainline.contains_key(*f))) {
        let _ = write!(files, " {f}");
    }
    if !findings.is_empty() {
        bail!(
            "the 6.12 backport's Rust differs from mainline's series where config/6.12/rust-differences \
             does not say why; explain each difference there (and in the backport patch's note) or \
             remove it:\n  {}",
            findings.join("\n  ")
        );
    }
    let n: usize = explained.iter().map(|e| e.mainline.len() + e.backport.len()).sum();
    println!(
        "lab backport: the 6.12 backport's Rust is mainline's series but for {n} explained lines in {} \
         places ({} files compared:{files})",
        explained.len(),
        mainline.len().max(backport.len())
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(diff: &str) -> Change {
        Change::from_diff(diff)
    }

    #[test]
    fn differences_parse_and_reject_what_is_not_a_block() {
        let text = "# why\n\nfile a.rs -- 6.12 has no atomics\n-     use Atomic;\n+ use core::ptr;\n";
        let e = parse_differences(text).unwrap();
        assert_eq!(
            e,
            [Explained {
                file: "a.rs".into(),
                reason: "6.12 has no atomics".into(),
                mainline: vec!["use Atomic;".into()],
                backport: vec!["use core::ptr;".into()],
            }]
        );
        assert!(parse_differences("- before any file\n").is_err());
        assert!(parse_differences("file a.rs without a reason\n").is_err());
        assert!(parse_differences("file a.rs -- r\n  indented\n").is_err());
    }

    #[test]
    fn only_explained_differences_pass_and_stale_explanations_are_reported() {
        let m = BTreeMap::from([("a.rs".to_string(), change("+++ b/a.rs\n+use Atomic;\n+fn f() {}\n"))]);
        let b = BTreeMap::from([("a.rs".to_string(), change("+++ b/a.rs\n+use core::ptr;\n+  fn f() {}\n"))]);
        let why = |m: &[&str], b: &[&str]| Explained {
            file: "a.rs".into(),
            reason: "r".into(),
            mainline: m.iter().map(|s| s.to_string()).collect(),
            backport: b.iter().map(|s| s.to_string()).collect(),
        };
        assert!(compare(&m, &b, &[why(&["use Atomic;"], &["use core::ptr;"])]).is_empty());
        let missing = compare(&m, &b, &[why(&["use Atomic;"], &[])]);
        assert_eq!(missing, ["a.rs: only the 6.12 backport has `use core::ptr;`"]);
        let stale = compare(&m, &b, &[why(&["use Atomic;"], &["use core::ptr;", "gone"])]);
        assert!(stale.len() == 1 && stale[0].contains("no longer a difference"), "{stale:?}");
        // A line the backport has twice where mainline has it once.
        let b2 = BTreeMap::from([("a.rs".to_string(), change("+use Atomic;\n+fn f() {}\n+fn f() {}\n"))]);
        assert_eq!(compare(&m, &b2, &[]), ["a.rs: only the 6.12 backport has `fn f() {}`"]);
        // A file only one series changes.
        let b3 = BTreeMap::from([("b.rs".to_string(), change("+x\n"))]);
        assert_eq!(compare(&BTreeMap::new(), &b3, &[]), ["b.rs: only the 6.12 backport has `x`"]);
    }

    /// The repository's list parses, and every block says why.
    /// A repository at `dir` with the base tag, then `commits` (message,
    /// file, content) in order.
    fn series(dir: &Path, commits: &[(&str, &str, &str)]) {
        let g = |args: &[&str]| {
            cmd::output(
                git(dir)
                    .args(["-c", "user.name=A U Thor", "-c", "user.email=a@example.org"])
                    .args(args)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null"),
            )
            .unwrap();
        };
        g(&["init", "-q", "-b", "main"]);
        fs::write(dir.join("a.rs"), "fn base() {}\n").unwrap();
        g(&["add", "a.rs"]);
        g(&["commit", "-q", "-m", "base"]);
        g(&["tag", BASE_TAG]);
        for (msg, file, text) in commits {
            fs::write(dir.join(file), text).unwrap();
            g(&["add", file]);
            g(&["commit", "-q", "-m", msg]);
        }
    }

    const UPSTREAM: &str = "rust: add up\n\ncommit 0123456789abcdef0123456789abcdef01234567 upstream.\n";

    /// The series' own change of a file starts after the last backport of
    /// an upstream commit that touches it; an own commit below that
    /// backport is refused, since the comparison would count it as
    /// upstream's.
    #[test]
    fn a_files_own_change_starts_after_its_backports() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        series(
            d,
            &[
                (UPSTREAM, "a.rs", "fn base() {}\nfn up() {}\n"),
                ("mm: own", "a.rs", "fn base() {}\nfn up() {}\nfn own() {}\n"),
                ("mm: own too", "b.rs", "fn b() {}\n"),
                ("mm: c.txt is not Rust", "c.txt", "c\n"),
            ],
        );
        let got = series_rust_changes(d).unwrap();
        assert_eq!(got.keys().collect::<Vec<_>>(), ["a.rs", "b.rs"]);
        assert_eq!(got["a.rs"], change("+fn own() {}\n"));
        assert_eq!(got["b.rs"], change("+fn b() {}\n"));

        // A file only a backport changes is none of the series' own.
        let only = tempfile::tempdir().unwrap();
        series(only.path(), &[(UPSTREAM, "a.rs", "fn base() {}\nfn up() {}\n")]);
        assert!(series_rust_changes(only.path()).unwrap().is_empty());

        // The series' own commit below a backport of the same file.
        let below = tempfile::tempdir().unwrap();
        series(
            below.path(),
            &[
                ("mm: own", "a.rs", "fn base() {}\nfn own() {}\n"),
                (UPSTREAM, "a.rs", "fn base() {}\nfn own() {}\nfn up() {}\n"),
            ],
        );
        let err = series_rust_changes(below.path()).unwrap_err().to_string();
        assert!(
            err.contains("a.rs is changed by the series' own commit")
                && err.contains("backports of upstream commits first"),
            "{err}"
        );
    }

    #[test]
    fn the_repository_list_parses() {
        let ours = include_str!("../../config/6.12/rust-differences");
        let e = parse_differences(ours).unwrap();
        assert!(!e.is_empty() && e.iter().all(|e| !e.reason.is_empty()));
    }
}
