//! What to show when a patch does not apply: the hunks `git apply`
//! could not place, from the patch itself.

use std::fs;
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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
