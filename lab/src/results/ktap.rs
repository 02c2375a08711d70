//! KTAP and kselftest TAP into cases: the kernel's own parser (kunit.py),
//! with the rewrites kselftest's output needs before it reads it, and the
//! programs a kselftest runner (run_vmtests.sh) ran.

use anyhow::{bail, Context, Result};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use super::Case;
use crate::root::Root;

/// Reads KTAP text into cases.
pub trait KtapParser {
    fn parse(&self, name: &str, text: &str) -> Result<Vec<Case>>;
}

/// The kernel's KTAP parser, run as `kunit.py parse --json` with the build
/// root's python3.
pub struct KunitPy {
    /// tools/testing/kunit/kunit.py in the kernel tree.
    pub script: PathBuf,
    /// Where the section files and JSON go (shared with the root).
    pub workdir: PathBuf,
    pub root: Root,
}

impl KunitPy {
    pub fn new(root: &Root, tree: &Path, workdir: &Path) -> Result<Self> {
        let script = tree.join("tools/testing/kunit/kunit.py");
        if !script.is_file() {
            bail!(
                "{} is missing: the lab reads KTAP with the kernel's own parser; create the tree with `lab tree`",
                script.display()
            );
        }
        Ok(Self { script, workdir: workdir.to_path_buf(), root: root.clone() })
    }
}

/// Flattens kunit.py's JSON groups into cases named `suite.case`; `path`
/// is the enclosing suites (empty for kunit.py's own top group).
fn collect_cases(group: &serde_json::Value, path: &str, out: &mut Vec<Case>) {
    let join = |name: &str| if path.is_empty() { name.to_string() } else { format!("{path}.{name}") };
    if let Some(cases) = group["test_cases"].as_array() {
        for (i, c) in cases.iter().enumerate() {
            // kunit.py reports a planned test that never printed a result
            // as a crashed test with no name.
            let name = match c["name"].as_str() {
                Some(n) if !n.is_empty() => n.to_string(),
                _ => format!("test {} (no result)", i + 1),
            };
            out.push(Case { name: join(&name), status: c["status"].as_str().unwrap_or("FAIL").to_string() });
        }
    }
    if let Some(groups) = group["sub_groups"].as_array() {
        for g in groups {
            collect_cases(g, &join(g["name"].as_str().unwrap_or("?")), out);
        }
    }
}

/// A top-level TAP plan (`1..N`), which kselftest's runners (run_vmtests.sh)
/// print after their tests.
static PLAN_LINE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^1\.\.\d+$").expect("valid regex"));

/// Moves a top-level TAP plan printed after the tests up to just after
/// `TAP version`, where kunit_parser reads it; TAP 13 allows either place,
/// and kunit_parser would otherwise wait for one more test than ran.
pub fn plan_first(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let first_result = lines.iter().position(|l| l.starts_with("ok ") || l.starts_with("not ok "));
    let version = lines.iter().position(|l| l.starts_with("TAP version") || l.starts_with("KTAP version"));
    let plan = lines.iter().position(|l| PLAN_LINE.is_match(l));
    match (version, first_result, plan) {
        (Some(v), Some(r), Some(p)) if v < r && r < p => {
            let mut out: Vec<&str> = Vec::with_capacity(lines.len());
            for (i, l) in lines.iter().enumerate() {
                if i != p {
                    out.push(l);
                }
                if i == v {
                    out.push(lines[p]);
                }
            }
            out.join("\n") + "\n"
        }
        _ => text.to_string(),
    }
}

/// kselftest's runner (run_vmtests.sh) announcing a program: `# running
/// ./cow`.
static RUNNER_PROGRAM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^# running (?:\./)?(.+?)\s*$").expect("valid regex"));
/// A result line of the program's own TAP, under the runner's `# `
/// prefix.
static RUNNER_CASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^# (not )?ok (\d+)(?: - | )?(.*?)(?:\s*# (SKIP|XFAIL|XPASS|TODO)\b.*)?$").expect("valid regex")
});

/// The cases of the programs a kselftest runner ran, from their TAP under
/// its `# ` prefix: `cow: 3` for cow's third case. A program is named by
/// its `# running` line, with its arguments (gup_test runs five times); a
/// case counts as PASS, SKIP (skip, xfail) or FAIL.
pub fn runner_subcases(lines: &[String]) -> Vec<Case> {
    let mut program: Option<String> = None;
    let mut out = Vec::new();
    for l in lines {
        if let Some(c) = RUNNER_PROGRAM.captures(l) {
            program = Some(c[1].to_string());
            continue;
        }
        // The runner's own result line ends the program's output.
        if l.starts_with("ok ") || l.starts_with("not ok ") {
            program = None;
            continue;
        }
        let (Some(p), Some(c)) = (&program, RUNNER_CASE.captures(l)) else { continue };
        let status = match (c.get(1).is_some(), c.get(4).map(|m| m.as_str())) {
            (_, Some("SKIP" | "XFAIL")) => "SKIP",
            (false, _) => "PASS",
            (true, _) => "FAIL",
        };
        // By number: descriptions may carry what a run measured
        // (pagemap_ioctl's "Extra pages 18 (0.0%)"), and the same program
        // on the same architecture numbers its cases the same way.
        out.push(Case { name: format!("{p}: {}", &c[2]), status: status.into() });
    }
    out
}

static DIRECTIVE_FIRST: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^(\s*(?:not )?ok \d+) # (XFAIL|XPASS|SKIP|TODO)\b ?(.*)$").expect("valid regex"));

/// Rewrites kselftest's `ok 5 # XFAIL reason` (a directive with no test
/// description) as `ok 5 reason # XFAIL`, the form kunit_parser reads; it
/// would otherwise lose the line and misnumber every later test.
pub fn normalise_directives(text: &str) -> String {
    DIRECTIVE_FIRST.replace_all(text, "$1 $3 # $2").into_owned()
}

impl KtapParser for KunitPy {
    fn parse(&self, name: &str, text: &str) -> Result<Vec<Case>> {
        let text = &normalise_directives(&plan_first(text));
        std::fs::create_dir_all(&self.workdir)?;
        let input = self.workdir.join(format!("{name}.ktap"));
        let json = self.workdir.join(format!("{name}.json"));
        std::fs::write(&input, text)?;
        let _ = std::fs::remove_file(&json);
        // kunit.py exits non-zero when tests failed; the JSON still tells.
        let out = self
            .root
            .command("python3")
            .arg(&self.script)
            .arg("parse")
            .arg(format!("--json={}", json.display()))
            .arg(&input)
            .output()
            .context("cannot run the build root's python3 for the kernel's KTAP parser")?;
        std::fs::write(self.workdir.join(format!("{name}.parsed")), &out.stdout)?;
        let data = std::fs::read_to_string(&json)
            .with_context(|| format!("kunit.py wrote no JSON for {name}:\n{}", String::from_utf8_lossy(&out.stderr)))?;
        let v: serde_json::Value = serde_json::from_str(&data)?;
        let mut cases = Vec::new();
        // The top group is kunit.py's wrapper: its cases carry no prefix.
        collect_cases(&v, "", &mut cases);
        Ok(cases)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kselftest_directives_are_moved_after_the_description() {
        let t =
            "ok 1 fine\nok 159 # XFAIL Leak from parent\nok 638 # SKIP MADV_COLLAPSE failed\nnot ok 7 # TODO later\n";
        assert_eq!(
            normalise_directives(t),
            "ok 1 fine\nok 159 Leak from parent # XFAIL\nok 638 MADV_COLLAPSE failed # SKIP\nnot ok 7 later # TODO\n"
        );
    }

    #[test]
    fn a_plan_printed_last_is_read_first() {
        let t = "TAP version 13\n# running ./a\nok 1 a\n# b\nnot ok 2 b # exit=1\n# SUMMARY: PASS=1\n1..2\n";
        assert_eq!(
            plan_first(t),
            "TAP version 13\n1..2\n# running ./a\nok 1 a\n# b\nnot ok 2 b # exit=1\n# SUMMARY: PASS=1\n"
        );
        // A plan already first, and nested plans, stay where they are.
        let first = "TAP version 13\n1..2\nok 1 a\n# 1..5\nok 2 b\n";
        assert_eq!(plan_first(first), first);
    }

    #[test]
    fn a_runners_programs_give_their_own_cases() {
        let log = "TAP version 13\n# -----\n# running ./cow\n# -----\n# TAP version 13\n# 1..3\n\
                   # # [RUN] a\n# ok 1 Basic COW with base page\n# ok 2 with THP # SKIP no THP\n\
                   # not ok 3 with hugetlb\n# # Totals: pass:1\n# [FAIL]\nnot ok 1 cow # exit=1\n\
                   # running ./gup_test -u\n# ok 1 - fine\n# ok 2 # XFAIL known\n# [PASS]\nok 2 gup_test -u\n\
                   # SUMMARY: PASS=1\n# ok 9 not in a program\n";
        let lines: Vec<String> = log.lines().map(str::to_string).collect();
        let got: Vec<(String, String)> = runner_subcases(&lines).into_iter().map(|c| (c.name, c.status)).collect();
        let want = [
            ("cow: 1", "PASS"),
            ("cow: 2", "SKIP"),
            ("cow: 3", "FAIL"),
            ("gup_test -u: 1", "PASS"),
            ("gup_test -u: 2", "SKIP"),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
    }
}
