//! git on the host, for the work trees: one fixed, machine-independent
//! configuration, and the identity commits and mail are made with.

use std::path::Path;
use std::process::Command;

use crate::cmd;

/// The tag on the commit of every work tree that holds the unpacked Debian
/// source: the series is `base..HEAD`.
pub const BASE_TAG: &str = "base";

/// A git command on `tree` with a fixed, machine-independent environment.
pub fn git(tree: &Path) -> Command {
    let mut c = Command::new("git");
    c.arg("-C").arg(tree);
    // Output that ends up in patches/ must not depend on the user's config.
    c.args(["-c", "diff.algorithm=myers", "-c", "diff.noprefix=false", "-c", "diff.mnemonicPrefix=false"]);
    c.args(["-c", "format.signature=", "-c", "core.abbrev=12", "-c", "advice.detachedHead=false"]);
    c.env("GIT_TERMINAL_PROMPT", "0");
    c
}

/// The commit checked out in `tree`.
pub fn head(tree: &Path) -> anyhow::Result<String> {
    Ok(cmd::output(git(tree).args(["rev-parse", "HEAD"]))?.trim().to_string())
}

/// One half of the committer identity git would use in `tree`: the
/// environment variable `env`, else the configuration `key`; `None` when
/// neither is set.
pub fn identity_part(tree: &Path, env: &str, key: &str) -> Option<String> {
    std::env::var(env)
        .ok()
        .or_else(|| cmd::output(git(tree).args(["config", "--get", key])).ok())
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Gives `c` a committer identity when git in `tree` has none (`git am`
/// refuses to commit without one).
pub fn committer_env(c: &mut Command, tree: &Path) {
    if identity_part(tree, "GIT_COMMITTER_NAME", "user.name").is_none() {
        c.env("GIT_COMMITTER_NAME", "lab");
    }
    if identity_part(tree, "GIT_COMMITTER_EMAIL", "user.email").is_none() {
        c.env("GIT_COMMITTER_EMAIL", "lab@localhost");
    }
}

/// `Name <address>` as its two parts.
pub fn split_ident(s: &str) -> Option<(&str, &str)> {
    let (name, rest) = s.split_once('<')?;
    Some((name.trim(), rest.trim_end_matches('>').trim()))
}

/// The sender's identity (`Name <address>`) as git is configured in
/// `tree`, or `None` when no name or address is set.
pub fn sender(tree: &Path) -> Option<String> {
    let name = identity_part(tree, "GIT_COMMITTER_NAME", "user.name")?;
    let email = identity_part(tree, "GIT_COMMITTER_EMAIL", "user.email")?;
    Some(format!("{name} <{email}>"))
}

/// The tree object of a commit.
pub fn tree_id(repo: &Path, rev: &str) -> anyhow::Result<String> {
    Ok(cmd::output(git(repo).args(["rev-parse", &format!("{rev}^{{tree}}")]))?.trim().to_string())
}

/// Uncommitted changes to tracked files, as `git status --porcelain`
/// lists them; empty when there are none.
pub fn uncommitted(tree: &Path) -> anyhow::Result<String> {
    cmd::output(git(tree).args(["status", "--porcelain", "--untracked-files=no"]))
}

/// Files the series changes (`base..HEAD`).
pub fn series_files(tree: &Path) -> anyhow::Result<Vec<String>> {
    let out = cmd::output(git(tree).args(["diff", "--name-only", "--no-renames", &format!("{BASE_TAG}..HEAD")]))?;
    Ok(out.lines().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_split_at_the_address() {
        assert_eq!(split_ident("A U Thor <a@example.org>"), Some(("A U Thor", "a@example.org")));
        assert_eq!(split_ident("no address"), None);
    }
}
