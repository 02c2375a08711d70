//! The kernel work tree of a base: the Debian source committed and tagged
//! `base`, with the base's series (`patches/<base>/`) applied on top by
//! `git am -3`.
//!
//! The tree belongs to the developer as much as to the lab: the lab never
//! discards commits or changes that are not in `patches/` unless told to,
//! and even then keeps them on a backup branch.

use anyhow::{anyhow, bail, Context, Result};
use std::cell::Cell;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::rc::Rc;

use crate::base::{Base, Source};
use crate::cmd;
use crate::git::{committer_env, git, split_ident, BASE_TAG};
use crate::layout::Layout;
use crate::lock::FolderLock;
use crate::progress::Progress;
use crate::root::Root;
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

/// Creates the work tree of `base` from its Debian source tarball (in the
/// build root) if it is not there.
///
/// The commit's author is the package's maintainer and its date the
/// tarball's, so the same package version gives the same `base` commit on
/// every machine.
pub fn ensure_base(layout: &Layout, root: &Root, base: Base, source: &Source) -> Result<()> {
    let tree = layout.tree(base);
    if tree.join(".git").is_dir() {
        let recorded = cmd::output(git(&tree).args(["config", "--get", "lab.base-version"])).unwrap_or_default();
        let recorded_pkg = cmd::output(git(&tree).args(["config", "--get", "lab.base-package"])).unwrap_or_default();
        let (recorded, recorded_pkg) = (recorded.trim(), recorded_pkg.trim());
        if recorded != source.version || (!recorded_pkg.is_empty() && recorded_pkg != source.package) {
            eprintln!(
                "lab: note: {} is based on {recorded_pkg} {recorded}, but the build root has {} {}. \
                 The lab keeps the old base; to move on, save your work with `make export BASE={base}`, \
                 remove {} and run again.",
                tree.display(),
                source.package,
                source.version,
                tree.display()
            );
        }
        return Ok(());
    }
    let tarball = root.host_path(&source.tarball);
    let tmp = layout.base_dir(base).join("linux.unpacking");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("cannot remove the partial unpack {}", tmp.display()))?;
    }
    fs::create_dir_all(&tmp)?;
    unpack(&tarball, &tmp)?;
    let dropped_ignore = drop_debian_ignore_rule(&tmp.join(".gitignore"))?;

    let maintainer = cmd::output(root.command("dpkg-query").args(["-W", "-f", "${Maintainer}", &source.package]))
        .unwrap_or_default();
    let (name, email) =
        split_ident(maintainer.trim()).unwrap_or(("Debian Kernel Team", "debian-kernel@lists.debian.org"));
    let mtime = fs::metadata(&tarball)?.modified()?.duration_since(std::time::UNIX_EPOCH)?.as_secs();
    let date = format!("@{mtime} +0000");
    let spinner = Progress::spinner(&format!("{base} tree"), "committing the unpacked source");
    cmd::output(git(&tmp).args(["init", "-q", "-b", "main"]))?;
    cmd::output(git(&tmp).args(["config", "lab.base-version", &source.version]))?;
    cmd::output(git(&tmp).args(["config", "lab.base-package", &source.package]))?;
    // No background repack of the 90,000 new objects while kernels build.
    cmd::output(git(&tmp).args(["config", "gc.auto", "0"]))?;
    // Every blob straight into one pack (git's bulk check-in for files
    // above core.bigFileThreshold) rather than 90,000 loose objects: the
    // repository takes 300 MB instead of 620 MB, for about 25 s more.
    cmd::output(git(&tmp).args(["-c", "core.bigFileThreshold=1", "add", "-A", "-f", "."]))?;
    let kver = kernel_version(&tmp)?;
    let mut msg = format!(
        "Linux {kver}\n\nUnpacked from Debian's {} {} ({}).",
        source.package,
        source.version,
        source.tarball.display()
    );
    if dropped_ignore {
        msg.push_str(
            "\n\nDebian's rule at the end of .gitignore that ignores every top-level\n\
             path (meant for its packaging repository) is left out, so that new\n\
             files show up in `git status` and `git add -A` as they do upstream.",
        );
    }
    cmd::output(
        git(&tmp)
            .args(["commit", "-q", "--no-verify", "-m", &msg])
            .env("GIT_AUTHOR_NAME", name)
            .env("GIT_AUTHOR_EMAIL", email)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_NAME", name)
            .env("GIT_COMMITTER_EMAIL", email)
            .env("GIT_COMMITTER_DATE", &date),
    )?;
    cmd::output(git(&tmp).args(["tag", BASE_TAG]))?;
    spinner.finish();
    fs::rename(&tmp, &tree)?;
    eprintln!("lab: {base} tree at {} (Linux {kver}, Debian {} {})", tree.display(), source.package, source.version);
    Ok(())
}

/// The Debian source the work tree of `base` was made from, as recorded
/// when it was made (it stays while the build root moves on).
pub fn recorded_source(layout: &Layout, base: Base) -> Result<Source> {
    let tree = layout.tree(base);
    let get = |key: &str| -> Result<String> {
        Ok(cmd::output(git(&tree).args(["config", "--get", key]))
            .with_context(|| format!("{} records no {key}: remake it (remove it after `make export`)", tree.display()))?
            .trim()
            .to_string())
    };
    let package = get("lab.base-package")?;
    let tarball = PathBuf::from(format!("/usr/src/{package}.tar.xz"));
    Ok(Source { version: get("lab.base-version")?, package, tarball })
}

/// The block Debian appends to the top-level .gitignore.
const DEBIAN_IGNORE_ALL: &str = "\n#\n# Debian packaging: ignore everything at the top level, since it isn't\n\
# included in our repository\n#\n/*\n!/debian/\n";

/// Removes Debian's ignore-everything rule from `.gitignore`; returns
/// whether it was there.
pub fn drop_debian_ignore_rule(gitignore: &Path) -> Result<bool> {
    let Ok(text) = fs::read_to_string(gitignore) else { return Ok(false) };
    match text.strip_suffix(DEBIAN_IGNORE_ALL) {
        Some(upstream) => {
            fs::write(gitignore, upstream)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// `VERSION.PATCHLEVEL.SUBLEVEL` from the tree's top Makefile.
pub fn kernel_version(tree: &Path) -> Result<String> {
    let mk = fs::read_to_string(tree.join("Makefile"))?;
    let get = |key: &str| {
        mk.lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim_start_matches([' ', '=']).trim().to_string()))
            .ok_or_else(|| anyhow!("no {key} in Makefile"))
    };
    Ok(format!("{}.{}.{}", get("VERSION")?, get("PATCHLEVEL")?, get("SUBLEVEL")?))
}

/// Unpacks a `.tar.xz` into `dest`, dropping the top folder.
fn unpack(tarball: &Path, dest: &Path) -> Result<()> {
    let file = fs::File::open(tarball).with_context(|| format!("cannot open {}", tarball.display()))?;
    let size = file.metadata()?.len();
    let name = tarball.file_name().unwrap_or_default().to_string_lossy().into_owned();
    let mut pb = Progress::bar(&format!("unpack {name}"), size, "{prefix} {bar:30} {bytes}/{total_bytes} [{elapsed}]")
        .in_bytes();
    let read = Rc::new(Cell::new(0u64));
    let mut reader = CountingReader { inner: file, read: Rc::clone(&read) };
    let mut reported = 0;
    let mut archive = tar::Archive::new(xz2::read::XzDecoder::new(&mut reader));
    archive.set_preserve_permissions(true);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let rel: PathBuf = path.components().skip(1).collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        entry.unpack(dest.join(&rel)).with_context(|| format!("cannot unpack {}", rel.display()))?;
        let done = read.get();
        if done > reported + size / 100 {
            reported = done;
            pb.set(done, "");
        }
    }
    pb.finish();
    Ok(())
}

/// Counts the compressed bytes read, for the unpack progress.
struct CountingReader<R> {
    inner: R,
    read: Rc<Cell<u64>>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.set(self.read.get() + n as u64);
        Ok(n)
    }
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

fn head(tree: &Path) -> Result<String> {
    Ok(cmd::output(git(tree).args(["rev-parse", "HEAD"]))?.trim().to_string())
}

fn stamp_path(tree: &Path) -> PathBuf {
    tree.join(".git").join("lab-applied")
}

/// Writes the commits after `base` as format-patch files into `dir`, and
/// returns their file names in order.
fn format_patches(tree: &Path, dir: &Path, tip: &str) -> Result<Vec<String>> {
    fs::create_dir_all(dir)?;
    let out = cmd::output(
        git(tree)
            .args(["format-patch", "--zero-commit", "--no-numbered", "--no-signature", "--no-cover-letter"])
            .args(["--abbrev=12", "--no-color", "--encode-email-headers", "-o"])
            .arg(dir)
            .arg(format!("{BASE_TAG}..{tip}")),
    )?;
    Ok(out
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| Path::new(l).file_name().unwrap_or_default().to_string_lossy().into_owned())
        .collect())
}

/// What makes a patch the same patch: its change, as `git patch-id
/// --verbatim` sees it (index lines and hunk offsets do not count;
/// whitespace does), its author and its message.
#[derive(Debug, PartialEq, Eq)]
pub struct PatchIdentity {
    pub patch_id: String,
    pub author: String,
    pub message: String,
}

/// `git patch-id --verbatim` (a stable sum of the file diffs, which keeps
/// whitespace) of format-patch text holding one or more patches, in order.
fn patch_ids(tree: &Path, text: &[u8]) -> Result<Vec<String>> {
    use std::io::Write as _;
    let mut child = git(tree)
        .args(["patch-id", "--verbatim"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot run git patch-id")?;
    let mut stdin = child.stdin.take().context("git patch-id's input")?;
    let input = text.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output()?;
    writer.join().map_err(|_| anyhow!("git patch-id's writer panicked"))??;
    if !out.status.success() {
        bail!("git patch-id failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect())
}

/// The identity of a format-patch file: its patch-id, and its author and
/// message as `git mailinfo` reads the mail (headers decoded, `[PATCH]`
/// dropped, notes after `---` left out). The tree's commits are compared
/// through their own export, so both sides are read the same way.
pub fn file_identity(tree: &Path, patch: &Path, scratch: &Path) -> Result<PatchIdentity> {
    let bytes = fs::read(patch).with_context(|| format!("cannot read {}", patch.display()))?;
    let patch_id = patch_ids(tree, &bytes)?
        .into_iter()
        .next()
        .with_context(|| format!("{} holds no patch git patch-id can read", patch.display()))?;
    fs::create_dir_all(scratch)?;
    let (msg, diff) = (scratch.join("msg"), scratch.join("patch"));
    let out = git(tree)
        .args(["mailinfo", "-u"])
        .arg(&msg)
        .arg(&diff)
        .stdin(fs::File::open(patch)?)
        .output()
        .context("cannot run git mailinfo")?;
    if !out.status.success() {
        bail!("git mailinfo cannot read {}: {}", patch.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let info = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| info.lines().find_map(|l| l.strip_prefix(k)).unwrap_or("").trim().to_string();
    let author = format!("{} <{}>", field("Author: "), field("Email: "));
    let body = fs::read_to_string(&msg).unwrap_or_default();
    let message = normalise_message(&format!("{}\n\n{body}", field("Subject: ")));
    Ok(PatchIdentity { patch_id, author, message })
}

/// A message with trailing whitespace and blank lines at either end
/// removed, so that git log's and git mailinfo's renderings compare equal.
fn normalise_message(m: &str) -> String {
    m.lines().map(str::trim_end).collect::<Vec<_>>().join("\n").trim().to_string()
}

/// Whether the commits from `base` to `tip` in `tree` are `series` (the
/// same patches, authors and messages, in order); if so, the names of the
/// stored files an export would rewrite (index lines, hunk offsets).
/// `scratch` is a folder of its own, removed afterwards.
fn same_series(tree: &Path, tip: &str, series: &[PathBuf], scratch: &Path) -> Result<Option<Vec<String>>> {
    let _ = fs::remove_dir_all(scratch);
    let exported = scratch.join("export");
    let names = format_patches(tree, &exported, tip)?;
    // format-patch leaves out merges: such a tree is no series of patches.
    let commits: usize =
        cmd::output(git(tree).args(["rev-list", "--count", &format!("{BASE_TAG}..{tip}")]))?.trim().parse()?;
    let mut same = names.len() == commits && names.len() == series.len();
    if same {
        for (n, p) in names.iter().zip(series) {
            if file_identity(tree, &exported.join(n), scratch)? != file_identity(tree, p, scratch)? {
                same = false;
                break;
            }
        }
    }
    let stale = same.then(|| {
        names
            .iter()
            .zip(series)
            .filter(|(n, p)| {
                p.file_name().is_none_or(|f| f.to_string_lossy() != **n)
                    || fs::read(exported.join(n)).ok() != fs::read(p).ok()
            })
            .map(|(n, _)| n.clone())
            .collect()
    });
    let _ = fs::remove_dir_all(scratch);
    Ok(stale)
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

/// One hunk that `git apply` could not place.
#[derive(Debug, PartialEq, Eq)]
pub struct FailedHunk {
    pub file: String,
    /// The hunk's `@@ -a,b +c,d @@ context` line.
    pub header: String,
    /// The hunk's lines, as in the patch.
    pub body: String,
}

/// Finds the hunks named by `git apply --check --verbose` output
/// (`error: patch failed: FILE:LINE`, `error: FILE: does not exist in index`).
pub fn failing_hunks(apply_stderr: &str, patch: &Path) -> Vec<FailedHunk> {
    let text = fs::read_to_string(patch).unwrap_or_default();
    let mut out = Vec::new();
    for line in apply_stderr.lines() {
        if let Some(rest) = line.strip_prefix("error: patch failed: ") {
            let Some((file, lno)) = rest.rsplit_once(':') else { continue };
            let lno: u64 = lno.trim().parse().unwrap_or(0);
            if let Some((header, body)) = find_hunk(&text, file, lno) {
                out.push(FailedHunk { file: file.to_string(), header, body });
            } else {
                out.push(FailedHunk { file: file.to_string(), header: format!("at line {lno}"), body: String::new() });
            }
        } else if let Some(rest) = line.strip_prefix("error: ") {
            if let Some(file) = rest
                .strip_suffix(": does not exist in index")
                .or_else(|| rest.strip_suffix(": No such file or directory"))
            {
                out.push(FailedHunk {
                    file: file.to_string(),
                    header: "(the file does not exist in the tree)".into(),
                    body: String::new(),
                });
            }
        }
    }
    out
}

fn find_hunk(patch: &str, file: &str, old_start: u64) -> Option<(String, String)> {
    let mut in_file = false;
    let mut lines = patch.lines().peekable();
    while let Some(l) = lines.next() {
        if let Some(rest) = l.strip_prefix("diff --git a/") {
            in_file = rest.split(" b/").next() == Some(file);
            continue;
        }
        if in_file && l.starts_with("@@ -") {
            let start: u64 = l[4..].split([',', ' ']).next()?.parse().ok()?;
            if start == old_start {
                let mut body = String::new();
                while let Some(b) = lines.peek() {
                    if b.starts_with("@@") || b.starts_with("diff --git") || b.starts_with("-- ") {
                        break;
                    }
                    body.push_str(b);
                    body.push('\n');
                    lines.next();
                }
                return Some((l.to_string(), body));
            }
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debians_ignore_all_rule_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let gi = dir.path().join(".gitignore");
        let upstream = "*.o\n\n# Rust analyzer configuration\n/rust-project.json\n";
        fs::write(&gi, format!("{upstream}{DEBIAN_IGNORE_ALL}")).unwrap();
        assert!(drop_debian_ignore_rule(&gi).unwrap());
        assert_eq!(fs::read_to_string(&gi).unwrap(), upstream);
        // Upstream's own file is left alone.
        assert!(!drop_debian_ignore_rule(&gi).unwrap());
        assert_eq!(fs::read_to_string(&gi).unwrap(), upstream);
    }

    /// A git repository with a `base` tag and one commit after it, that
    /// commit's format-patch file, and a scratch folder.
    fn one_patch_tree(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
        let tree = dir.join("linux");
        fs::create_dir_all(&tree).unwrap();
        let run = |args: &[&str]| {
            let out = Command::new("git")
                .arg("-C")
                .arg(&tree)
                .args(["-c", "user.name=Lab Test", "-c", "user.email=lab@example.org"])
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&["init", "-q", "-b", "main"]);
        fs::write(tree.join("memory.c"), "int a;\n").unwrap();
        run(&["add", "memory.c"]);
        run(&["commit", "-q", "-m", "base"]);
        run(&["tag", BASE_TAG]);
        fs::write(tree.join("memory.c"), "int a;\nint b;\n").unwrap();
        run(&["commit", "-q", "-a", "-m", "mm: add b", "-m", "Because."]);
        let names = format_patches(&tree, &dir.join("patches"), "HEAD").unwrap();
        (tree, dir.join("patches").join(&names[0]), dir.join("scratch"))
    }

    #[test]
    fn a_commit_holds_the_series_while_its_patches_are_the_stored_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (tree, patch, scratch) = one_patch_tree(dir.path());
        let head = head(&tree).unwrap();
        assert_eq!(same_series(&tree, &head, std::slice::from_ref(&patch), &scratch).unwrap(), Some(vec![]));
        // The base holds no patch; a series of two is not a series of one.
        assert_eq!(same_series(&tree, BASE_TAG, std::slice::from_ref(&patch), &scratch).unwrap(), None);
        assert_eq!(same_series(&tree, &head, &[patch.clone(), patch.clone()], &scratch).unwrap(), None);
        // A stored patch whose message moved on is another patch.
        let text = fs::read_to_string(&patch).unwrap().replace("Because.", "Because of the walk.");
        fs::write(&patch, text).unwrap();
        assert_eq!(same_series(&tree, &head, std::slice::from_ref(&patch), &scratch).unwrap(), None);
        assert!(!scratch.exists(), "the scratch folder is left behind");
    }

    #[test]
    fn hunks_are_found_by_file_and_line() {
        let patch = "diff --git a/mm/a.c b/mm/a.c\n--- a/mm/a.c\n+++ b/mm/a.c\n@@ -3,2 +3,2 @@ f\n x\n-y\n+z\n\
                     diff --git a/mm/b.c b/mm/b.c\n--- a/mm/b.c\n+++ b/mm/b.c\n@@ -3,2 +3,2 @@ g\n p\n-q\n+r\n";
        let (header, body) = find_hunk(patch, "mm/b.c", 3).unwrap();
        assert_eq!(header, "@@ -3,2 +3,2 @@ g");
        assert_eq!(body, " p\n-q\n+r\n");
        assert!(find_hunk(patch, "mm/b.c", 4).is_none());
    }
}
