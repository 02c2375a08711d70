//! The patch queue: apply and export round-trip byte for byte, a patch that
//! does not apply names itself, its file and its hunk, and developer work
//! in the tree is never thrown away unasked.

use lab::base::Base;
use lab::layout::Layout;
use lab::tree::{self, TreeState};

/// The base these tests give their small trees.
const B: Base = Base::Lts612;
use std::fs;
use std::path::Path;
use std::process::Command;

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.org")
        .env("GIT_AUTHOR_DATE", "@1700000000 +0000")
        .env("GIT_COMMITTER_NAME", "Test Committer")
        .env("GIT_COMMITTER_EMAIL", "committer@example.org")
        .env("GIT_COMMITTER_DATE", "@1700000000 +0000")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A lab checkout in a temporary folder with a small base tree.
fn lab() -> (tempfile::TempDir, Layout) {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    fs::create_dir_all(layout.patches(B)).unwrap();
    fs::create_dir_all(layout.config()).unwrap();
    fs::write(layout.patches(B).join("series"), "").unwrap();
    let t = layout.tree(B);
    fs::create_dir_all(t.join("mm")).unwrap();
    fs::write(t.join("mm/memory.c"), (1..=40).map(|i| format!("line {i}\n")).collect::<String>()).unwrap();
    fs::write(t.join("README"), "Linux\n").unwrap();
    git(&t, &["init", "-q", "-b", "main"]);
    git(&t, &["add", "-A"]);
    git(&t, &["commit", "-q", "-m", "Linux 6.12.117"]);
    git(&t, &["tag", "base"]);
    (tmp, layout)
}

fn commit(layout: &Layout, file: &str, content: &str, subject: &str) {
    let t = layout.tree(B);
    fs::write(t.join(file), content).unwrap();
    git(&t, &["add", "-A"]);
    git(
        &t,
        &[
            "commit",
            "-q",
            "-m",
            &format!("{subject}\n\nWhy this change.\n\nSigned-off-by: Test Author <author@example.org>"),
        ],
    );
}

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name().to_string_lossy().into_owned(), fs::read(e.path()).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn two_patch_series() -> (tempfile::TempDir, Layout) {
    let (tmp, layout) = lab();
    let mut memory = fs::read_to_string(layout.tree(B).join("mm/memory.c")).unwrap();
    memory = memory.replace("line 20\n", "line 20 changed\n");
    commit(&layout, "mm/memory.c", &memory, "mm: change line 20");
    commit(&layout, "mm/fault.rs", "// SPDX-License-Identifier: GPL-2.0\n", "rust: mm: add fault.rs");
    let written = tree::export(&layout, B).unwrap();
    assert!(written.contains(&"series".to_string()));
    (tmp, layout)
}

#[test]
fn export_then_apply_then_export_changes_no_byte() {
    let (_a, first) = two_patch_series();
    let exported = snapshot(&first.patches(B));
    let series = fs::read_to_string(first.patches(B).join("series")).unwrap();
    assert_eq!(series, "0001-mm-change-line-20.patch\n0002-rust-mm-add-fault.rs.patch\n");

    // A fresh checkout of the same queue, applied to its own base tree.
    let (_b, second) = lab();
    for (name, bytes) in &exported {
        fs::write(second.patches(B).join(name), bytes).unwrap();
    }
    assert_eq!(tree::state(&second, B).unwrap(), TreeState::Replaceable);
    assert!(tree::apply(&second, B, false).unwrap());
    assert_eq!(tree::state(&second, B).unwrap(), TreeState::UpToDate { stale: vec![] });
    assert!(tree::export(&second, B).unwrap().is_empty(), "export right after apply must change nothing");
    assert_eq!(snapshot(&second.patches(B)), exported);
    assert_eq!(
        fs::read_to_string(second.tree(B).join("mm/memory.c")).unwrap(),
        fs::read_to_string(first.tree(B).join("mm/memory.c")).unwrap()
    );
    // Applying again is a no-op: nothing rewritten, nothing rebuilt.
    let head = git(&second.tree(B), &["rev-parse", "HEAD"]);
    assert!(!tree::apply(&second, B, false).unwrap());
    assert_eq!(git(&second.tree(B), &["rev-parse", "HEAD"]), head);
}

#[test]
fn export_brings_the_cover_letter_up_to_date_with_the_series() {
    let (_a, layout) = two_patch_series();
    let cover = layout.patches(B).join("0000-cover-letter.patch");
    fs::write(&cover, "From: A <a@b>\nDate: Thu, 1 Jan 2026 00:00:00 +0000\nSubject: [PATCH RFC 0/9] mm: x\n\nWhy.\n\nOld (9):\n  gone\n").unwrap();
    let changed = tree::export(&layout, B).unwrap();
    assert!(changed.contains(&"0000-cover-letter.patch".to_string()), "{changed:?}");
    let text = fs::read_to_string(&cover).unwrap();
    assert!(text.contains("Subject: [PATCH RFC 0/2] mm: x\n\nWhy.\n\n"), "{text}");
    assert!(text.contains("  mm: change line 20\n") && !text.contains("gone"), "{text}");
    assert!(text.contains("\nbase-commit: "), "{text}");
    // Only the date would change: nothing to write.
    assert!(tree::export(&layout, B).unwrap().is_empty());
}

#[test]
fn export_removes_dropped_patches_but_keeps_the_cover_letter() {
    let (_a, layout) = two_patch_series();
    fs::write(layout.patches(B).join("0000-cover-letter.patch"), "cover").unwrap();
    git(&layout.tree(B), &["reset", "-q", "--hard", "HEAD~1"]);
    let changed = tree::export(&layout, B).unwrap();
    assert!(changed.contains(&"-0002-rust-mm-add-fault.rs.patch".to_string()), "{changed:?}");
    assert!(layout.patches(B).join("0000-cover-letter.patch").exists());
    assert_eq!(fs::read_to_string(layout.patches(B).join("series")).unwrap(), "0001-mm-change-line-20.patch\n");
}

#[test]
fn a_patch_that_does_not_apply_names_itself_its_file_and_its_hunk() {
    let (_a, layout) = two_patch_series();
    // The queue is written against a different line 20 than the new base has.
    let (_b, other) = lab();
    let t = other.tree(B);
    let memory = fs::read_to_string(t.join("mm/memory.c")).unwrap().replace("line 20\n", "line twenty\n");
    fs::write(t.join("mm/memory.c"), memory).unwrap();
    git(&t, &["commit", "-q", "-a", "--amend", "-m", "Linux 6.12.118"]);
    git(&t, &["tag", "-f", "base"]);
    for (name, bytes) in snapshot(&layout.patches(B)) {
        fs::write(other.patches(B).join(name), bytes).unwrap();
    }
    let err = format!("{:#}", tree::apply(&other, B, false).unwrap_err());
    assert!(err.contains("patch 1 of 2, 0001-mm-change-line-20.patch (\"mm: change line 20\")"), "{err}");
    assert!(err.contains("mm/memory.c: hunk @@ -17,7 +17,7 @@"), "{err}");
    assert!(err.contains("-line 20"), "the hunk's lines are quoted: {err}");
    assert!(err.contains("am --continue"), "says what to do next: {err}");
    // The tree is left for inspection, and the lab refuses to trample it.
    assert_eq!(tree::state(&other, B).unwrap(), TreeState::AmInProgress);
    let again = format!("{:#}", tree::apply(&other, B, false).unwrap_err());
    assert!(again.contains("in the middle of `git am`"), "{again}");
}

#[test]
fn developer_work_is_never_discarded_unasked() {
    let (_a, layout) = two_patch_series();
    let t = layout.tree(B);
    // Uncommitted edits.
    fs::write(t.join("README"), "Linux, edited\n").unwrap();
    let err = tree::apply(&layout, B, false).unwrap_err().to_string();
    assert!(err.contains("uncommitted changes") && err.contains("README"), "{err}");
    assert!(tree::apply(&layout, B, true).is_err(), "--force does not discard uncommitted edits either");
    assert_eq!(fs::read_to_string(t.join("README")).unwrap(), "Linux, edited\n");
    git(&t, &["checkout", "--", "."]);

    // A commit that is not in patches/.
    commit(&layout, "README", "Linux, committed\n", "wip");
    let err = tree::apply(&layout, B, false).unwrap_err().to_string();
    assert!(err.contains("wip") && err.contains("make export") && err.contains("--force"), "{err}");
    let wip = git(&t, &["rev-parse", "HEAD"]);

    // --force keeps it on a backup branch.
    assert!(tree::apply(&layout, B, true).unwrap());
    let branches = git(&t, &["branch", "--list", "lab-backup-*", "--format=%(objectname)"]);
    assert_eq!(branches.trim(), wip.trim());
    assert_eq!(tree::state(&layout, B).unwrap(), TreeState::UpToDate { stale: vec![] });
}

#[test]
fn a_series_that_names_a_missing_file_is_an_error() {
    let (_a, layout) = lab();
    fs::write(layout.patches(B).join("series"), "# comment\n0001-gone.patch\n").unwrap();
    let err = tree::apply(&layout, B, false).unwrap_err().to_string();
    assert!(err.contains("series:2") && err.contains("0001-gone.patch"), "{err}");
}

#[test]
fn the_same_series_after_a_rebase_is_up_to_date_and_its_files_only_need_an_export() {
    let (_a, layout) = two_patch_series();
    // The base moves (Debian's next stable release): ten lines above the
    // series' hunk, so the patches still apply, at other offsets.
    let (_b, other) = lab();
    let t = other.tree(B);
    let memory = fs::read_to_string(t.join("mm/memory.c")).unwrap().replace("line 3\n", "line 3\nnew a\nnew b\n");
    fs::write(t.join("mm/memory.c"), memory).unwrap();
    git(&t, &["commit", "-q", "-a", "--amend", "-m", "Linux 6.12.118"]);
    git(&t, &["tag", "-f", "base"]);
    let stored = snapshot(&layout.patches(B));
    for (name, bytes) in &stored {
        fs::write(other.patches(B).join(name), bytes).unwrap();
    }
    assert!(tree::apply(&other, B, false).unwrap());
    let head = git(&t, &["rev-parse", "HEAD"]);
    // By content the tree holds the series; by bytes one file is stale.
    assert_eq!(
        tree::state(&other, B).unwrap(),
        TreeState::UpToDate { stale: vec!["0001-mm-change-line-20.patch".into()] }
    );
    assert!(!tree::apply(&other, B, false).unwrap(), "nothing is applied again");
    assert_eq!(git(&t, &["rev-parse", "HEAD"]), head);
    assert_eq!(snapshot(&other.patches(B)), stored, "the stored files are the developer's to refresh");
    assert_eq!(tree::export(&other, B).unwrap(), ["0001-mm-change-line-20.patch"]);
    assert_eq!(tree::state(&other, B).unwrap(), TreeState::UpToDate { stale: vec![] });

    // So is a change of whitespace inside a line: stored files that
    // differ only so must be applied, not refreshed away.
    let stored_first = other.patches(B).join("0001-mm-change-line-20.patch");
    let text = fs::read_to_string(&stored_first).unwrap();
    fs::write(&stored_first, text.replace("+line 20 changed", "+line 20  changed")).unwrap();
    assert!(matches!(tree::state(&other, B).unwrap(), TreeState::Replaceable | TreeState::Diverged(_)));
    fs::write(&stored_first, text).unwrap();
    assert_eq!(tree::state(&other, B).unwrap(), TreeState::UpToDate { stale: vec![] });

    // A reworded message is another series.
    git(&t, &["commit", "-q", "--amend", "-m", "rust: mm: add fault.rs, reworded"]);
    assert!(matches!(tree::state(&other, B).unwrap(), TreeState::Diverged(_)));
}

#[test]
fn export_replaces_a_series_file_that_names_a_deleted_patch() {
    let (_a, layout) = two_patch_series();
    fs::remove_file(layout.patches(B).join("0002-rust-mm-add-fault.rs.patch")).unwrap();
    // The stored series is broken now: the lab cannot compare with it ...
    assert!(tree::state(&layout, B).is_err());
    // ... but exporting the tree is how one mends it.
    let changed = tree::export(&layout, B).unwrap();
    assert!(changed.contains(&"0002-rust-mm-add-fault.rs.patch".to_string()), "{changed:?}");
    assert_eq!(tree::state(&layout, B).unwrap(), TreeState::UpToDate { stale: vec![] });
}
