//! checkpatch.pl's verdict, and the commits a `Fixes:` tag or a
//! backport's `commit <id> upstream.` line may name (config/known-commits).

use anyhow::{bail, Result};
use regex::Regex;
use std::sync::LazyLock;

/// checkpatch.pl's closing count.
static CHECKPATCH_TOTAL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"total: (\d+) errors, (\d+) warnings, (\d+) checks").expect("valid regex"));

/// Reads checkpatch.pl's output: `(errors, warnings, checks)` and the
/// first line of each message.
pub fn parse_checkpatch(out: &str) -> Option<((u32, u32, u32), Vec<String>)> {
    let c = CHECKPATCH_TOTAL.captures(out)?;
    let n = |i: usize| c[i].parse().unwrap_or(u32::MAX);
    let msgs = out
        .lines()
        .filter(|l| l.starts_with("ERROR:") || l.starts_with("WARNING:") || l.starts_with("CHECK:"))
        .map(str::to_string)
        .collect();
    Some(((n(1), n(2), n(3)), msgs))
}

/// Files a commit changes.
/// A commit a Fixes: tag may name (config/known-commits).
#[derive(Debug, PartialEq)]
pub struct KnownCommit {
    pub id: String,
    pub subject: String,
}

/// Reads config/known-commits: `<40-digit id> <subject>` lines, `#`
/// comments and blank lines.
pub fn parse_known_commits(text: &str) -> Result<Vec<KnownCommit>> {
    let mut known = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (id, subject) = line.split_once(' ').unwrap_or((line, ""));
        if id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || subject.trim().is_empty() {
            bail!("config/known-commits line {}: expected `<40-digit id> <subject>`, got `{line}`", n + 1);
        }
        known.push(KnownCommit { id: id.to_ascii_lowercase(), subject: subject.trim().to_string() });
    }
    Ok(known)
}

/// The commits a patch names that `known` does not hold, each with what is
/// wrong: its Fixes: tags (an id of at least 12 digits that starts a known
/// id, and that commit's subject) and, for a backport, its `commit <id>
/// upstream.` line (the full id of a known commit whose subject is the
/// patch's own, as stable backports keep it).
pub fn unknown_commits(patch: &str, known: &[KnownCommit]) -> Vec<String> {
    let mut bad = unknown_fixes(patch, known);
    let message = patch.lines().take_while(|l| *l != "---");
    for line in message.filter(|l| l.starts_with("commit ") && l.contains(" upstream")) {
        let Some(id) = upstream_id(line) else {
            bad.push(format!("`{line}`: not `commit <40-digit id> upstream.`"));
            continue;
        };
        match known.iter().find(|k| k.id == id) {
            None => bad.push(format!(
                "`{line}`: {id} is not in config/known-commits; check it in mainline \
                 (git log -1 --format='%H %s' {id}) and add it"
            )),
            Some(k) if crate::tree::mail_subject(patch).as_deref() != Some(k.subject.as_str()) => bad.push(format!(
                "`{line}`: the patch's subject is not \"{}\", the upstream commit's in config/known-commits",
                k.subject
            )),
            Some(_) => {}
        }
    }
    bad
}

/// The upstream id a backport's `commit <40-digit id> upstream.` line
/// names, lower case; None for any other line.
pub fn upstream_id(line: &str) -> Option<String> {
    static UPSTREAM: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^commit ([0-9a-fA-F]{40}) upstream\.$").unwrap());
    UPSTREAM.captures(line.trim_end()).map(|c| c[1].to_ascii_lowercase())
}

/// The Fixes: tags of a patch that name no commit of `known` (by an id of
/// at least 12 digits that starts a known id, and that commit's subject),
/// each with what is wrong.
fn unknown_fixes(patch: &str, known: &[KnownCommit]) -> Vec<String> {
    static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r#"^Fixes: ([0-9a-fA-F]{12,40}) \("(.*)"\)$"#).unwrap());
    let mut bad = Vec::new();
    // The tags are in the commit message, before the diffstat's `---`.
    for line in patch.lines().take_while(|l| *l != "---").filter(|l| l.starts_with("Fixes:")) {
        let Some(c) = TAG.captures(line) else {
            bad.push(format!("`{line}`: not `Fixes: <12+ digit id> (\"<subject>\")`"));
            continue;
        };
        let (id, subject) = (c[1].to_ascii_lowercase(), &c[2]);
        match known.iter().find(|k| k.id.starts_with(&id)) {
            None => bad.push(format!(
                "`{line}`: {id} is not in config/known-commits; check it in mainline \
                 (git log -1 --format='%H %s' {id}) and add it"
            )),
            Some(k) if k.subject != subject => {
                bad.push(format!("`{line}`: {} is \"{}\" in config/known-commits", k.id, k.subject))
            }
            Some(_) => {}
        }
    }
    bad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpatch_totals() {
        let out = "WARNING: added, moved or deleted file(s), does MAINTAINERS need updating?\n#12: \n\n\
                   total: 0 errors, 1 warnings, 0 checks, 40 lines checked\n";
        let (t, msgs) = parse_checkpatch(out).unwrap();
        assert_eq!(t, (0, 1, 0));
        assert_eq!(msgs.len(), 1);
        assert!(parse_checkpatch("no total here").is_none());
    }

    #[test]
    fn fixes_tags_must_name_a_known_commit() {
        let known = parse_known_commits(
            "# comment\n\n29a22b9e08d70d6c9b075c12c47b6e895cb65cf0 mm: handle userfaults under VMA lock\n",
        )
        .unwrap();
        assert_eq!(known.len(), 1);
        let patch = |tag: &str| format!("Subject: [PATCH] x\n\nWhy.\n\n{tag}\nSigned-off-by: A <a@b>\n---\n f | 1 +\n");
        let good = patch("Fixes: 29a22b9e08d7 (\"mm: handle userfaults under VMA lock\")");
        assert!(unknown_fixes(&good, &known).is_empty());
        // The mm-unstable id of the same change: not the mainline one.
        let unknown = unknown_fixes(&patch("Fixes: 50b88b63e3e4 (\"mm: handle userfaults under VMA lock\")"), &known);
        assert!(unknown.len() == 1 && unknown[0].contains("not in config/known-commits"), "{unknown:?}");
        let subject =
            unknown_fixes(&patch("Fixes: 29a22b9e08d7 (\"mm: handle userfaults under the VMA lock\")"), &known);
        assert!(
            subject.len() == 1 && subject[0].contains("is \"mm: handle userfaults under VMA lock\""),
            "{subject:?}"
        );
        assert_eq!(unknown_fixes(&patch("Fixes: 29a22b9 (\"mm: handle userfaults under VMA lock\")"), &known).len(), 1);
        // Only the commit message counts, not a diff that adds such a line.
        assert!(unknown_fixes(&format!("{good}+Fixes: 0123456789ab (\"x\")\n"), &known).is_empty());
        assert!(parse_known_commits("29a22b9e08d7 short id\n").is_err());
        // The repository's own list parses.
        let ours = include_str!("../../../config/known-commits");
        assert!(!parse_known_commits(ours).unwrap().is_empty());
    }

    #[test]
    fn backports_name_a_known_upstream_commit_with_its_subject() {
        let known =
            parse_known_commits("e7572e5deaf3bc36818f19ba35ac8e0c454c8bac rust: types: add `NotThreadSafe`\n").unwrap();
        let patch = |subject: &str, line: &str| {
            format!("Subject: [PATCH 03/14] {subject}\n\n{line}\n\nWhy.\n\nSigned-off-by: A <a@b>\n---\n f | 1 +\n")
        };
        let line = "commit e7572e5deaf3bc36818f19ba35ac8e0c454c8bac upstream.";
        assert!(unknown_commits(&patch("rust: types: add `NotThreadSafe`", line), &known).is_empty());
        // A subject that format-patch folded over two lines.
        let folded = patch("rust: types: add\n `NotThreadSafe`", line);
        assert!(unknown_commits(&folded, &known).is_empty(), "{:?}", unknown_commits(&folded, &known));
        let other = unknown_commits(&patch("rust: types: add a marker", line), &known);
        assert!(other.len() == 1 && other[0].contains("subject is not"), "{other:?}");
        let unknown = unknown_commits(&patch("x", "commit 0123456789abcdef0123456789abcdef01234567 upstream."), &known);
        assert!(unknown.len() == 1 && unknown[0].contains("not in config/known-commits"), "{unknown:?}");
        let short =
            unknown_commits(&patch("rust: types: add `NotThreadSafe`", "commit e7572e5deaf3 upstream."), &known);
        assert!(short.len() == 1 && short[0].contains("40-digit"), "{short:?}");
        // The repository's own 6.12 backports name known commits.
        let ours = parse_known_commits(include_str!("../../../config/known-commits")).unwrap();
        for p in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../patches/6.12")).unwrap() {
            let text = std::fs::read_to_string(p.unwrap().path()).unwrap();
            assert!(unknown_commits(&text, &ours).is_empty(), "{:?}", unknown_commits(&text, &ours));
        }
    }
}
