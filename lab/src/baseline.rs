//! Holding a variant's results to those of its base's plain kernel.
//!
//! A test with `baseline=c` in the plan (upstream's run_vmtests.sh) must
//! give every case the result it has on the `c` variant of the same base:
//! a series that turns a pass into a skip, or a skip into a failure, is
//! caught even where the test alone would count it as fine. Differences
//! the plan explains (`differs` lines) are allowed and counted.

use std::collections::BTreeMap;

use crate::plan::Plan;
use crate::results::{Status, TestResult};
use crate::variant::Variant;

/// The row of `rows` that `row` is compared with: test `row.test` on the
/// `config` variant of the same base and architecture (a program's cases
/// differ between architectures: cow tries arm64's 64 KiB pages), never
/// `row` itself.
fn baseline_of<'a>(rows: &'a [TestResult], row: &TestResult, config: &str) -> Option<&'a TestResult> {
    rows.iter().find(|b| {
        b.test == row.test
            && b.variant.base == row.variant.base
            && b.variant.arch == row.variant.arch
            && b.variant.config == config
            && b.variant != row.variant
    })
}

/// A case's result as the comparison sees it.
fn outcome(status: &str) -> &str {
    match status {
        "PASS" => "pass",
        "SKIP" => "skip",
        _ => "fail",
    }
}

/// One case whose result differs.
#[derive(Debug, PartialEq, Eq)]
pub struct Difference {
    pub case: String,
    pub here: String,
    pub there: String,
}

/// The cases (and the cases of the programs a runner ran) of `row` whose
/// result is not `base`'s; a case missing on one side counts as `missing`.
pub fn differences(row: &TestResult, base: &TestResult) -> Vec<Difference> {
    let mut all: BTreeMap<&str, (Option<&str>, Option<&str>)> = BTreeMap::new();
    for c in row.cases.iter().chain(&row.subcases) {
        all.entry(&c.name).or_default().0 = Some(outcome(&c.status));
    }
    for c in base.cases.iter().chain(&base.subcases) {
        all.entry(&c.name).or_default().1 = Some(outcome(&c.status));
    }
    all.into_iter()
        .filter(|(_, (a, b))| a != b)
        .map(|(case, (a, b))| Difference {
            case: case.to_string(),
            here: a.unwrap_or("missing").to_string(),
            there: b.unwrap_or("missing").to_string(),
        })
        .collect()
}

/// Whether the plan explains `d` for `v` in `test`.
fn explained(plan: &Plan, test: &str, v: &Variant, d: &Difference) -> bool {
    plan.differs.iter().any(|x| x.test == test && v.matches(&x.word) && x.case == d.case)
}

/// What the comparison of one row found.
enum Verdict {
    /// Every case as on the baseline, or as the plan explains.
    Same { baseline: String, explained: usize },
    /// Cases that differ and that the plan does not explain.
    Differs(String),
    /// Nothing to compare with: no baseline run, or one that did not
    /// complete (its own row says why).
    NoBaseline(String),
}

/// Compares every row of a `baseline=` test with its baseline's, failing
/// those with a difference the plan does not explain, and saying so in the
/// detail either way.
pub fn compare(rows: &mut [TestResult], plan: &Plan) {
    let mut verdicts = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let Some(config) = plan.get(&r.test).and_then(|t| t.baseline.as_deref()) else { continue };
        if r.variant.config == config {
            continue;
        }
        let verdict = match baseline_of(rows, r, config) {
            None => {
                let c = Variant::new(r.variant.base, r.variant.arch, config);
                Verdict::NoBaseline(format!("no {c} run to compare with"))
            }
            Some(b) if matches!(b.status, Status::Hang | Status::Crash | Status::NotRun) || b.cases.is_empty() => {
                Verdict::NoBaseline(format!("not compared: {} did not complete ({})", b.variant, b.status.label()))
            }
            Some(b) => {
                let (ok, unexplained): (Vec<_>, Vec<_>) =
                    differences(r, b).into_iter().partition(|d| explained(plan, &r.test, &r.variant, d));
                if unexplained.is_empty() {
                    Verdict::Same { baseline: b.variant.to_string(), explained: ok.len() }
                } else {
                    let first: Vec<String> = unexplained
                        .iter()
                        .take(3)
                        .map(|d| format!("`{}` {} here, {} there", d.case, d.here, d.there))
                        .collect();
                    let more = unexplained.len().saturating_sub(3);
                    Verdict::Differs(format!(
                        "differs from {} in {} case(s) the plan does not explain: {}{}",
                        b.variant,
                        unexplained.len(),
                        first.join("; "),
                        if more > 0 { format!(" and {more} more") } else { String::new() }
                    ))
                }
            }
        };
        verdicts.push((i, verdict));
    }
    for (i, verdict) in verdicts {
        let r = &mut rows[i];
        let note = match verdict {
            Verdict::Same { baseline, explained: 0 } => format!("as {baseline}"),
            Verdict::Same { baseline, explained } => {
                format!("as {baseline} but for {explained} difference(s) the plan explains")
            }
            Verdict::NoBaseline(why) => why,
            Verdict::Differs(why) => {
                if !r.status.failed() {
                    r.status = Status::Fail;
                }
                why
            }
        };
        r.detail.push_str(&format!("; {note}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::Base;
    use crate::results::Case;

    fn row(variant: &str, base: Base, cases: &[(&str, &str)]) -> TestResult {
        let mut r = TestResult::new(&Variant::parse(base, variant), "vmtests", Status::Pass, "n pass".into());
        r.cases = cases.iter().map(|(n, s)| Case { name: n.to_string(), status: s.to_string() }).collect();
        r
    }

    #[test]
    fn a_variant_must_match_its_bases_plain_kernel_case_by_case() {
        let plan = Plan::parse(
            "vmtests ktap 9 baseline=c run_vmtests.sh\ndiffers vmtests debug gup_test -- slower under KASAN\n",
            "p",
        )
        .unwrap();
        let mut rows = vec![
            row("c", Base::Mainline, &[("cow", "PASS"), ("gup_test", "PASS"), ("mlock", "SKIP")]),
            row("debug", Base::Mainline, &[("cow", "PASS"), ("gup_test", "SKIP"), ("mlock", "SKIP")]),
            row("rust", Base::Mainline, &[("cow", "FAIL"), ("gup_test", "PASS")]),
            row("arm64-c", Base::Mainline, &[("cow", "PASS"), ("gup_test", "PASS"), ("mlock", "SKIP")]),
            row("rust", Base::Lts612, &[("cow", "PASS")]),
            row("c", Base::Lts612, &[]),
            row("debug", Base::Lts612, &[("cow", "FAIL")]),
        ];
        rows[5].status = Status::Hang;
        compare(&mut rows, &plan);
        assert_eq!(rows[0].status, Status::Pass, "the baseline itself");
        assert_eq!(rows[0].detail, "n pass");
        assert_eq!(rows[1].status, Status::Pass, "{}", rows[1].detail);
        assert!(
            rows[1].detail.ends_with("as mainline/c but for 1 difference(s) the plan explains"),
            "{}",
            rows[1].detail
        );
        assert_eq!(rows[2].status, Status::Fail);
        assert!(
            rows[2].detail.contains("differs from mainline/c in 2 case(s)")
                && rows[2].detail.contains("`cow` fail here, pass there")
                && rows[2].detail.contains("`mlock` missing here, skip there"),
            "{}",
            rows[2].detail
        );
        // arm64's plain kernel is the baseline of arm64 variants, not
        // compared with x86_64's.
        assert_eq!(rows[3].status, Status::Pass);
        assert_eq!(rows[3].detail, "n pass");
        let mut arm = vec![
            row("c", Base::Mainline, &[("cow", "FAIL")]),
            row("arm64-c", Base::Mainline, &[("cow", "PASS")]),
            row("arm64-rust", Base::Mainline, &[("cow", "PASS")]),
        ];
        compare(&mut arm, &plan);
        assert_eq!(arm[2].status, Status::Pass);
        assert!(arm[2].detail.ends_with("as mainline/arm64-c"), "{}", arm[2].detail);
        // A skip inside one of the runner's programs is a difference too,
        // though the program passed on both.
        let mut sub =
            vec![row("c", Base::Mainline, &[("cow", "PASS")]), row("rust", Base::Mainline, &[("cow", "PASS")])];
        sub[0].subcases = vec![Case { name: "cow: 7".into(), status: "PASS".into() }];
        sub[1].subcases = vec![Case { name: "cow: 7".into(), status: "SKIP".into() }];
        compare(&mut sub, &plan);
        assert_eq!(sub[1].status, Status::Fail);
        assert!(sub[1].detail.contains("`cow: 7` skip here, pass there"), "{}", sub[1].detail);
        // Another base is never the baseline, and a baseline that did not
        // complete blames nobody else.
        assert_eq!(rows[4].status, Status::Pass);
        assert!(rows[4].detail.ends_with("not compared: 6.12/c did not complete (HANG)"), "{}", rows[4].detail);
        let mut alone = vec![row("rust", Base::Lts612, &[("cow", "PASS")])];
        compare(&mut alone, &plan);
        assert_eq!(alone[0].status, Status::Pass);
        assert!(alone[0].detail.ends_with("no 6.12/c run to compare with"), "{}", alone[0].detail);
        let mut arm_alone = vec![row("arm64-rust", Base::Lts612, &[("cow", "PASS")])];
        compare(&mut arm_alone, &plan);
        assert!(arm_alone[0].detail.ends_with("no 6.12/arm64-c run to compare with"), "{}", arm_alone[0].detail);
    }
}
