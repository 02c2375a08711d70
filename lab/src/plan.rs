//! The guest test plan: which programs run in the guest, how their output
//! is read, and how long each may take.
//!
//! `guest/plan` holds one test a line:
//!
//! ```text
//! # name            format  timeout  command
//! uffd-unit-tests   uffd    900      uffd-unit-tests
//! cow               ktap    600      cow
//! ```
//!
//! The first word of the command is a program from
//! tools/testing/selftests/mm, which the lab builds statically and puts in
//! the guest's `/lab/bin`, unless it is an absolute guest path such as
//! `/bin/sh`. A command that is a shell line names the selftests it uses
//! with `needs=a,b` before it:
//!
//! ```text
//! no-huge  exit  120  needs=uffd-stress  echo 0 > /proc/sys/vm/nr_hugepages; uffd-stress hugetlb 32 4
//! ```
//!
//! A timeout of 0 means none (the host watchdog still applies).

use anyhow::{bail, Context, Result};
use std::path::Path;

/// How a test's output is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// KTAP/TAP 13 (kselftest.h, kselftest_harness.h), read by the kernel's
    /// own KTAP parser.
    Ktap,
    /// uffd-unit-tests' `Testing X on Y... done|skipped|failed` lines.
    Uffd,
    /// Only the exit status counts (0 pass, 4 skip, else fail).
    Exit,
}

/// One test of the plan.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Test {
    pub name: String,
    pub format: Format,
    /// Seconds the guest lets it run before killing it (0: no limit).
    pub timeout: u64,
    /// Selftests the command uses (`needs=`), when it is not one itself.
    pub needs: Vec<String>,
    pub command: String,
}

impl Test {
    /// The selftest binaries to build and ship for this test.
    pub fn selftests(&self) -> Vec<&str> {
        if !self.needs.is_empty() {
            return self.needs.iter().map(String::as_str).collect();
        }
        match self.command.split_whitespace().next() {
            Some(first) if !first.starts_with('/') => vec![first],
            _ => vec![],
        }
    }
}

/// The tests in the order the guest runs them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub tests: Vec<Test>,
}

impl Plan {
    /// Parses a plan; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut tests: Vec<Test> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            let mut words = t.split_whitespace();
            let (Some(name), Some(format), Some(timeout)) = (words.next(), words.next(), words.next()) else {
                bail!("{origin}:{}: expected `name format timeout command...`, got {t:?}", n + 1);
            };
            let mut rest: Vec<&str> = words.collect();
            let mut needs = Vec::new();
            if let Some(list) = rest.first().and_then(|w| w.strip_prefix("needs=")) {
                needs = list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
                rest.remove(0);
            }
            let command = rest.join(" ");
            if command.is_empty() {
                bail!("{origin}:{}: test {name} has no command", n + 1);
            }
            let format = match format {
                "ktap" => Format::Ktap,
                "uffd" => Format::Uffd,
                "exit" => Format::Exit,
                other => bail!("{origin}:{}: unknown format {other:?} (use ktap, uffd or exit)", n + 1),
            };
            let timeout = timeout
                .parse()
                .with_context(|| format!("{origin}:{}: timeout {timeout:?} is not a number of seconds", n + 1))?;
            if !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                bail!("{origin}:{}: test name {name:?} may hold only letters, digits, '-', '_' and '.'", n + 1);
            }
            if tests.iter().any(|x| x.name == name) {
                bail!("{origin}:{}: test {name} is listed twice", n + 1);
            }
            tests.push(Test { name: name.to_string(), format, timeout, needs, command });
        }
        Ok(Self { tests })
    }

    /// Reads and parses a plan file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the test plan {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// The plan as the guest's init reads it: `name format timeout command`.
    pub fn render(&self) -> String {
        self.tests
            .iter()
            .map(|t| {
                let needs = if t.needs.is_empty() { String::new() } else { format!("needs={} ", t.needs.join(",")) };
                format!("{} {} {} {needs}{}\n", t.name, format_name(t.format), t.timeout, t.command)
            })
            .collect()
    }

    /// The selftest binaries the plan needs, without duplicates.
    pub fn selftests(&self) -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for t in &self.tests {
            for s in t.selftests() {
                if !v.iter().any(|x| x == s) {
                    v.push(s.to_string());
                }
            }
        }
        v
    }

    pub fn get(&self, name: &str) -> Option<&Test> {
        self.tests.iter().find(|t| t.name == name)
    }
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Ktap => "ktap",
        Format::Uffd => "uffd",
        Format::Exit => "exit",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_renders() {
        let p = Plan::parse("# c\nuffd-unit-tests uffd 900 uffd-unit-tests\n\nhang exit 0 /bin/sleep 1000\n", "plan")
            .unwrap();
        assert_eq!(p.tests.len(), 2);
        assert_eq!(p.tests[1].command, "/bin/sleep 1000");
        assert_eq!(p.selftests(), vec!["uffd-unit-tests"]);
        assert_eq!(p.render(), "uffd-unit-tests uffd 900 uffd-unit-tests\nhang exit 0 /bin/sleep 1000\n");
    }

    #[test]
    fn shell_lines_name_their_selftests() {
        let p = Plan::parse("x exit 9 needs=uffd-stress,cow swapoff -a; cow; uffd-stress anon 4 1\n", "plan").unwrap();
        assert_eq!(p.tests[0].command, "swapoff -a; cow; uffd-stress anon 4 1");
        assert_eq!(p.selftests(), vec!["uffd-stress", "cow"]);
        assert_eq!(Plan::parse(&p.render(), "again").unwrap(), p);
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(Plan::parse("a tap 1 x\n", "p").unwrap_err().to_string().contains("unknown format"));
        assert!(Plan::parse("a exit 1\n", "p").unwrap_err().to_string().contains("p:1"));
        assert!(Plan::parse("a exit x y\n", "p").unwrap_err().to_string().contains("not a number"));
        assert!(Plan::parse("a exit 1 x\na exit 1 y\n", "p").unwrap_err().to_string().contains("twice"));
    }
}
