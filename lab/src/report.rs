//! The run's report: a table for people, JSON for programs.

use anyhow::Result;
use serde::Serialize;
use std::fmt::Write as _;
use std::path::Path;

use crate::results::{Status, TestResult};

/// Counts for the closing line.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    pub passed: usize,
    /// Failures, crashes, hangs and tests that never ran.
    pub failed: usize,
    pub skipped: usize,
}

pub fn totals(rows: &[TestResult]) -> Totals {
    let mut t = Totals::default();
    for r in rows {
        match r.status {
            Status::Pass => t.passed += 1,
            Status::Skip => t.skipped += 1,
            _ => t.failed += 1,
        }
    }
    t
}

/// The closing line: `N passed, M failed` (and skipped, when any).
pub fn closing_line(t: &Totals) -> String {
    if t.skipped > 0 {
        format!("{} passed, {} failed, {} skipped", t.passed, t.failed, t.skipped)
    } else {
        format!("{} passed, {} failed", t.passed, t.failed)
    }
}

fn fmt_secs(s: Option<f64>) -> String {
    s.map_or_else(|| "-".into(), |s| format!("{s:.1}s"))
}

/// The per-test table, then every kernel report's excerpt.
pub fn table(rows: &[TestResult]) -> String {
    let w_var = rows.iter().map(|r| r.variant.to_string().len()).max().unwrap_or(0).max(7);
    let w_test = rows.iter().map(|r| r.test.len()).max().unwrap_or(0).max(4);
    let mut s = String::new();
    let _ = writeln!(s, "{:w_var$}  {:w_test$}  {:7}  {:>7}  detail", "variant", "test", "result", "time");
    for r in rows {
        let _ = writeln!(
            s,
            "{:w_var$}  {:w_test$}  {:7}  {:>7}  {}",
            r.variant.to_string(),
            r.test,
            r.status.label(),
            fmt_secs(r.secs),
            r.detail
        );
    }
    for r in rows {
        for sp in &r.splats {
            let _ = writeln!(s, "\n--- {} {}: kernel {} (serial line {}) ---", r.variant, r.test, sp.kind, sp.line);
            for l in sp.excerpt.lines().take(30) {
                let _ = writeln!(s, "  {l}");
            }
        }
    }
    s
}

#[derive(Serialize)]
struct Json<'a> {
    totals: Totals,
    results: &'a [TestResult],
    meta: &'a serde_json::Value,
}

/// Writes results.json.
pub fn write_json(path: &Path, rows: &[TestResult], meta: &serde_json::Value) -> Result<()> {
    let j = Json { totals: totals(rows), results: rows, meta };
    std::fs::write(path, serde_json::to_string_pretty(&j)?)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(test: &str, status: Status) -> TestResult {
        TestResult {
            variant: crate::variant::Variant::parse(crate::base::Base::Lts612, "rust"),
            test: test.into(),
            status,
            secs: Some(1.25),
            detail: String::new(),
            cases: vec![],
            subcases: vec![],
            splats: vec![],
        }
    }

    #[test]
    fn crashes_hangs_and_not_run_count_as_failed() {
        let rows = [
            row("a", Status::Pass),
            row("b", Status::Crash),
            row("c", Status::Hang),
            row("d", Status::NotRun),
            row("e", Status::Skip),
            row("f", Status::Fail),
        ];
        let t = totals(&rows);
        assert_eq!(t, Totals { passed: 1, failed: 4, skipped: 1 });
        assert_eq!(closing_line(&t), "1 passed, 4 failed, 1 skipped");
        assert_eq!(closing_line(&Totals { passed: 3, failed: 0, skipped: 0 }), "3 passed, 0 failed");
        let tab = table(&rows);
        assert!(tab.contains("6.12/rust  b     CRASH"), "{tab}");
        assert!(tab.contains("1.2s") || tab.contains("1.3s"), "{tab}");
    }
}
