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
//! A test that only some kernel variants run names them with `only=a,b`
//! (qualifiers come before the command, in any order). A word names a base
//! (`6.12`: every variant of it), a configuration (`rust`, which also
//! selects its guests on other architectures, `arm64-rust`), a variant
//! (`arm64-rust`) or a variant of one base (`6.12/rust`):
//!
//! ```text
//! fault-inject  ktap  300  only=debug  fault_inject
//! ```
//!
//! A command's first word may also be a program of guest/programs, which
//! the lab compiles statically from `guest/programs/<name>.c`. A name in
//! `needs=` that ends in `?` is optional: shipped where the base's tree has
//! its source (`tools/testing/selftests/mm/<name>.c`), left out elsewhere
//! (a test upstream added after 6.12, which 6.12's scripts do not run).
//!
//! A timeout of 0 means none (the host watchdog still applies).
//!
//! A test whose cases every variant must share with a plain kernel says so
//! with `baseline=c`: each case's result (pass, skip, fail) must be the one
//! it has on the `c` variant of the same base (on the same architecture
//! when that ran, else on x86_64). A difference fails the variant unless a
//! `differs` line explains it, for the variants a word selects (as in
//! `only=`) and the case named after the word:
//!
//! ```text
//! vmtests  ktap  1800  baseline=c  needs=run_vmtests.sh,cow  run_vmtests.sh -t cow
//! differs  vmtests  debug  cow -- KASAN makes ... (why)
//! ```
//!
//! A `differs` line never hides a failure: a case that fails still fails
//! its row. It explains a skip where the baseline passes (or the other
//! way round), or a case one kernel runs and the other does not.

use anyhow::{bail, Context, Result};
use std::path::Path;

use crate::variant::Variant;

/// How a test's output is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// KTAP/TAP 13 (kselftest.h, kselftest_harness.h), read by the kernel's
    /// own KTAP parser.
    Ktap,
    /// uffd-unit-tests' `Testing X on Y... done|skipped|failed` lines
    /// (6.12), or the KTAP it prints since Linux 6.15.
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
    /// The kernel variants that run it (`only=`); empty: all of them.
    pub only: Vec<String>,
    /// The configuration whose results every variant's cases must equal
    /// (`baseline=`).
    pub baseline: Option<String>,
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

/// A difference from the baseline that the plan explains.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Differs {
    pub test: String,
    /// Selects variants as an `only=` word does.
    pub word: String,
    /// The case's name, as its test reports it.
    pub case: String,
    pub reason: String,
}

/// The tests in the order the guest runs them, and the explained
/// differences from baselines.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub tests: Vec<Test>,
    pub differs: Vec<Differs>,
}

impl Plan {
    /// Parses a plan; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let mut tests: Vec<Test> = Vec::new();
        let mut differs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            if let Some(rest) = t.strip_prefix("differs ") {
                let bad = || format!("{origin}:{}: expected `differs TEST WORD CASE -- REASON`, got {t:?}", n + 1);
                let (what, reason) = rest.split_once(" -- ").with_context(bad)?;
                let mut w = what.split_whitespace();
                let (Some(test), Some(word)) = (w.next(), w.next()) else { bail!(bad()) };
                let case = w.collect::<Vec<_>>().join(" ");
                if case.is_empty() || reason.trim().is_empty() {
                    bail!(bad());
                }
                differs.push(Differs { test: test.into(), word: word.into(), case, reason: reason.trim().into() });
                continue;
            }
            let mut words = t.split_whitespace();
            let (Some(name), Some(format), Some(timeout)) = (words.next(), words.next(), words.next()) else {
                bail!("{origin}:{}: expected `name format timeout command...`, got {t:?}", n + 1);
            };
            let mut rest: Vec<&str> = words.collect();
            // Qualifiers, in any order, before the command.
            let (mut only, mut needs, mut baseline) = (None, None, None);
            while let Some((key, list)) = rest.first().and_then(|w| w.split_once('=')) {
                let slot = match key {
                    "only" => &mut only,
                    "needs" => &mut needs,
                    "baseline" => &mut baseline,
                    _ => break,
                };
                let v: Vec<String> = list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect();
                if v.is_empty() || slot.is_some() {
                    bail!("{origin}:{}: `{key}=` must be given once, with a comma-separated list", n + 1);
                }
                *slot = Some(v);
                rest.remove(0);
            }
            let (only, needs) = (only.unwrap_or_default(), needs.unwrap_or_default());
            let baseline = match baseline {
                Some(v) if v.len() == 1 => Some(v[0].clone()),
                Some(_) => bail!("{origin}:{}: `baseline=` names one configuration", n + 1),
                None => None,
            };
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
            tests.push(Test { name: name.to_string(), format, timeout, needs, only, baseline, command });
        }
        if let Some(d) = differs.iter().find(|d| !tests.iter().any(|t| t.name == d.test && t.baseline.is_some())) {
            bail!("{origin}: `differs {} ...` names no test with a baseline=", d.test);
        }
        Ok(Self { tests, differs })
    }

    /// Reads and parses a plan file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read the test plan {}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Fails on an `only=` or `differs` word that selects none of the
    /// `known` variants (a typo would drop the test, or the explanation,
    /// without a word), and on a `baseline=` that is no configuration of a
    /// base whose variants run the test.
    pub fn check_variants(&self, known: &[Variant]) -> Result<()> {
        let names = || known.iter().map(Variant::to_string).collect::<Vec<_>>().join(", ");
        let selects = |w: &str| known.iter().any(|v| v.matches(w));
        for t in &self.tests {
            if let Some(w) = t.only.iter().find(|w| !selects(w)) {
                bail!("test {} has only={w}, which selects none of the variants {}", t.name, names());
            }
            let Some(b) = &t.baseline else { continue };
            let runs = |v: &Variant| t.only.is_empty() || t.only.iter().any(|w| v.matches(w));
            for v in known.iter().filter(|v| runs(v)) {
                if !known.iter().any(|k| k.base == v.base && &k.config == b) {
                    bail!("test {} has baseline={b}, but {} has no {b} configuration ({})", t.name, v.base, names());
                }
            }
        }
        if let Some(d) = self.differs.iter().find(|d| !selects(&d.word)) {
            bail!("`differs {} {} ...` selects none of the variants {}", d.test, d.word, names());
        }
        Ok(())
    }

    /// The plan without the tests named in `skip` (and their `differs`
    /// lines); a name that is no test of the plan is an error.
    pub fn without(&self, skip: &[String]) -> Result<Plan> {
        if let Some(unknown) = skip.iter().find(|s| !self.tests.iter().any(|t| &t.name == *s)) {
            let names: Vec<&str> = self.tests.iter().map(|t| t.name.as_str()).collect();
            bail!("the plan has no test `{unknown}` to skip (it has: {})", names.join(", "));
        }
        Ok(Plan {
            tests: self.tests.iter().filter(|t| !skip.contains(&t.name)).cloned().collect(),
            differs: self.differs.iter().filter(|d| !skip.contains(&d.test)).cloned().collect(),
        })
    }

    /// The tests that `variant` runs, without their `only=` (see
    /// [`Variant::matches`]).
    pub fn for_variant(&self, variant: &Variant) -> Plan {
        let tests = self
            .tests
            .iter()
            .filter(|t| t.only.is_empty() || t.only.iter().any(|w| variant.matches(w)))
            .map(|t| Test { only: Vec::new(), ..t.clone() })
            .collect();
        Plan { tests, differs: Vec::new() }
    }

    /// The plan in its own syntax (what a run keeps beside its serial log,
    /// to replay the analysis).
    pub fn render(&self) -> String {
        let list =
            |key: &str, v: &[String]| if v.is_empty() { String::new() } else { format!("{key}={} ", v.join(",")) };
        self.tests
            .iter()
            .map(|t| {
                let (only, needs) = (list("only", &t.only), list("needs", &t.needs));
                let baseline = t.baseline.as_ref().map_or(String::new(), |b| format!("baseline={b} "));
                format!("{} {} {} {only}{baseline}{needs}{}\n", t.name, format_name(t.format), t.timeout, t.command)
            })
            .chain(self.differs.iter().map(|d| format!("differs {} {} {} -- {}\n", d.test, d.word, d.case, d.reason)))
            .collect()
    }

    /// What the guest's init reads: `name format timeout command` a line,
    /// with no qualifiers and no `differs` lines.
    pub fn guest_lines(&self) -> String {
        self.tests
            .iter()
            .map(|t| format!("{} {} {} {}\n", t.name, format_name(t.format), t.timeout, t.command))
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

/// The program an optional `needs=` name (`name?`) stands for.
pub fn optional(name: &str) -> Option<&str> {
    name.strip_suffix('?')
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
    fn the_repositorys_plan_runs_the_series_selftest_on_every_kernel_and_vmtests_not_on_debug() {
        use crate::arch::Arch;
        use crate::base::Base;
        let plan = Plan::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../guest/plan")).unwrap();
        for base in Base::ALL {
            for config in ["c", "rust", "debug"] {
                let runs = plan.for_variant(&Variant::new(base, Arch::X86_64, config));
                assert!(runs.selftests().iter().any(|s| s == "vma_lock_faults"), "{base}/{config}");
                // CI's time: the upstream runner takes a debug guest 4-6x as long.
                assert_eq!(runs.tests.iter().any(|t| t.name == "vmtests"), config != "debug", "{base}/{config}");
            }
        }
    }

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
    fn a_skipped_test_leaves_the_plan_with_its_differs_lines() {
        let plan = Plan::parse(
            "vmtests ktap 2400 only=c,rust baseline=c run_vmtests.sh -t cow\n\
             differs vmtests mainline/arm64-rust cow: 162 -- a leak\n\
             fault-stress ktap 300 fault_stress -t 20\n",
            "test",
        )
        .unwrap();
        let rest = plan.without(&["vmtests".to_string()]).unwrap();
        assert_eq!(rest.tests.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(), ["fault-stress"]);
        assert!(rest.differs.is_empty());
        assert_eq!(plan.without(&[]).unwrap(), plan);
        let e = plan.without(&["vmtest".to_string()]).unwrap_err().to_string();
        assert!(e.contains("no test `vmtest`") && e.contains("vmtests, fault-stress"), "{e}");
    }

    #[test]
    fn shell_lines_name_their_selftests() {
        let p = Plan::parse("x exit 9 needs=uffd-stress,cow swapoff -a; cow; uffd-stress anon 4 1\n", "plan").unwrap();
        assert_eq!(p.tests[0].command, "swapoff -a; cow; uffd-stress anon 4 1");
        assert_eq!(p.selftests(), vec!["uffd-stress", "cow"]);
        assert_eq!(Plan::parse(&p.render(), "again").unwrap(), p);
    }

    #[test]
    fn only_some_variants_run_a_test() {
        let p = Plan::parse("a ktap 9 x\nb ktap 9 only=debug,rust needs=x sh -c x\n", "plan").unwrap();
        assert_eq!(p.tests[1].only, vec!["debug", "rust"]);
        assert_eq!(p.tests[1].command, "sh -c x");
        assert_eq!(Plan::parse(&p.render(), "again").unwrap(), p);
        use crate::base::Base;
        let v = |name: &str| Variant::parse(Base::Lts612, name);
        let names = |name: &str| p.for_variant(&v(name)).tests.into_iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(names("c"), vec!["a"]);
        assert_eq!(names("debug"), vec!["a", "b"]);
        // The rust configuration on arm64 runs what rust runs, debug's
        // tests stay with debug, and a test may name the arm64 guest alone.
        assert_eq!(names("arm64-rust"), vec!["a", "b"]);
        assert_eq!(names("arm64-debug"), vec!["a", "b"]);
        assert_eq!(names("arm64-c"), vec!["a"]);
        let arm64 = Plan::parse("a ktap 9 only=arm64-rust x\n", "plan").unwrap();
        assert_eq!(
            (arm64.for_variant(&v("arm64-rust")).tests.len(), arm64.for_variant(&v("rust")).tests.len()),
            (1, 0)
        );
        // A base selects every variant of it, and no other base's.
        let lts = Plan::parse("a ktap 9 only=6.12 x\nb ktap 9 only=mainline/c y\n", "plan").unwrap();
        assert_eq!(lts.for_variant(&v("arm64-rust")).tests.len(), 1);
        let c = Variant::parse(Base::Mainline, "c");
        assert_eq!(lts.for_variant(&c).tests.into_iter().map(|t| t.name).collect::<Vec<_>>(), ["b"]);
        assert!(lts.check_variants(std::slice::from_ref(&c)).unwrap_err().to_string().contains("only=6.12"));
        lts.check_variants(&[c.clone(), v("rust")]).unwrap();
        // A baseline every base of the test must have, and explanations
        // that select a variant.
        let b = Plan::parse("t ktap 9 baseline=c x\n", "p").unwrap();
        b.check_variants(&[c.clone(), Variant::parse(Base::Mainline, "debug")]).unwrap();
        let e = b.check_variants(&[c.clone(), v("rust")]).unwrap_err().to_string();
        assert!(e.contains("baseline=c, but 6.12 has no c configuration"), "{e}");
        let d = Plan::parse("t ktap 9 baseline=c x\ndiffers t debgu y -- z\n", "p").unwrap();
        assert!(d.check_variants(&[c]).unwrap_err().to_string().contains("`differs t debgu ...` selects none"));
        // A variant's plan has no `only=`, and what its guest reads no
        // qualifier at all.
        assert_eq!(p.for_variant(&v("rust")).render(), "a ktap 9 x\nb ktap 9 needs=x sh -c x\n");
        assert_eq!(p.for_variant(&v("rust")).guest_lines(), "a ktap 9 x\nb ktap 9 sh -c x\n");
    }

    #[test]
    fn qualifiers_come_in_any_order_once_each() {
        let p = Plan::parse("b ktap 9 needs=x only=debug sh -c x\n", "plan").unwrap();
        assert_eq!((p.tests[0].only.clone(), p.tests[0].needs.clone()), (vec!["debug".into()], vec!["x".into()]));
        assert_eq!(p.tests[0].command, "sh -c x");
        for bad in ["b ktap 9 only= x\n", "b ktap 9 only=a only=b x\n", "b ktap 9 needs=,, x\n"] {
            assert!(Plan::parse(bad, "p").unwrap_err().to_string().contains("must be given once"), "{bad}");
        }
    }

    #[test]
    fn baselines_and_explained_differences() {
        let text = "v ktap 9 baseline=c needs=run_vmtests.sh,cow run_vmtests.sh -t cow\n\
                    differs v debug gup_test -a -n 1 -- KASAN is slower\n";
        let p = Plan::parse(text, "p").unwrap();
        assert_eq!(p.tests[0].baseline.as_deref(), Some("c"));
        assert_eq!(p.tests[0].selftests(), ["run_vmtests.sh", "cow"]);
        assert_eq!(optional("uffd-wp-mremap?"), Some("uffd-wp-mremap"));
        assert_eq!(optional("cow"), None);
        let d = &p.differs[0];
        assert_eq!((d.test.as_str(), d.word.as_str(), d.case.as_str()), ("v", "debug", "gup_test -a -n 1"));
        assert_eq!(d.reason, "KASAN is slower");
        assert_eq!(Plan::parse(&p.render(), "again").unwrap(), p);
        for bad in ["differs v debug -- why\n", "differs v debug x --\n", "differs v debug x\n"] {
            assert!(Plan::parse(&format!("{text}{bad}"), "p").is_err(), "{bad}");
        }
        let e = Plan::parse("a ktap 9 x\ndiffers a c x -- y\n", "p").unwrap_err().to_string();
        assert!(e.contains("names no test with a baseline="), "{e}");
    }

    #[test]
    fn rejects_bad_lines() {
        assert!(Plan::parse("a tap 1 x\n", "p").unwrap_err().to_string().contains("unknown format"));
        assert!(Plan::parse("a exit 1\n", "p").unwrap_err().to_string().contains("p:1"));
        assert!(Plan::parse("a exit x y\n", "p").unwrap_err().to_string().contains("not a number"));
        assert!(Plan::parse("a exit 1 x\na exit 1 y\n", "p").unwrap_err().to_string().contains("twice"));
    }
}
