//! The kernel work tree of a base: the Debian source committed and tagged
//! `base`, with the base's series (`patches/<base>/`) applied on top by
//! `git am -3`.
//!
//! The tree belongs to the developer as much as to the lab: the lab never
//! discards commits or changes that are not in `patches/` unless told to,
//! and even then keeps them on a backup branch.
//!
//! `tree/source.rs` makes the tree from the tarball, `tree/identity.rs`
//! tells whether its commits are the stored series, `tree/hunks.rs` shows
//! the hunks of a patch that does not apply.

use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::base::Base;
use crate::cmd;
use crate::git::{committer_env, git, head, BASE_TAG};
use crate::layout::Layout;
use crate::lock::FolderLock;

mod hunks;
mod identity;
mod source;

pub use hunks::FailedHunk;
pub use identity::{file_identity, PatchIdentity};
pub use source::{drop_debian_ignore_rule, ensure_base, kernel_version, recorded_source};

use hunks::failing_hunks;
use identity::{format_patches, same_series};

/// The file in `patches/` that gives the order of the series.
pub const SERIES: &str = "series";
/// A cover letter kept in `patches/` but not applied.
pub const COVER_LETTER: &str = "0000-cover-letter.patch";

/// The patches listed in `patches/series`, in order.
pub fn read_series(patches: &Path) -> Result<Vec<PathBuf>> {
    let series = patches.join(SERIES);
    let text = fs::read_to_string(&series).with_context(|| {
        format!(
            "cannot read {}: the series file lists the patches in order, one file name per line \
             (an empty file means an empty series)",
            series.display()
        )
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() || name.starts_with('#') {
            continue;
        }
        let path = patches.join(name);
        if !path.is_file() {
            bail!("{}:{}: {} is listed but no such file is in {}", series.display(), n + 1, name, patches.display());
        }
        out.push(path);
    }
    Ok(out)
}

/// Where the work tree stands relative to `base` and the series folder.
#[derive(Debug, PartialEq, Eq)]
pub enum TreeState {
    /// The commits after `base` are the series: the same changes (by `git
    /// patch-id`) with the same authors and messages. `stale` names the
    /// series files that still differ in bytes from an export of the tree
    /// (index lines, hunk offsets after a rebase): `make export` refreshes
    /// them, and nothing needs applying again.
    UpToDate { stale: Vec<String> },
    /// Only `base` is checked out (or the lab's own earlier apply): safe to
    /// (re)apply.
    Replaceable,
    /// A `git am` stopped on a patch and waits for the developer.
    AmInProgress,
    /// Uncommitted changes to tracked files.
    Dirty(String),
    /// Commits after `base` that differ from the series.
    Diverged(Vec<String>),
}

fn stamp_path(tree: &Path) -> PathBuf {
    tree.join(".git").join("lab-applied")
}

/// The commit of the work tree of `base` that holds its series as
/// `patches/<base>/` has it now: the one `apply` or `export` last left,
/// if it still is the series. It reads the tree's objects only, so it
/// needs no lock on the tree, and may be called while `lab check` walks
/// it. `scratch` is a folder of the caller's own.
pub fn series_commit(layout: &Layout, base: Base, scratch: &Path) -> Result<Option<String>> {
    let tree = layout.tree(base);
    let Ok(stamp) = fs::read_to_string(stamp_path(&tree)) else {
        return Ok(None);
    };
    let commit = stamp.trim().to_string();
    if cmd::output(git(&tree).args(["cat-file", "-e", &format!("{commit}^{{commit}}")])).is_err() {
        return Ok(None);
    }
    let series = read_series(&layout.patches(base))?;
    Ok(same_series(&tree, &commit, &series, scratch)?.map(|_| commit))
}

/// Compares the tree's commits after `base` with the series of `base`.
/// It writes its scratch folder build/<base>/tmp/state: in the lab only
/// apply() calls it, holding the tree's lock.
pub fn state(layout: &Layout, base: Base) -> Result<TreeState> {
    let tree = layout.tree(base);
    if let Some(unfinished) = unfinished(&tree)? {
        return Ok(unfinished);
    }
    let series = read_series(&layout.patches(base))?;
    let scratch = layout.base_dir(base).join("tmp").join("state");
    if let Some(stale) = same_series(&tree, "HEAD", &series, &scratch)? {
        return Ok(TreeState::UpToDate { stale });
    }
    let head = head(&tree)?;
    let base_commit = cmd::output(git(&tree).args(["rev-parse", &format!("{BASE_TAG}^{{commit}}")]))?;
    let stamp = fs::read_to_string(stamp_path(&tree)).unwrap_or_default();
    if head == base_commit.trim() || head == stamp.trim() {
        return Ok(TreeState::Replaceable);
    }
    let log = cmd::output(git(&tree).args(["log", "--oneline", &format!("{BASE_TAG}..HEAD")]))?;
    Ok(TreeState::Diverged(log.lines().map(str::to_string).collect()))
}

/// Applies the series of `base` to its tree, unless it already holds it.
///
/// Returns whether anything was (re)applied. With `force`, commits that are
/// not in the series are kept on a backup branch and replaced.
pub fn apply(layout: &Layout, base: Base, force: bool) -> Result<bool> {
    let tree = layout.tree(base);
    let _lock = FolderLock::acquire(&tree, &format!("applying the {base} series"))?;
    let st = state(layout, base)?;
    match &st {
        TreeState::UpToDate { stale } => {
            // The tree's commits are the series: the tip checkout may follow
            // them (series_commit()).
            fs::write(stamp_path(&tree), head(&tree)?)?;
            if !stale.is_empty() {
                eprintln!(
                    "lab: note: {} holds the {base} series, but {} of its files in {} differ from an export in \
                     bytes only (index lines, hunk offsets): `make export BASE={base}` refreshes them ({})",
                    tree.display(),
                    stale.len(),
                    layout.patches(base).display(),
                    stale.join(", ")
                );
            }
            return Ok(false);
        }
        TreeState::Replaceable => {}
        TreeState::AmInProgress => bail!(
            "{} is in the middle of `git am` (a patch did not apply). Resolve it and run \
             `git -C {} am --continue`, then `make export BASE={base}`; or give up with `git -C {} am --abort`.",
            tree.display(),
            tree.display(),
            tree.display()
        ),
        TreeState::Dirty(files) => bail!(
            "{} has uncommitted changes:\n{}The lab will not overwrite them. Commit them \
             (`git commit --amend` or a new commit) and run `make export BASE={base}` to save them to {}, \
             or discard them with `git -C {} checkout -- .`.",
            tree.display(),
            files,
            layout.patches(base).display(),
            tree.display()
        ),
        TreeState::Diverged(commits) if !force => bail!(
            "{} has commits after base that are not what {} holds:\n  {}\n\
             Save them there with `make export BASE={base}`, or replace them with the stored series with \
             `lab apply --base {base} --force` (they are kept on a backup branch).",
            tree.display(),
            layout.patches(base).display(),
            commits.join("\n  ")
        ),
        TreeState::Diverged(_) => {
            let name = format!("lab-backup-{}", chrono::Local::now().format("%Y%m%d-%H%M%S"));
            cmd::output(git(&tree).args(["branch", &name]))?;
            eprintln!("lab: kept the tree's commits on branch {name}");
        }
    }
    cmd::output(git(&tree).args(["reset", "-q", "--hard", BASE_TAG]))?;
    let series = read_series(&layout.patches(base))?;
    let log = layout.base_logs(base).join("apply.log");
    let _ = fs::remove_file(&log);
    for (i, patch) in series.iter().enumerate() {
        apply_one(&tree, patch, i + 1, series.len(), &log)?;
    }
    fs::write(stamp_path(&tree), head(&tree)?)?;
    if !series.is_empty() {
        eprintln!("lab: applied {} patches to {}", series.len(), tree.display());
    }
    Ok(true)
}

fn apply_one(tree: &Path, patch: &Path, n: usize, total: usize, log: &Path) -> Result<()> {
    let name = patch.file_name().unwrap_or_default().to_string_lossy().into_owned();
    // Check first: `git apply` names the file and the line of a failing
    // hunk; `git am -3` may still succeed through a three-way merge.
    let check = Command::new("git").arg("-C").arg(tree).args(["apply", "--check", "--verbose"]).arg(patch).output()?;
    let check_text = String::from_utf8_lossy(&check.stderr).into_owned();
    let mut am = git(tree);
    am.args(["am", "-3", "--quiet"]).arg(patch);
    committer_env(&mut am, tree);
    if cmd::run_logged(&mut am, log, |_| {}).is_ok() {
        return Ok(());
    }
    let subject = patch_subject(patch).unwrap_or_default();
    let failures = failing_hunks(&check_text, patch);
    let mut msg = format!("patch {n} of {total}, {name} (\"{subject}\"), does not apply to {}.\n", tree.display());
    if failures.is_empty() {
        msg.push_str(&format!("git apply said:\n{}\n", check_text.trim()));
    }
    for f in &failures {
        msg.push_str(&format!("  {}: hunk {}\n", f.file, f.header));
        for l in f.body.lines().take(8) {
            msg.push_str(&format!("    {l}\n"));
        }
    }
    msg.push_str(&format!(
        "The tree is left in the middle of `git am` for inspection: resolve the conflict in {}, \
         `git add` the files and `git -C {} am --continue`, then `make export`; or `git -C {} am --abort`.\n\
         Full log: {}",
        tree.display(),
        tree.display(),
        tree.display(),
        log.display()
    ));
    Err(anyhow!(msg))
}

/// The subject line of a format-patch file, without its `[PATCH]` prefix.
pub fn patch_subject(patch: &Path) -> Option<String> {
    mail_subject(&fs::read_to_string(patch).ok()?)
}

/// The Subject: of a mail (folded lines joined), without its `[PATCH ...]`
/// prefix.
pub fn mail_subject(mail: &str) -> Option<String> {
    let subject = crate::cover::header(crate::cover::split_mail(mail).0, "Subject")?;
    let s = subject.trim();
    Some(match s.strip_prefix('[') {
        Some(rest) => rest.split_once("] ").map_or(s, |(_, t)| t).to_string(),
        None => s.to_string(),
    })
}

/// A `git am` that stopped, or uncommitted changes: work in the tree that no
/// commit holds yet.
fn unfinished(tree: &Path) -> Result<Option<TreeState>> {
    if tree.join(".git").join("rebase-apply").exists() {
        return Ok(Some(TreeState::AmInProgress));
    }
    let dirty = crate::git::uncommitted(tree)?;
    Ok((!dirty.trim().is_empty()).then_some(TreeState::Dirty(dirty)))
}

/// Writes the commits after `base` to the series folder of `base` and
/// rewrites its `series`.
///
/// Files are written only when their bytes change, and stale `.patch` files
/// are removed (the cover letter is kept). Returns the file names written.
pub fn export(layout: &Layout, base: Base) -> Result<Vec<String>> {
    let tree = layout.tree(base);
    // Not `state()`: the stored series is what export replaces, so a
    // `series` file that names a patch someone deleted must not stop it.
    match unfinished(&tree)? {
        Some(TreeState::AmInProgress) => bail!(
            "{} is in the middle of `git am`: finish it (`git am --continue`) or abort it before exporting",
            tree.display()
        ),
        Some(TreeState::Dirty(files)) => bail!(
            "{} has uncommitted changes, which export would not include:\n{}Commit them first.",
            tree.display(),
            files
        ),
        _ => {}
    }
    let patches = layout.patches(base);
    fs::create_dir_all(&patches)?;
    let tmp = layout.base_dir(base).join("tmp").join("export");
    let _ = fs::remove_dir_all(&tmp);
    let names = format_patches(&tree, &tmp, "HEAD")?;
    let mut changed = Vec::new();
    for n in &names {
        let new = fs::read(tmp.join(n))?;
        if fs::read(patches.join(n)).ok().as_deref() != Some(&new[..]) {
            fs::write(patches.join(n), &new)?;
            changed.push(n.clone());
        }
    }
    for entry in fs::read_dir(&patches)? {
        let f = entry?.file_name().to_string_lossy().into_owned();
        if f.ends_with(".patch") && f != COVER_LETTER && !names.contains(&f) {
            fs::remove_file(patches.join(&f))?;
            changed.push(format!("-{f}"));
        }
    }
    let cover = patches.join(COVER_LETTER);
    if cover.is_file() {
        // The patches are exported already: a cover letter the lab cannot
        // read is the developer's to fix, not a reason to stop.
        match crate::cover::refresh_cover_letter(&tree, &cover, &tmp.join("cover")) {
            Ok(Some(text)) => {
                fs::write(&cover, text)?;
                changed.push(COVER_LETTER.into());
            }
            Ok(None) => {}
            Err(e) => eprintln!(
                "lab: warning: {} was not brought up to date with the series: {e:#}. It needs a \
                 `Subject: [PATCH ... 00/NN] title` header and its text before the shortlog.",
                cover.display()
            ),
        }
    }
    let mut series = String::new();
    for n in &names {
        series.push_str(n);
        series.push('\n');
    }
    if fs::read_to_string(patches.join(SERIES)).ok().as_deref() != Some(&series) {
        fs::write(patches.join(SERIES), &series)?;
        changed.push(SERIES.into());
    }
    let _ = fs::remove_dir_all(&tmp);
    fs::write(stamp_path(&tree), head(&tree)?)?;
    Ok(changed)
}
