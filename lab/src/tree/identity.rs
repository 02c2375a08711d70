//! Whether a tree's commits are the stored series: each patch's change
//! (`git patch-id --verbatim`), author and message, read the same way on
//! both sides (the tree's commits through their own export).

use anyhow::{anyhow, bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd;
use crate::git::{git, BASE_TAG};

/// Writes the commits after `base` as format-patch files into `dir`, and
/// returns their file names in order.
pub(super) fn format_patches(tree: &Path, dir: &Path, tip: &str) -> Result<Vec<String>> {
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
pub(super) fn same_series(tree: &Path, tip: &str, series: &[PathBuf], scratch: &Path) -> Result<Option<Vec<String>>> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

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
        let head = crate::tree::head(&tree).unwrap();
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
}
