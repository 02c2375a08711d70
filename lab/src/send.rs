//! `make send`: the series as the mail that goes to linux-mm.
//!
//! `git format-patch --cover-letter --base` writes the series with a
//! Signed-off-by from the sender's git identity. The cover letter takes its
//! subject and text from `patches/<base>/0000-cover-letter.patch`, and its
//! shortlog, diffstat and base-commit from the series as it is. Each mail
//! gets To and Cc from get_maintainer.pl; the cover letter goes to everyone
//! any patch goes to.
//!
//! `git send-email` is the build root's. Without `--really` it is a dry run
//! (`git send-email --dry-run`). With
//! `--loopback` it sends for real, to a mail server of its own on 127.0.0.1
//! ([`crate::smtp`]), then applies what arrived with `git am` on a fresh
//! checkout of `base` and checks that the result is the tree's, byte for
//! byte.

use anyhow::{bail, Context, Result};
use regex::Regex;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use crate::base::Base;
use crate::cmd;
use crate::cover::{format_patch, header, read_cover, split_ident, split_mail};
use crate::git::{self, git, series_files, tree_id, BASE_TAG};
use crate::layout::Layout;
use crate::maintainers::{self, union, Maintainers, Recipients};
use crate::root::Root;
use crate::smtp;
use crate::tree::COVER_LETTER;

/// Adds To and Cc headers, one address per line, at the end of a mail's
/// header block.
pub fn add_recipients(mail: &str, r: &Recipients) -> String {
    let (headers, body) = split_mail(mail);
    let mut s = headers.to_string();
    for a in &r.to {
        s.push_str(&format!("To: {a}\n"));
    }
    for a in &r.cc {
        s.push_str(&format!("Cc: {a}\n"));
    }
    s.push('\n');
    s.push_str(body);
    s
}

/// The series as mail: the files in sending order (cover letter first) and
/// each one's recipients.
pub struct Series {
    pub files: Vec<PathBuf>,
    pub recipients: Vec<Recipients>,
}

/// The identity the loopback round trip sends as when git has none.
pub const LOOPBACK_SENDER: &str = "lab round trip <lab@localhost>";

/// Writes the series from `base` to the tree's HEAD as mail into `dir`,
/// signed off by `from` (`Name <address>`).
pub fn format(tree: &Path, cover_file: &Path, dir: &Path, from: &str, maintainers: Maintainers<'_>) -> Result<Series> {
    let cover = read_cover(cover_file)?;
    let files = format_patch(tree, dir, &cover, Some(from))?;
    let Some((first, patches)) = files.split_first() else { bail!("the series is empty: nothing to send") };
    let mut recipients = Vec::new();
    for p in patches {
        recipients.push(maintainers(p).with_context(|| format!("get_maintainer.pl on {}", p.display()))?);
    }
    let all = union(&recipients);
    fs::write(first, add_recipients(&fs::read_to_string(first)?, &all))?;
    for (p, r) in patches.iter().zip(&recipients) {
        fs::write(p, add_recipients(&fs::read_to_string(p)?, r))?;
    }
    recipients.insert(0, all);
    Ok(Series { files, recipients })
}

/// `git send-email` (the root's) for `files`, from `from`, with the
/// developer's own configuration (SMTP server, identity: their home is
/// shared with the root for it) unless `isolated`.
fn send_email(root: &Root, tree: &Path, from: &str, files: &[PathBuf], isolated: bool) -> Result<Command> {
    let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_dir() && !isolated);
    let mut c = match &home {
        Some(h) => {
            let mut shared = root.shared.clone();
            shared.push(h.clone());
            let mut c = Root::new(&root.dir, shared).command("git");
            c.env("HOME", h);
            c
        }
        None => root.command("git"),
    };
    c.arg("-C").arg(tree);
    if isolated {
        let (name, email) = split_ident(from)?;
        c.env("GIT_CONFIG_GLOBAL", "/dev/null").env("GIT_CONFIG_NOSYSTEM", "1");
        // send-email asks git for an identity, which the global
        // configuration would have given.
        for who in ["AUTHOR", "COMMITTER"] {
            c.env(format!("GIT_{who}_NAME"), name).env(format!("GIT_{who}_EMAIL"), email);
        }
    }
    // Each mail goes to its own To/Cc headers (the cover letter to
    // everyone), as format() wrote them.
    c.args(["send-email", "--confirm=never", "--no-annotate", "--no-format-patch"]);
    c.arg(format!("--from={from}"));
    c.args(files);
    c.env("GIT_TERMINAL_PROMPT", "0");
    // The lab reads send-email's "Result:" and "error:" lines, which it
    // translates.
    c.env("LC_ALL", "C").env("LANGUAGE", "C");
    Ok(c)
}

/// What a round trip received, checked against what was sent.
pub struct RoundTrip {
    pub messages: usize,
    pub recipients: usize,
    pub tree: String,
}

/// Sends `series` to a server on loopback, applies what arrived to a fresh
/// checkout of `base` and checks that the result is `tree`'s HEAD.
///
/// `work` holds the received messages, the logs and the checkout (removed
/// after a match).
pub fn round_trip(root: &Root, tree: &Path, from: &str, series: &Series, work: &Path) -> Result<RoundTrip> {
    let server = smtp::Server::start()?;
    let _ = fs::remove_dir_all(work);
    fs::create_dir_all(work)?;
    let log = work.join("send-email.log");
    eprintln!(
        "lab: git send-email: {} messages to 127.0.0.1:{} (log: {})",
        series.files.len(),
        server.port(),
        log.display()
    );
    let mut c = send_email(root, tree, from, &series.files, true)?;
    c.args(["--smtp-server=127.0.0.1", "--smtp-encryption=none"]);
    c.arg(format!("--smtp-server-port={}", server.port()));
    cmd::run_logged(&mut c, &log, |_| {}).context("git send-email could not deliver the series on loopback")?;

    let got = server.received();
    if got.len() != series.files.len() {
        bail!("sent {} messages, the server received {} (log: {})", series.files.len(), got.len(), log.display());
    }
    let inbox = work.join("received");
    fs::create_dir_all(&inbox)?;
    let mut mails = Vec::new();
    let mut rcpts = 0;
    for (i, (m, want)) in got.iter().zip(&series.recipients).enumerate() {
        let text = String::from_utf8_lossy(&m.data).replace("\r\n", "\n");
        let file = inbox.join(format!("{i:04}.eml"));
        fs::write(&file, &text)?;
        let subject = header(split_mail(&text).0, "Subject").unwrap_or_default();
        let n = SUBJECT_NUMBER.captures(&subject).map(|c| c[1].parse::<usize>().unwrap_or(usize::MAX));
        if n != Some(i) {
            bail!("message {i} arrived out of order or without its number: `{subject}` ({})", file.display());
        }
        // The envelope is exactly the mail's get_maintainer.pl recipients,
        // plus what send-email adds by default: the sender and the
        // addresses of the mail's own trailers (Signed-off-by, other -by:
        // tags, Cc: such as `Cc: stable@vger.kernel.org`).
        let wanted: Vec<&str> = want.to.iter().chain(&want.cc).map(|a| address(a)).collect();
        for addr in &wanted {
            if !m.rcpt.iter().any(|r| r.eq_ignore_ascii_case(addr)) {
                bail!("`{subject}` did not go to {addr} (it went to {}; {})", m.rcpt.join(", "), file.display());
            }
        }
        let named: Vec<&str> = trailer_addresses(split_mail(&text).1).chain([address(from)]).collect();
        if let Some(extra) = m.rcpt.iter().find(|r| !wanted.iter().chain(&named).any(|a| a.eq_ignore_ascii_case(r))) {
            bail!(
                "`{subject}` also went to {extra}, whom neither get_maintainer.pl nor the mail's own trailers \
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
    let res = apply_and_compare(tree, &checkout, &mails, from, work);
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

/// The address in `Name <address>`.
/// The addresses git send-email copies from a mail's body by default
/// (`--suppress-cc` unset): those of `Cc:` lines and of `*-by:` trailers
/// such as Signed-off-by and Reviewed-by.
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
/// date: git send-email dates each mail when it sends it, and git am takes
/// the author date from the mail.)
fn commits(repo: &Path) -> Result<Vec<String>> {
    let out =
        cmd::output(git(repo).args(["log", "--reverse", "--format=%an <%ae>%n%B%x00", &format!("{BASE_TAG}..HEAD")]))?;
    Ok(out.split('\0').map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect())
}

/// Applies `mails` in order to `checkout` (at `base`) and checks that the
/// result is `tree`'s HEAD: the same tree object, and each commit with the
/// same author and message, but for `from`'s added sign-off. Returns
/// the tree's hash.
fn apply_and_compare(tree: &Path, checkout: &Path, mails: &[PathBuf], from: &str, work: &Path) -> Result<String> {
    let log = work.join("am.log");
    let mut am = git(checkout);
    am.args(["-c", "user.name=lab round trip", "-c", "user.email=lab@localhost", "am", "--quiet"]).args(mails);
    cmd::run_logged(&mut am, &log, |_| {}).context("the received mail does not apply to base with git am")?;
    let want = tree_id(tree, "HEAD")?;
    let got = tree_id(checkout, "HEAD")?;
    if want != got {
        let stat = cmd::output(git(tree).args(["diff", "--stat", "HEAD", &got])).unwrap_or_default();
        bail!(
            "the received series applies, but its tree {got} is not the lab's {want}:\n{stat}checkout kept in {}",
            checkout.display()
        );
    }
    let (sent, applied) = (commits(tree)?, commits(checkout)?);
    if sent.len() != applied.len() {
        bail!("{} commits were sent, {} applied (checkout kept in {})", sent.len(), applied.len(), checkout.display());
    }
    let signoff = format!("Signed-off-by: {from}");
    for (s, a) in sent.iter().zip(&applied) {
        let resigned = format!("{s}\n{signoff}");
        if a != s && *a != resigned {
            bail!("a commit changed on the way (checkout kept in {}):\nsent:\n{s}\napplied:\n{a}", checkout.display());
        }
    }
    Ok(got)
}

/// `lab send`: writes the mail under build/send/, then a dry run, a real
/// send with the developer's git configuration (`really`), or the loopback
/// round trip. The caller has brought the tree up to date with patches/
/// (`pipeline::prepare`, which refuses a dirty or diverged tree).
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
            "git has no identity to sign off and send with: set it with \
             `git config --global user.name 'Your Name'` and `git config --global user.email you@example.org`"
        ),
    };
    let dir = layout.base_dir(base).join("send");
    let gm = maintainers::lookup(root, &tree);
    let series = format(&tree, &layout.patches(base).join(COVER_LETTER), &dir.join("mail"), &from, &gm)?;
    for (f, r) in series.files.iter().zip(&series.recipients) {
        let text = fs::read_to_string(f)?;
        let subject = header(split_mail(&text).0, "Subject").unwrap_or_default();
        println!("{subject}\n  To: {}\n  Cc: {}", r.to.join(", "), r.cc.join(", "));
    }
    println!("mail: {}", dir.join("mail").display());
    if loopback {
        let rt = round_trip(root, &tree, &from, &series, &dir.join("loopback"))?;
        println!(
            "make send: round trip passed: {} messages through git send-email to 127.0.0.1, {} envelope \
             recipients, git am on base gives tree {}, the lab's tree",
            rt.messages, rt.recipients, rt.tree
        );
        return Ok(true);
    }
    let mut c = send_email(root, &tree, &from, &series.files, false)?;
    if !really {
        c.arg("--dry-run");
    }
    let log = dir.join("send-email.log");
    let mut results = 0;
    let mut error = None;
    eprintln!("lab: git send-email{} (log: {})", if really { "" } else { " --dry-run" }, log.display());
    cmd::run_logged(&mut c, &log, |l| {
        results += usize::from(l.starts_with("Result: "));
        if error.is_none() && l.starts_with("error:") {
            error = Some(l.to_string());
        }
    })?;
    // send-email quits with status 0 when it meets an address it cannot use
    // and nobody is at the terminal to fix it.
    if let Some(e) = error {
        bail!("git send-email stopped: {e} (log: {})", log.display());
    }
    if results != series.files.len() {
        bail!("git send-email handled {results} of {} messages (log: {})", series.files.len(), log.display());
    }
    if really {
        println!("make send: sent {results} messages as {from}");
    } else {
        println!(
            "make send: dry run: git send-email accepted all {results} messages as {from}; \
             `make send SEND=1` sends them with your git send-email configuration"
        );
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEPT: &str = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n\
        From: A U Thor <a@example.org>\nDate: Thu, 26 Nov 2026 11:14:12 +0000\n\
        Subject: [PATCH RFC 00/02] mm: a long title that git folds\n over two lines\n\n\
        Why.\n\nWhat.\n\nA U Thor (2):\n  one\n  two\n\n a | 1 +\n";

    #[test]
    fn recipients_go_in_the_headers() {
        let a = Recipients { to: vec!["M <m@x>".into()], cc: vec!["l@x".into()], lists: vec![] };
        let m = add_recipients("From: me\nSubject: s\n\nbody\n\nmore\n", &a);
        assert_eq!(m, "From: me\nSubject: s\nTo: M <m@x>\nCc: l@x\n\nbody\n\nmore\n");
        assert_eq!(address("M <m@x>"), "m@x");
        assert_eq!(address("stable@vger.kernel.org # 6.6.x"), "stable@vger.kernel.org");
        assert_eq!(address("<stable@vger.kernel.org> # 3.3.x: a1f84a3: sched: x"), "stable@vger.kernel.org");
    }

    #[test]
    fn trailers_that_git_send_email_copies_are_found() {
        let body = "Why.\n\nThe fix: a -> b.\n\nFixes: 29a22b9e08d7 (\"mm: x\")\n\
                    Cc: stable@vger.kernel.org\nReviewed-by: R Ev <r@x>\nSigned-off-by: A U Thor <a@x>\n";
        let got: Vec<&str> = trailer_addresses(body).collect();
        assert_eq!(got, ["stable@vger.kernel.org", "r@x", "a@x"]);
    }

    /// A repository with `base` and two commits, and a kept cover letter.
    fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
        let repo = dir.join("repo");
        fs::create_dir_all(&repo).unwrap();
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
        g(&["add", "a"]);
        g(&["commit", "-q", "-m", "base"]);
        g(&["tag", BASE_TAG]);
        fs::write(repo.join("a"), "one\ntwo\n").unwrap();
        // A fix for stable: git send-email copies its Cc: trailer.
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

    /// Everyone gets a non-ASCII maintainer and a list; the patch adding
    /// `b` also its own maintainer, whom the other patch must not reach.
    fn fixed(patch: &Path) -> Result<Recipients> {
        let mut to = vec!["\"Bj\u{f6}rn M\" <m@example.org>".to_string()];
        if patch.to_string_lossy().contains("add-b") {
            to.push("B Keeper <b@example.org>".into());
        }
        Ok(Recipients { to, cc: vec!["list@example.org".into()], lists: vec![] })
    }

    #[test]
    fn the_series_makes_a_round_trip_through_git_send_email() {
        // The build root's git send-email, on a folder of the checkout
        // (which the root shares).
        let layout = Layout::new(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
        assert!(layout.root().join("usr/bin").is_dir(), "no build root: run `lab setup` (make test does) first");
        let scratch = layout.build.join("tmp");
        fs::create_dir_all(&scratch).unwrap();
        let dir = tempfile::tempdir_in(&scratch).unwrap();
        let root = Root::new(layout.root(), vec![layout.repo.clone()]);
        let (repo, cover) = fixture(dir.path());
        let series = format(&repo, &cover, &dir.path().join("mail"), "Sen Der <s@example.org>", &fixed).unwrap();
        assert_eq!(series.files.len(), 3);
        let first = fs::read_to_string(&series.files[0]).unwrap();
        assert!(first.contains("Subject: [PATCH RFC 0/2] mm: a long title"), "{first}");
        assert!(first.contains("\nWhy.\n\nWhat.\n\nA U Thor (2):\n  mm: add two\n  mm: add b\n"), "{first}");
        assert!(first.contains("\nbase-commit: "), "{first}");
        // Signed off by the sender, after the author's own sign-off.
        let second = fs::read_to_string(&series.files[1]).unwrap();
        assert!(second.contains("Signed-off-by: A U Thor <a@example.org>\nSigned-off-by: Sen Der <s@example.org>\n"));
        let rt = round_trip(&root, &repo, "Sen Der <s@example.org>", &series, &dir.path().join("rt")).unwrap();
        assert_eq!(rt.messages, 3);
        assert_eq!(rt.tree, tree_id(&repo, "HEAD").unwrap());

        // A mail that changes on the way is caught: drop the second patch's
        // change from what the checkout gets.
        let mails: Vec<PathBuf> = vec![dir.path().join("rt/received/0001.eml")];
        let checkout = dir.path().join("short");
        sparse_checkout(&repo, &checkout).unwrap();
        let err =
            apply_and_compare(&repo, &checkout, &mails, "Sen Der <s@example.org>", dir.path()).unwrap_err().to_string();
        assert!(err.contains("is not the lab's"), "{err}");
    }
}
