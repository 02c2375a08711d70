//! The series as b4 keeps it: b4 (the kernel's tool for preparing and
//! sending series, Debian's, in the build root) works on a prep branch of
//! its own in a send repository beside the work tree.
//!
//! The send repository is a clone of the work tree that shares its objects,
//! with only what b4 and get_maintainer.pl read checked out (the files the
//! series changes, MAINTAINERS, scripts/get_maintainer.pl, .mailmap; b4
//! runs get_maintainer.pl with `--no-tree` there). Its branch
//! [`BRANCH`] is enrolled with `b4 prep` and keeps the cover letter in the
//! branch description (b4's `branch-description` strategy), so the series'
//! commits are the work tree's, unchanged. Each time the lab moves the
//! branch to the series, gives b4 the cover letter of
//! `patches/<base>/0000-cover-letter.patch` (subject prefix, title, text)
//! and lets `b4 prep --auto-to-cc` collect To and Cc from get_maintainer.pl.
//! b4 keeps the rest: the change-id, the revision (v1, then v2 once v1 is
//! sent, with `b4 prep --compare-to v1` for the range-diff), the `sent/`
//! tags, the base-commit and the shortlog.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd;
use crate::cover::{split_ident, Cover};
use crate::git::{git, series_files, BASE_TAG};
use crate::root::Root;

/// The prep branch of a send repository (b4 names the series after it).
pub const BRANCH: &str = "fault-lock";
/// The branch at `base` that the prep branch forks from.
const BASE_BRANCH: &str = "b4-base";

/// A send repository whose prep branch holds the series.
pub struct Prep {
    pub repo: PathBuf,
    root: Root,
}

/// The files of `tree` that b4 and get_maintainer.pl read, as anchored
/// sparse-checkout patterns.
fn sparse_patterns(tree: &Path) -> Result<Vec<String>> {
    let mut files = series_files(tree)?;
    files.extend(["MAINTAINERS", "scripts/get_maintainer.pl", ".mailmap", ".get_maintainer.ignore"].map(String::from));
    Ok(files.iter().filter(|f| !f.is_empty()).map(|f| format!("/{f}")).collect())
}

/// The cover letter as b4 keeps it: the title, then the text (b4 makes the
/// subject's prefix and numbers, the shortlog, diffstat and base-commit).
pub fn cover_text(cover: &Cover) -> String {
    format!("{}\n\n{}\n", cover.title, cover.blurb)
}

/// The subject prefixes after `PATCH` (`RFC`), for `b4 prep --set-prefixes`.
pub fn prefixes(cover: &Cover) -> Vec<String> {
    cover.prefix.split_whitespace().filter(|p| *p != "PATCH").map(str::to_string).collect()
}

impl Prep {
    /// Brings the send repository at `repo` to `commit` of `tree` with the
    /// cover letter `cover`, and To/Cc from get_maintainer.pl; the commits
    /// are signed by nobody new and sent as `from` (`Name <address>`, the
    /// repository's own identity).
    pub fn prepare(root: &Root, tree: &Path, repo: &Path, commit: &str, cover: &Cover, from: &str) -> Result<Prep> {
        let prep = Prep { repo: repo.to_path_buf(), root: root.clone() };
        let (name, email) = split_ident(from)?;
        if !repo.join(".git").is_dir() {
            let _ = fs::remove_dir_all(repo);
            if let Some(parent) = repo.parent() {
                fs::create_dir_all(parent)?;
            }
            cmd::output(
                Command::new("git").args(["clone", "--quiet", "--shared", "--no-checkout"]).arg(tree).arg(repo),
            )
            .with_context(|| format!("cannot make the send repository {}", repo.display()))?;
            // The cover letter goes in the branch description: the branch
            // is the series, commit for commit.
            prep.config("b4.prep-cover-strategy", "branch-description")?;
        }
        // get_maintainer.pl as b4 runs it by default, but told that the
        // checkout is a kernel tree although it holds only what it reads.
        let gm = repo.join("scripts/get_maintainer.pl");
        for (key, role) in [("b4.send-auto-to-cmd", "--nol"), ("b4.send-auto-cc-cmd", "--nom")] {
            let cmdline = format!(
                "{} --no-tree --nogit --nogit-fallback --nogit-chief-penguins --norolestats {role}",
                gm.display()
            );
            prep.config(key, &cmdline)?;
        }
        prep.config("user.name", name)?;
        prep.config("user.email", email)?;
        let mut set = git(repo);
        set.args(["sparse-checkout", "set", "--no-cone"]).args(sparse_patterns(tree)?);
        cmd::output(&mut set)?;
        // The shared clone sees the work tree's objects: the commit is here.
        cmd::output(git(repo).args(["checkout", "--quiet", "-f", "-B", BRANCH, commit]))
            .with_context(|| format!("cannot move {BRANCH} in {} to the series", repo.display()))?;
        prep.forget_origin()?;
        let enrolled =
            cmd::output(git(repo).args(["config", "--get", &format!("branch.{BRANCH}.b4-tracking")])).is_ok();
        if !enrolled {
            // b4 wants the fork point as a branch that holds it alone.
            cmd::output(git(repo).args(["branch", "-f", BASE_BRANCH, &format!("{BASE_TAG}^{{commit}}")]))?;
            prep.b4(&["prep", "--enroll", BASE_BRANCH]).context("b4 prep --enroll")?;
        }
        let want = prefixes(cover);
        if !want.is_empty() {
            let mut args = vec!["prep", "--set-prefixes"];
            args.extend(want.iter().map(String::as_str));
            prep.b4(&args).context("b4 prep --set-prefixes")?;
        }
        // b4 edits the cover letter in core.editor: the editor copies ours.
        let file = repo.join(".git").join("lab-cover.txt");
        fs::write(&file, cover_text(cover))?;
        let mut edit = prep.command_with_config(&[("core.editor", &format!("cp {}", file.display()))]);
        edit.args(["prep", "--edit-cover"]);
        cmd::output(&mut edit).context("b4 prep --edit-cover")?;
        prep.b4(&["prep", "--auto-to-cc"]).context("b4 prep --auto-to-cc (get_maintainer.pl)")?;
        Ok(prep)
    }

    /// Drops what the clone brought besides the objects: its `origin`
    /// remote and the branch that tracks it. They would keep the work
    /// tree's commits of the clone's day, a series that moved on since.
    fn forget_origin(&self) -> Result<()> {
        let heads = cmd::output(git(&self.repo).args([
            "for-each-ref",
            "--format=%(refname:short) %(upstream:remotename)",
            "refs/heads",
        ]))?;
        for name in heads.lines().filter_map(|l| l.strip_suffix(" origin")) {
            if name != BRANCH && name != BASE_BRANCH {
                cmd::output(git(&self.repo).args(["branch", "--quiet", "-D", name]))?;
            }
        }
        if cmd::output(git(&self.repo).arg("remote"))?.lines().any(|r| r == "origin") {
            cmd::output(git(&self.repo).args(["remote", "remove", "origin"]))?;
        }
        Ok(())
    }

    fn config(&self, key: &str, value: &str) -> Result<()> {
        cmd::output(git(&self.repo).args(["config", key, value])).map(drop)
    }

    /// b4 in the build root, in the send repository, with git's global and
    /// system configuration left out (the repository's own holds what b4
    /// needs).
    pub fn command(&self) -> Command {
        self.command_with_config(&[])
    }

    /// As [`Self::command`], with more git configuration for this command.
    pub fn command_with_config(&self, config: &[(&str, &str)]) -> Command {
        let mut c = self.root.command("b4");
        c.current_dir(&self.repo);
        c.env("GIT_CONFIG_GLOBAL", "/dev/null").env("GIT_CONFIG_NOSYSTEM", "1");
        c.env("GIT_CONFIG_COUNT", config.len().to_string());
        for (i, (k, v)) in config.iter().enumerate() {
            c.env(format!("GIT_CONFIG_KEY_{i}"), k).env(format!("GIT_CONFIG_VALUE_{i}"), v);
        }
        c
    }

    /// b4 in the build root, in the send repository, with the developer's
    /// own git configuration (`home`, shared with the root: sendemail.*,
    /// patatt) and the terminal: for a real `b4 send`.
    pub fn developer_command(&self, home: Option<&Path>) -> Command {
        let mut c = match home {
            Some(h) => {
                let mut shared = self.root.shared.clone();
                shared.push(h.to_path_buf());
                let mut c = Root::new(&self.root.dir, shared).command("b4");
                c.env("HOME", h);
                c
            }
            None => self.root.command("b4"),
        };
        c.current_dir(&self.repo);
        c
    }

    fn b4(&self, args: &[&str]) -> Result<String> {
        cmd::output(self.command().args(args))
    }

    /// The revision b4 will send next (1 until one was sent).
    pub fn revision(&self) -> Result<u32> {
        let out = self.b4(&["prep", "--show-info", "revision"])?;
        out.trim().parse().with_context(|| format!("b4 prep --show-info revision printed `{}`", out.trim()))
    }

    /// `b4 send -o dir`: the mail as it would go out, one file per message,
    /// in order, the cover letter first.
    pub fn write_mail(&self, dir: &Path, log: &Path) -> Result<Vec<PathBuf>> {
        let _ = fs::remove_dir_all(dir);
        let mut c = self.command();
        c.args(["send", "--no-sign", "-o"]).arg(dir);
        cmd::run_logged(&mut c, log, |_| {}).context("b4 send -o")?;
        let mut files: Vec<PathBuf> = fs::read_dir(dir)?.map(|e| e.map(|e| e.path())).collect::<Result<_, _>>()?;
        files.sort();
        if files.is_empty() {
            bail!("b4 send -o wrote no message into {} (log: {})", dir.display(), log.display());
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn b4_gets_the_kept_cover_letters_title_text_and_prefixes() {
        let c = Cover { prefix: "PATCH RFC".into(), title: "mm: a title".into(), blurb: "Why.\n\nWhat.".into() };
        assert_eq!(cover_text(&c), "mm: a title\n\nWhy.\n\nWhat.\n");
        assert_eq!(prefixes(&c), ["RFC"]);
        assert!(prefixes(&Cover { prefix: "PATCH".into(), ..c }).is_empty());
    }
}
