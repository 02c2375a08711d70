//! The cover letter and the series as `git format-patch` mail.
//!
//! `patches/<base>/0000-cover-letter.patch` keeps what a person writes (the
//! subject prefix and title, the text before the shortlog); format-patch
//! makes the rest (shortlog, diffstat, base-commit) from the series as it
//! is.

use anyhow::{bail, Context, Result};
use mailparse::MailHeaderMap;
use regex::Regex;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use crate::cmd;
use crate::git::{git, BASE_TAG};

/// What the kept cover letter contributes: the subject and the text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cover {
    /// The subject prefix inside the brackets, without the numbers
    /// (`PATCH RFC`).
    pub prefix: String,
    /// The subject after the brackets.
    pub title: String,
    /// The text before the shortlog.
    pub blurb: String,
}

/// `[PATCH RFC 00/15] title`
static SUBJECT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\[(.*?) ?\d+/\d+\] (.*)$").expect("valid regex"));
/// The shortlog's first line: `Author Name (15):`.
static SHORTLOG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\S.* \(\d+\):$").expect("valid regex"));

/// The header block of a mail (up to the first empty line) and its body.
pub fn split_mail(text: &str) -> (&str, &str) {
    match text.find("\n\n") {
        Some(i) => (&text[..=i], &text[i + 2..]),
        None => (text, ""),
    }
}

/// A header's value as a reader sees it: folded lines joined and RFC 2047
/// encoded words decoded (format-patch --encode-email-headers and b4 write
/// non-ASCII names and subjects as `=?UTF-8?q?...?=`).
pub fn header(headers: &str, name: &str) -> Option<String> {
    let (parsed, _) = mailparse::parse_headers(headers.as_bytes()).ok()?;
    parsed.get_first_value(name)
}

/// Reads the kept cover letter.
pub fn parse_cover(text: &str) -> Result<Cover> {
    let (headers, body) = split_mail(text);
    let subject = header(headers, "Subject").context("the cover letter has no Subject header")?;
    let c = SUBJECT
        .captures(&subject)
        .with_context(|| format!("the cover letter's subject `{subject}` is not `[PREFIX NN/MM] title`"))?;
    let mut blurb: Vec<&str> = body.lines().take_while(|l| !SHORTLOG.is_match(l)).collect();
    while blurb.last().is_some_and(|l| l.trim().is_empty()) {
        blurb.pop();
    }
    if blurb.is_empty() {
        bail!("the cover letter has no text before its shortlog");
    }
    Ok(Cover { prefix: c[1].to_string(), title: c[2].to_string(), blurb: blurb.join("\n") })
}

/// Fills the cover letter that format-patch generated with `cover`.
pub fn fill_cover(generated: &str, cover: &Cover) -> Result<String> {
    for mark in ["*** SUBJECT HERE ***", "*** BLURB HERE ***"] {
        if !generated.contains(mark) {
            bail!("format-patch's cover letter has no `{mark}` to fill");
        }
    }
    Ok(generated.replacen("*** SUBJECT HERE ***", &cover.title, 1).replacen("*** BLURB HERE ***", &cover.blurb, 1))
}

/// `Name <address>` as its two parts.
pub fn split_ident(ident: &str) -> Result<(&str, &str)> {
    crate::git::split_ident(ident).with_context(|| format!("`{ident}` is not `Name <address>`"))
}

/// Reads the kept cover letter.
pub fn read_cover(cover_file: &Path) -> Result<Cover> {
    let text = fs::read_to_string(cover_file)
        .with_context(|| format!("cannot read the cover letter {}", cover_file.display()))?;
    parse_cover(&text).with_context(|| format!("in {}", cover_file.display()))
}

/// `git format-patch --cover-letter --base` of the series into `dir`, the
/// cover letter filled with `cover`; returns the files in order, the cover
/// letter first. (The kept copy in patches/; b4 writes the mail.)
pub fn format_patch(tree: &Path, dir: &Path, cover: &Cover) -> Result<Vec<PathBuf>> {
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(dir)?;
    let mut c = git(tree);
    // No To, Cc or threading from the developer's format.* configuration;
    // the kept copy does not depend on the commits' hashes.
    c.args(["format-patch", "--cover-letter", "--no-signature", "--encode-email-headers", "--zero-commit"])
        .args(["--no-to", "--no-cc", "--no-thread"])
        .arg(format!("--base={BASE_TAG}"))
        .arg(format!("--subject-prefix={}", cover.prefix));
    let out = cmd::output(c.arg("-o").arg(dir).arg(format!("{BASE_TAG}..HEAD")))?;
    let files: Vec<PathBuf> = out.lines().filter(|l| !l.is_empty()).map(PathBuf::from).collect();
    let Some(first) = files.first() else { bail!("the series is empty: nothing to send") };
    fs::write(first, fill_cover(&fs::read_to_string(first)?, cover)?)?;
    Ok(files)
}

/// The kept cover letter brought up to date with the series: its subject
/// and text, with the shortlog, diffstat and base-commit of the tree's
/// series. `None` if only its date would change.
pub fn refresh_cover_letter(tree: &Path, cover_file: &Path, scratch: &Path) -> Result<Option<String>> {
    let cover = read_cover(cover_file)?;
    let files = format_patch(tree, scratch, &cover)?;
    let new = fs::read_to_string(&files[0])?;
    let _ = fs::remove_dir_all(scratch);
    let undated = |t: &str| t.lines().filter(|l| !l.starts_with("Date: ")).collect::<Vec<_>>().join("\n");
    let old = fs::read_to_string(cover_file)?;
    Ok((undated(&old) != undated(&new)).then_some(new))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const KEPT: &str = "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\n\
        From: A U Thor <a@example.org>\nDate: Thu, 26 Nov 2026 11:14:12 +0000\n\
        Subject: [PATCH RFC 00/02] mm: a long title that git folds\n over two lines\n\n\
        Why.\n\nWhat.\n\nA U Thor (2):\n  one\n  two\n\n a | 1 +\n";

    #[test]
    fn the_kept_cover_letter_gives_prefix_title_and_text() {
        let c = parse_cover(KEPT).unwrap();
        assert_eq!(c.prefix, "PATCH RFC");
        assert_eq!(c.title, "mm: a long title that git folds over two lines");
        assert_eq!(c.blurb, "Why.\n\nWhat.");
        let filled =
            fill_cover("Subject: [PATCH RFC 0/3] *** SUBJECT HERE ***\n\n*** BLURB HERE ***\n\nX (3):\n", &c).unwrap();
        assert!(filled.starts_with("Subject: [PATCH RFC 0/3] mm: a long title"));
        assert!(filled.contains("\n\nWhy.\n\nWhat.\n\nX (3):"));
        assert!(fill_cover("no marks", &c).is_err());
        assert!(parse_cover("Subject: no brackets\n\ntext\n").is_err());
    }

    #[test]
    fn headers_read_as_a_mail_reader_shows_them() {
        // As format-patch --encode-email-headers writes a non-ASCII name
        // and subject.
        let h = "From: =?UTF-8?q?J=C3=B6rg=20R=C3=B6del?= <j@example.org>\n\
            Subject: =?UTF-8?q?=5BPATCH=201/2=5D=20mm:=20f=C3=BCr=20the?=\n =?UTF-8?q?=20fault?= path\n";
        assert_eq!(header(h, "From").as_deref(), Some("J\u{f6}rg R\u{f6}del <j@example.org>"));
        assert_eq!(header(h, "Subject").as_deref(), Some("[PATCH 1/2] mm: f\u{fc}r the fault path"));
        assert_eq!(header(h, "Cc"), None);
    }
}
