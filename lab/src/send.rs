//! `make send`: the series as the mail that goes to linux-mm, through b4
//! ([`crate::b4`]).
//!
//! b4 keeps the series on a prep branch in build/<base>/send/repo: the
//! cover letter (from `patches/<base>/0000-cover-letter.patch`), To and Cc
//! from get_maintainer.pl (`b4 prep --auto-to-cc`: every message goes to
//! everyone, the cover letter also to the patches' own `Cc:` trailers), the
//! change-id and the revision. Without `--really`, `b4 send -o` writes the
//! messages to build/<base>/send/mail (which `git send-email` can send as
//! well); with it, `b4 send` sends them with the developer's git
//! configuration (sendemail.*), asking first, and rerolls to the next
//! revision. With `--loopback` a fresh prep branch is sent for real, to a
//! mail server of its own on 127.0.0.1 ([`crate::smtp`]); what arrived must
//! reach everyone get_maintainer.pl names, and `git am` of it on a fresh
//! checkout of `base` must give the tree's commits, byte for byte.

use anyhow::{bail, Context, Result};
use regex::Regex;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use crate::b4::Prep;
use crate::base::Base;
use crate::cmd;
use crate::cover::{header, read_cover, split_mail, Cover};
use crate::git::{self, git, series_files, tree_id, BASE_TAG};
use crate::layout::Layout;
use crate::maintainers::{self, union, Maintainers};
use crate::root::Root;
use crate::smtp;
use crate::tree::COVER_LETTER;

/// The identity the loopback round trip sends as when git has none.
pub const LOOPBACK_SENDER: &str = "lab round trip <lab@localhost>";

/// What a round trip received, checked against what was sent.
#[derive(Debug)]
pub struct RoundTrip {
    pub messages: usize,
    pub recipients: usize,
    pub tree: String,
}

/// Prepares a fresh b4 branch of `commit` with `cover` in `work`, sends it
/// with `b4 send` to a server on loopback, checks that each message reached
/// everyone `maintainers` names for any patch, applies what arrived to a
/// fresh checkout of `base` and checks that the result is `commit`.
///
/// `work` holds the send repository, the received messages, the logs and
/// the checkout (removed after a match).
pub fn round_trip(
    root: &Root,
    tree: &Path,
    commit: &str,
    cover: &Cover,
    from: &str,
    work: &Path,
    maintainers: Maintainers<'_>,
) -> Result<RoundTrip> {
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work)?;
    let prep = Prep::prepare(root, tree, &work.join("repo"), commit, cover, from)?;
    let mail = prep.write_mail(&work.join("mail"), &work.join("b4-send-o.log"))?;
    let Some((_, patches)) = mail.split_first() else { bail!("b4 wrote no message") };
    let mut wanted = Vec::new();
    for p in patches {
        wanted.push(maintainers(p).with_context(|| format!("get_maintainer.pl on {}", p.display()))?);
    }
    let wanted = union(&wanted);

    let server = smtp::Server::start()?;
    let log = work.join("b4-send.log");
    eprintln!("lab: b4 send: {} messages to 127.0.0.1:{} (log: {})", mail.len(), server.port(), log.display());
    let port = server.port().to_string();
    // The lab's own checks (make check) stand for b4's pre-flight ones.
    let mut c = prep.command_with_config(&[
        ("sendemail.smtpserver", "127.0.0.1"),
        ("sendemail.smtpserverport", &port),
        ("b4.prep-pre-flight-checks", "disable-all"),
    ]);
    c.args(["send", "--no-sign"]);
    // b4 asks before it sends: the answer is on its input.
    let answer = work.join("answer");
    fs::write(&answer, "\n")?;
    cmd::run_logged_with_input(&mut c, fs::File::open(&answer)?, &log, |_| {})
        .context("b4 send could not deliver the series on loopback")?;

    let got = server.received();
    if got.len() != mail.len() {
        bail!("b4 wrote {} messages, the server received {} (log: {})", mail.len(), got.len(), log.display());
    }
    let inbox = work.join("received");
    fs::create_dir_all(&inbox)?;
    let mut mails = Vec::new();
    let mut rcpts = 0;
    let mut all_trailers = Vec::new();
    let texts: Vec<String> = got.iter().map(|m| String::from_utf8_lossy(&m.data).replace("\r\n", "\n")).collect();
    for text in texts.iter().skip(1) {
        all_trailers.extend(trailer_addresses(split_mail(text).1));
    }
    for (i, (m, text)) in got.iter().zip(&texts).enumerate() {
        let file = inbox.join(format!("{i:04}.eml"));
        fs::write(&file, text)?;
        let subject = header(split_mail(text).0, "Subject").unwrap_or_default();
        let n = SUBJECT_NUMBER.captures(&subject).map(|c| c[1].parse::<usize>().unwrap_or(usize::MAX));
        if n != Some(i) {
            bail!("message {i} arrived out of order or without its number: `{subject}` ({})", file.display());
        }
        // Every message goes to everyone get_maintainer.pl names for any
        // patch; besides, b4 adds the addresses of a patch's own trailers
        // (Cc: stable@..., Signed-off-by) to that patch and to the cover
        // letter, and may add the sender.
        let want: Vec<&str> = wanted.to.iter().chain(&wanted.cc).map(|a| address(a)).collect();
        for addr in &want {
            if !m.rcpt.iter().any(|r| r.eq_ignore_ascii_case(addr)) {
                bail!("`{subject}` did not go to {addr} (it went to {}; {})", m.rcpt.join(", "), file.display());
            }
        }
        let own: Vec<&str> =
            if i == 0 { all_trailers.clone() } else { trailer_addresses(split_mail(text).1).collect() };
        let named: Vec<&str> = own.into_iter().chain([address(from)]).collect();
        if let Some(extra) = m.rcpt.iter().find(|r| !want.iter().chain(&named).any(|a| a.eq_ignore_ascii_case(r))) {
            bail!(
                "`{subject}` also went to {extra}, whom neither get_maintainer.pl nor the series' own trailers \
                 name ({})",
                file.display()
            );
        }
        rcpts += m.rcpt.len();
        if i > 0 {
            mails.push(file);
        }
    }

    let checkout = work.join("base");
    eprintln!("lab: checking out base in {} and applying the {} patches received", checkout.display(), mails.len());
    sparse_checkout(tree, &checkout).context("cannot check out base for the round trip")?;
    let res = apply_and_compare(tree, commit, &checkout, &mails, work);
    if res.is_ok() {
        let _ = fs::remove_dir_all(&checkout);
    }
    let tree_hash = res?;
    Ok(RoundTrip { messages: got.len(), recipients: rcpts, tree: tree_hash })
}

/// A fresh clone of `tree` at `dir` (sharing its objects, so nothing is
/// written into `tree`), on `base`, with only the files the series changes
/// checked out: `git am` needs no others, and the commits it makes still
/// have whole trees. (A full kernel checkout takes a minute and a half
/// here; this takes seconds.)
fn sparse_checkout(tree: &Path, dir: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(dir);
    cmd::output(Command::new("git").args(["clone", "--quiet", "--shared", "--no-checkout"]).arg(tree).arg(dir))?;
    let mut set = git(dir);
    set.args(["sparse-checkout", "set", "--no-cone"]);
    // Anchored patterns: exactly these paths.
    set.args(series_files(tree)?.iter().filter(|f| !f.is_empty()).map(|f| format!("/{f}")));
    cmd::output(&mut set)?;
    cmd::output(git(dir).args(["checkout", "--quiet", "--detach", BASE_TAG]))?;
    Ok(())
}

/// `[PATCH RFC 03/15]`: the number.
static SUBJECT_NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\[.*?(\d+)/\d+\]").expect("valid regex"));

/// The addresses of a mail body's trailers that b4 (like git send-email)
/// copies into the recipients: those of `Cc:` lines and of `*-by:`
/// trailers such as Signed-off-by and Reviewed-by.
fn trailer_addresses(body: &str) -> impl Iterator<Item = &str> {
    body.lines()
        .filter_map(|l| {
            let (tag, value) = l.split_once(": ")?;
            let is_trailer = tag.eq_ignore_ascii_case("cc")
                || (tag.len() > 3 && tag[tag.len() - 3..].eq_ignore_ascii_case("-by") && !tag.contains(' '));
            is_trailer.then_some(value)
        })
        .map(address)
}

/// The address of `Name <addr>` or of a bare `addr`, without a trailing
/// `# comment` (as in `Cc: stable@vger.kernel.org # 6.6.x`).
fn address(a: &str) -> &str {
    let a = a.split_once(" #").map_or(a, |(a, _)| a);
    match (a.rfind('<'), a.rfind('>')) {
        (Some(s), Some(e)) if s < e => &a[s + 1..e],
        _ => a.trim(),
    }
}

/// Each commit's author and message after `base`, in order. (Not the
/// date: b4 dates each mail when it sends it, and git am takes the author
/// date from the mail.)
fn commits(repo: &Path, tip: &str) -> Result<Vec<String>> {
    let out =
        cmd::output(git(repo).args(["log", "--reverse", "--format=%an <%ae>%n%B%x00", &format!("{BASE_TAG}..{tip}")]))?;
    Ok(out.split('\0').map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect())
}

/// Applies `mails` in order to `checkout` (at `base`) and checks that the
/// result is `commit` of `tree`: the same tree object, and each commit
/// with the same author and message. Returns the tree's hash.
fn apply_and_compare(tree: &Path, commit: &str, checkout: &Path, mails: &[PathBuf], work: &Path) -> Result<String> {
    let log = work.join("am.log");
    let mut am = git(checkout);
    am.args(["-c", "user.name=lab round trip", "-c", "user.email=lab@localhost", "am", "--quiet"]).args(mails);
    cmd::run_logged(&mut am, &log, |_| {}).context("the received mail does not apply to base with git am")?;
    let want = tree_id(tree, commit)?;
    let got = tree_id(checkout, "HEAD")?;
    if want != got {
        let stat = cmd::output(git(tree).args(["diff", "--stat", commit, &got])).unwrap_or_default();
        bail!(
            "the received series applies, but its tree {got} is not the lab's {want}:\n{stat}checkout kept in {}",
            checkout.display()
        );
    }
    let (sent, applied) = (commits(tree, commit)?, commits(checkout, "HEAD")?);
    if sent.len() != applied.len() {
        bail!("{} commits were sent, {} applied (checkout kept in {})", sent.len(), applied.len(), checkout.display());
    }
    for (s, a) in sent.iter().zip(&applied) {
        if a != s {
            bail!("a commit changed on the way (checkout kept in {}):\nsent:\n{s}\napplied:\n{a}", checkout.display());
        }
    }
    Ok(got)
}

/// `lab send`: the mail under build/<base>/send/mail, then nothing more
/// (a dry run), `b4 send` with the developer's git configuration
/// (`really`), or the loopback round trip. The caller has brought the tree
/// up to date with patches/ (`pipeline::prepare_base`, which refuses a
/// dirty or diverged tree).
pub fn run(layout: &Layout, root: &Root, base: Base, really: bool, loopback: bool) -> Result<bool> {
    let tree = layout.tree(base);
    if crate::tree::read_series(&layout.patches(base))?.is_empty() {
        println!("make send: the {base} series is empty: nothing to send");
        return Ok(true);
    }
    let from = match git::sender(&tree) {
        Some(s) => s,
        None if loopback => LOOPBACK_SENDER.to_string(),
        None => bail!(
            "git has no identity to send with: set it with \
             `git config --global user.name 'Your Name'` and `git config --global user.email you@example.org`"
        ),
    };
    let dir = layout.base_dir(base).join("send");
    let cover = read_cover(&layout.patches(base).join(COVER_LETTER))?;
    let commit = git::head(&tree)?;
    if loopback {
        let gm = maintainers::lookup(root, &tree);
        let rt = round_trip(root, &tree, &commit, &cover, &from, &dir.join("loopback"), &gm)?;
        println!(
            "make send: round trip passed: {} messages through b4 send to 127.0.0.1, {} envelope recipients \
             (everyone get_maintainer.pl names, on every message), git am on base gives tree {}, the lab's tree",
            rt.messages, rt.recipients, rt.tree
        );
        return Ok(true);
    }
    let prep = Prep::prepare(root, &tree, &dir.join("repo"), &commit, &cover, &from)?;
    let files = prep.write_mail(&dir.join("mail"), &dir.join("b4-send-o.log"))?;
    for f in &files {
        let text = fs::read_to_string(f)?;
        let headers = split_mail(&text).0;
        let field = |k: &str| header(headers, k).unwrap_or_default();
        println!("{}\n  To: {}\n  Cc: {}", field("Subject"), field("To"), field("Cc"));
    }
    let revision = prep.revision()?;
    println!("mail: {} (b4 branch {} in {})", dir.join("mail").display(), crate::b4::BRANCH, prep.repo.display());
    if !really {
        println!(
            "make send: dry run: b4 wrote {} messages of v{revision} as {from}; `make send SEND=1` sends them \
             with b4 and your git configuration (sendemail.*), asking first",
            files.len()
        );
        return Ok(true);
    }
    // The developer's own configuration (SMTP server, patatt signing): their
    // home is shared with the root for it, and b4 asks at the terminal.
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_dir());
    let mut c = prep.developer_command(home.as_deref());
    c.arg("send");
    let status = c.status().context("cannot run b4 send")?;
    if !status.success() {
        bail!("b4 send stopped ({status}): nothing was sent after its last \"Sent\" line");
    }
    println!("make send: b4 sent v{revision} as {from}; its branch is now at v{}", prep.revision()?);
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::maintainers::Recipients;
    use crate::testing::{in_root, InRoot};

    #[test]
    fn addresses_and_the_trailers_that_add_recipients_are_read() {
        assert_eq!(address("M <m@x>"), "m@x");
        assert_eq!(address("stable@vger.kernel.org # 6.6.x"), "stable@vger.kernel.org");
        assert_eq!(address("<stable@vger.kernel.org> # 3.3.x: a1f84a3: sched: x"), "stable@vger.kernel.org");
        let body = "Why.\n\nThe fix: a -> b.\n\nFixes: 29a22b9e08d7 (\"mm: x\")\n\
                    Cc: stable@vger.kernel.org\nReviewed-by: R Ev <r@x>\nSigned-off-by: A U Thor <a@x>\n";
        let got: Vec<&str> = trailer_addresses(body).collect();
        assert_eq!(got, ["stable@vger.kernel.org", "r@x", "a@x"]);
    }

    /// Stands for scripts/get_maintainer.pl as b4 runs it (the patch on its
    /// input): maintainers with --nol, lists with --nom; the patch adding
    /// `b` also has a keeper of its own.
    const GET_MAINTAINER: &str = "#!/bin/sh\n\
        patch=$(cat)\n\
        case \"$*\" in\n\
        *--nol*) echo '\"Bj\u{f6}rn M\" <m@example.org>'\n\
                 case \"$patch\" in *'mm: add b'*) echo 'B Keeper <b@example.org>';; esac;;\n\
        *--nom*) echo 'list@example.org';;\n\
        esac\n";

    /// A repository with `base` and two commits, and a kept cover letter.
    fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
        let repo = dir.join("repo");
        fs::create_dir_all(repo.join("scripts")).unwrap();
        let g = |args: &[&str]| {
            cmd::output(
                git(&repo)
                    .args(["-c", "user.name=A U Thor", "-c", "user.email=a@example.org"])
                    .args(args)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null"),
            )
            .unwrap()
        };
        g(&["init", "-q", "-b", "main"]);
        fs::write(repo.join("a"), "one\n").unwrap();
        let gm = repo.join("scripts/get_maintainer.pl");
        fs::write(&gm, GET_MAINTAINER).unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&gm, fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(repo.join("MAINTAINERS"), "THE REST\nL:\tlist@example.org\n").unwrap();
        g(&["add", "a", "scripts", "MAINTAINERS"]);
        g(&["commit", "-q", "-m", "base"]);
        g(&["tag", BASE_TAG]);
        fs::write(repo.join("a"), "one\ntwo\n").unwrap();
        // A fix for stable: b4 copies its Cc: trailer.
        g(&[
            "commit",
            "-q",
            "-am",
            "mm: add two\n\nBecause.\n\nCc: stable@example.org\nSigned-off-by: A U Thor <a@example.org>",
        ]);
        fs::write(repo.join("b"), "non-ASCII: \u{e9}\n").unwrap();
        g(&["add", "b"]);
        // A line that starts with a dot must survive SMTP's dot-stuffing.
        g(&["commit", "-q", "-m", "mm: add b\n\n.. and a dot\n\nSigned-off-by: A U Thor <a@example.org>"]);
        let cover = dir.join("cover.patch");
        fs::write(&cover, KEPT).unwrap();
        (repo, cover)
    }

    const KEPT: &str = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n\
        From: A U Thor <a@example.org>\nDate: Thu, 26 Nov 2026 11:14:12 +0000\n\
        Subject: [PATCH RFC 00/02] mm: a long title that git folds\n over two lines\n\n\
        Why.\n\nWhat.\n\nA U Thor (2):\n  one\n  two\n\n a | 1 +\n";

    /// What the round trip holds b4's envelope to: everyone the stand-in
    /// get_maintainer.pl names for any patch.
    fn fixed(_: &Path) -> Result<Recipients> {
        let to = vec!["\"Bj\u{f6}rn M\" <m@example.org>".to_string(), "B Keeper <b@example.org>".to_string()];
        Ok(Recipients { to, cc: vec!["list@example.org".into()], lists: vec![] })
    }

    #[test]
    fn the_series_makes_a_round_trip_through_b4() {
        // The build root's b4, on a folder of the checkout (which the root
        // shares).
        let InRoot { root, scratch: dir, .. } = in_root("usr/bin");
        let (repo, cover_file) = fixture(dir.path());
        let cover = read_cover(&cover_file).unwrap();
        let head = git::head(&repo).unwrap();
        let from = "Sen Der <s@example.org>";
        let rt = round_trip(&root, &repo, &head, &cover, from, &dir.path().join("rt"), &fixed).unwrap();
        assert_eq!(rt.messages, 3);
        assert_eq!(rt.tree, tree_id(&repo, "HEAD").unwrap());
        let first = fs::read_to_string(dir.path().join("rt/received/0000.eml")).unwrap();
        assert!(first.contains("[PATCH RFC 0/2] mm: a long title"), "{first}");
        assert!(first.contains("\nWhy.\n\nWhat.\n"), "{first}");
        assert!(first.contains("\nbase-commit: ") && first.contains("\nchange-id: "), "{first}");

        // The send repository keeps the lab's branches, the base and b4's
        // record of what it sent, not the clone's view of the work tree
        // (which moves on).
        let refs = cmd::output(git(&dir.path().join("rt/repo")).args(["for-each-ref", "--format=%(refname)"])).unwrap();
        let refs: Vec<&str> = refs.lines().filter(|r| !r.starts_with("refs/tags/sent/")).collect();
        assert_eq!(refs, ["refs/heads/b4-base", "refs/heads/fault-lock", "refs/tags/base"]);

        // A mail that changes on the way is caught: drop the second patch's
        // change from what the checkout gets.
        let mails: Vec<PathBuf> = vec![dir.path().join("rt/received/0001.eml")];
        let checkout = dir.path().join("short");
        sparse_checkout(&repo, &checkout).unwrap();
        let err = apply_and_compare(&repo, &head, &checkout, &mails, dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not the lab's"), "{err}");

        // A maintainer b4 did not reach is caught.
        let more = |p: &Path| -> Result<Recipients> {
            let mut r = fixed(p)?;
            r.cc.push("nobody@example.org".into());
            Ok(r)
        };
        let err = round_trip(&root, &repo, &head, &cover, from, &dir.path().join("rt2"), &more).unwrap_err();
        assert!(format!("{err:#}").contains("did not go to nobody@example.org"), "{err:#}");
    }
}
