//! What LAVA recorded for a job, from the log `lava-run` writes
//! (`<output dir>/logs.yaml`: one entry a line, `lvl: target` for the
//! guest's console, `lvl: results` for a test case), and its comparison
//! with the lab's own reading of the same console.

use anyhow::{Context, Result};
use serde::Deserialize;
use std::path::Path;

use super::{case_name, DEFINITION};
use crate::plan::Plan;
use crate::results::{Status, TestResult};

#[derive(Deserialize)]
struct Entry {
    lvl: String,
    msg: serde_norway::Value,
}

/// One job's record.
#[derive(Debug, Default)]
pub struct Recorded {
    /// The guest's console, a line an entry.
    pub console: String,
    /// The plan's cases as the `lab` monitor recorded them: LAVA's name
    /// and result (pass, fail, skip).
    pub cases: Vec<(String, String)>,
    /// `SETUP-FAIL` cases of the `lab-setup` monitor.
    pub setup_failures: Vec<String>,
    /// LAVA's verdict on the job itself (pass: it completed).
    pub job: Option<String>,
}

/// Reads lava-run's log.
pub fn read(logs: &Path) -> Result<Recorded> {
    let text = std::fs::read_to_string(logs).with_context(|| format!("cannot read LAVA's log {}", logs.display()))?;
    let entries: Vec<Entry> =
        serde_norway::from_str(&text).with_context(|| format!("{} is not LAVA's log", logs.display()))?;
    let mut r = Recorded::default();
    for e in entries {
        match e.lvl.as_str() {
            "target" => {
                if let Some(line) = e.msg.as_str() {
                    r.console.push_str(line);
                    r.console.push('\n');
                }
            }
            "results" => {
                let field = |k: &str| e.msg.get(k).and_then(|v| v.as_str()).unwrap_or("").to_string();
                let (definition, case, result) = (field("definition"), field("case"), field("result"));
                match definition.as_str() {
                    DEFINITION => r.cases.push((case, result)),
                    "lab-setup" => r.setup_failures.push(case),
                    "lava" if case == "job" => r.job = Some(result),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    Ok(r)
}

/// The lab's verdict in LAVA's words.
fn lab_word(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Skip => "skip",
        _ => "fail",
    }
}

/// One planned test in both views.
#[derive(Debug, PartialEq, Eq)]
pub struct Compared {
    pub test: String,
    /// LAVA's result; None when it recorded none.
    pub lava: Option<String>,
    /// The lab's, in LAVA's words; None when the lab has no row.
    pub lab: Option<&'static str>,
}

impl Compared {
    pub fn agrees(&self) -> bool {
        self.lava.is_some() && self.lava.as_deref() == self.lab
    }
}

/// Each test of `plan` as LAVA recorded it and as the lab read the same
/// console (`rows`), then the guest's setup (`setup`: a failure in both
/// or in neither), then any case LAVA recorded that the plan lacks.
pub fn compare(plan: &Plan, rec: &Recorded, rows: &[TestResult]) -> Vec<Compared> {
    let mut out: Vec<Compared> = plan
        .tests
        .iter()
        .map(|t| Compared {
            test: t.name.clone(),
            lava: rec.cases.iter().find(|(c, _)| *c == case_name(&t.name)).map(|(_, r)| r.clone()),
            lab: rows.iter().find(|r| r.test == t.name).map(|r| lab_word(r.status)),
        })
        .collect();
    let lab_setup_failed = rows.iter().any(|r| r.test == "boot" && r.detail.contains("SETUP-FAIL"));
    out.push(Compared {
        test: "setup".into(),
        lava: Some(if rec.setup_failures.is_empty() { "pass" } else { "fail" }.into()),
        lab: Some(if lab_setup_failed { "fail" } else { "pass" }),
    });
    for (c, r) in &rec.cases {
        if !plan.tests.iter().any(|t| case_name(&t.name) == *c) {
            out.push(Compared { test: c.clone(), lava: Some(r.clone()), lab: None });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::base::Base;
    use crate::variant::Variant;

    const LOG: &str = r#"- {"dt": "2026-12-07T19:20:32.246782+00:00", "lvl": "info", "msg": "lava-dispatcher, installed at version: 2026.10"}
- {"dt": "2026-12-07T19:20:32.256425+00:00", "lvl": "results", "msg": {"definition": "lava", "namespace": "common", "case": "file-download", "level": "1.1.1", "duration": "0.00", "result": "pass", "extra": {"label": "kernel", "size": ! "2372608"}}}
- {"dt": "2026-12-07T19:20:40.1+00:00", "lvl": "target", "msg": "LAB: INFO kernel 7.3.4 cpus=2"}
- {"dt": "2026-12-07T19:20:40.2+00:00", "lvl": "target", "msg": "LAB: BEGIN fault-bench"}
- {"dt": "2026-12-07T19:20:42.2+00:00", "lvl": "target", "msg": "LAB: END fault-bench rc=0 ms=1910"}
- {"dt": "2026-12-07T19:20:42.3+00:00", "lvl": "results", "msg": {"definition": "lab", "case": "fault_bench", "result": "pass", "measurement": "1910", "units": "ms"}}
- {"dt": "2026-12-07T19:20:52.3+00:00", "lvl": "results", "msg": {"definition": "lab", "case": "memcg_thrash", "result": "fail", "measurement": "10190", "units": "ms"}}
- {"dt": "2026-12-07T19:20:52.5+00:00", "lvl": "results", "msg": {"definition": "lava", "case": "job", "result": "pass"}}
"#;

    #[test]
    fn lavas_log_gives_the_console_and_the_cases() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("logs.yaml");
        std::fs::write(&f, LOG).unwrap();
        let r = read(&f).unwrap();
        assert_eq!(
            r.console,
            "LAB: INFO kernel 7.3.4 cpus=2\nLAB: BEGIN fault-bench\nLAB: END fault-bench rc=0 ms=1910\n"
        );
        assert_eq!(r.cases, [("fault_bench".into(), "pass".into()), ("memcg_thrash".into(), "fail".into())]);
        assert_eq!(r.job.as_deref(), Some("pass"));
        assert!(r.setup_failures.is_empty());

        let plan = Plan::parse("fault-bench ktap 300 fault_bench\nmemcg-thrash ktap 300 memcg_thrash\n", "p").unwrap();
        let v = Variant::new(Base::Mainline, Arch::X86_64, "rust");
        let rows = vec![
            TestResult::new(&v, "boot", Status::Pass, "init started".into()),
            TestResult::new(&v, "fault-bench", Status::Pass, String::new()),
            TestResult::new(&v, "memcg-thrash", Status::Pass, String::new()),
        ];
        let c = compare(&plan, &r, &rows);
        let verdicts: Vec<(&str, bool)> = c.iter().map(|c| (c.test.as_str(), c.agrees())).collect();
        assert_eq!(verdicts, [("fault-bench", true), ("memcg-thrash", false), ("setup", true)]);
    }
}
