//! Who a patch goes to: `scripts/get_maintainer.pl` of the tree, read the
//! way `git send-email` uses it.

use anyhow::Result;
use serde::Serialize;
use std::path::Path;
use std::process::Command;

use crate::cmd;
use crate::root::Root;

/// get_maintainer.pl's answer for one patch, split the way `git send-email`
/// uses it: maintainers and reviewers go in To, lists and others in Cc.
/// `lists` are the Cc entries that are a subsystem's list ("open
/// list:SECTION"), not the catch-all linux-kernel list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Recipients {
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub lists: Vec<String>,
}

/// Reads `get_maintainer.pl` output with role statistics ("Name <a@b>
/// (maintainer:SECTION)", "list@x (open list:SECTION)").
pub fn parse_maintainers(out: &str) -> Recipients {
    let mut r = Recipients::default();
    for line in out.lines().map(str::trim).filter(|l| l.contains('@')) {
        // A name may have parentheses of its own ("Matthew Wilcox (Oracle)
        // <willy@infradead.org>"): the role comes after the address.
        let after = line.rfind('>').map_or(0, |i| i + 1);
        let (addr, role) = match line[after..].find(" (") {
            Some(i) => (&line[..after + i], &line[after + i + 2..]),
            None => (line, ""),
        };
        if ["maintainer:", "supporter:", "reviewer:"].iter().any(|r| role.starts_with(r)) {
            r.to.push(addr.to_string());
        } else {
            if role.contains("list:") {
                r.lists.push(addr.to_string());
            }
            r.cc.push(addr.to_string());
        }
    }
    r
}

/// `scripts/get_maintainer.pl` on `patch`, with role statistics and
/// without git history (what [`parse_maintainers`] reads).
pub fn get_maintainer(root: &Root, tree: &Path, patch: &Path) -> Command {
    let mut c = root.command(tree.join("scripts/get_maintainer.pl"));
    c.current_dir(tree).args(["--no-git", "--no-git-fallback"]).arg(patch);
    c
}

/// The MAINTAINERS sections that cover `file` (a path in `tree`, which must
/// exist there), from `get_maintainer.pl --sections`, without the catch-all
/// `THE REST`.
pub fn sections(root: &Root, tree: &Path, file: &str) -> Result<Vec<String>> {
    let mut c = root.command(tree.join("scripts/get_maintainer.pl"));
    c.current_dir(tree).args(["--no-git", "--no-git-fallback", "--sections", "-f", file]);
    Ok(parse_sections(&cmd::output(&mut c)?))
}

/// Section names are the lines that are not `X:\tvalue` entries.
fn parse_sections(out: &str) -> Vec<String> {
    out.lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty() && l.as_bytes().get(1) != Some(&b':'))
        .filter(|l| *l != "THE REST")
        .map(str::to_string)
        .collect()
}

/// Everyone any of `all` goes to, first seen first; an address that is a
/// To anywhere is not also a Cc.
pub fn union(all: &[Recipients]) -> Recipients {
    let mut out = Recipients::default();
    for r in all {
        for a in &r.to {
            if !out.to.contains(a) {
                out.to.push(a.clone());
            }
        }
    }
    for r in all {
        for a in &r.cc {
            if !out.to.contains(a) && !out.cc.contains(a) {
                out.cc.push(a.clone());
            }
        }
    }
    out
}

/// How the recipients of one patch file are found.
pub type Maintainers<'a> = &'a dyn Fn(&Path) -> Result<Recipients>;

/// get_maintainer.pl of the tree, as `make check` runs it.
pub fn lookup<'a>(root: &'a Root, tree: &'a Path) -> impl Fn(&Path) -> Result<Recipients> + 'a {
    move |patch: &Path| Ok(parse_maintainers(&cmd::output(&mut get_maintainer(root, tree, patch))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_leave_out_the_catch_all() {
        let out = "MEMORY MANAGEMENT - RUST\nM:\tAlice Ryhl <aliceryhl@google.com>\nF:\trust/kernel/mm/\n\n\
                   RUST\nM:\tMiguel Ojeda <ojeda@kernel.org>\n\nTHE REST\nM:\tLinus Torvalds <torvalds@linux-foundation.org>\n";
        assert_eq!(parse_sections(out), ["MEMORY MANAGEMENT - RUST", "RUST"]);
        assert!(parse_sections("THE REST\nM:\tLinus Torvalds <torvalds@linux-foundation.org>\n").is_empty());
    }

    #[test]
    fn roles_split_into_to_and_cc() {
        let out = "Andrew Morton <akpm@linux-foundation.org> (maintainer:MEMORY MANAGEMENT)\n\
                   \"Matthew Wilcox (Oracle)\" <willy@infradead.org> (reviewer:MEMORY MANAGEMENT)\n\
                   linux-mm@kvack.org (open list:MEMORY MANAGEMENT)\n\
                   linux-kernel@vger.kernel.org (open list)\n";
        let r = parse_maintainers(out);
        assert_eq!(
            r.to,
            ["Andrew Morton <akpm@linux-foundation.org>", "\"Matthew Wilcox (Oracle)\" <willy@infradead.org>"]
        );
        assert_eq!(r.cc, ["linux-mm@kvack.org", "linux-kernel@vger.kernel.org"]);
        assert_eq!(r.lists, ["linux-mm@kvack.org"]);
    }

    #[test]
    fn the_union_names_everyone_once() {
        let a = Recipients { to: vec!["M <m@x>".into()], cc: vec!["l@x".into()], lists: vec![] };
        let b = Recipients { to: vec!["N <n@x>".into()], cc: vec!["l@x".into(), "M <m@x>".into()], lists: vec![] };
        let u = union(&[a, b]);
        assert_eq!(u.to, ["M <m@x>", "N <n@x>"]);
        assert_eq!(u.cc, ["l@x"]);
    }

    #[test]
    fn maintainers_split() {
        let out = "Andrew Morton <akpm@linux-foundation.org> (maintainer:MEMORY MANAGEMENT)\n\
                   Miguel Ojeda <ojeda@kernel.org> (maintainer:RUST)\n\
                   Boqun Feng <boqun.feng@gmail.com> (reviewer:RUST)\n\
                   \"Matthew Wilcox (Oracle)\" <willy@infradead.org> (maintainer:PAGE CACHE)\n\
                   linux-mm@kvack.org (open list:MEMORY MANAGEMENT)\n\
                   linux-kernel@vger.kernel.org (open list)\n";
        let r = parse_maintainers(out);
        assert_eq!(r.to.len(), 4);
        assert_eq!(r.to[3], "\"Matthew Wilcox (Oracle)\" <willy@infradead.org>");
        assert_eq!(r.cc, vec!["linux-mm@kvack.org", "linux-kernel@vger.kernel.org"]);
        assert_eq!(r.lists, vec!["linux-mm@kvack.org"]);
        // The catch-all list alone is no subsystem's list.
        let r = parse_maintainers("linux-kernel@vger.kernel.org (open list)\n");
        assert!(r.lists.is_empty());
    }
}
