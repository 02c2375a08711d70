//! A run's results as a KCIDB report (schema v5.3, the one kcidb-io 141
//! validates), the form KernelCI collects results from many labs in:
//! checkouts (each base's Debian source, and the source with the series),
//! builds (each variant's kernel), tests (each row of the report and each
//! case of its own, `vmtests.cow_162`) and, for each kernel report, an
//! issue and the incident that ties it to its test. `lab run` writes it as
//! `kcidb.json` beside `results.json`; the lab's tests validate it with
//! kcidb-io ([`crate::setup`] installs it).
//!
//! Every link is a `file://` URL of this machine's build folder: a lab that
//! submits to a KCIDB server publishes the files and rewrites the prefix.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

use crate::base::{Base, Source};
use crate::layout::file_url as url;
use crate::results::{Case, Status, TestResult};
use crate::variant::Variant;

/// The submitting system's name: the first part of every id.
pub const ORIGIN: &str = "lab";

/// The schema version written.
pub const VERSION: (u32, u32) = (5, 3);

/// What the report says about one base's source.
#[derive(Clone, Debug)]
pub struct CheckoutInput {
    pub base: Base,
    /// `7.3.4`.
    pub kernel: String,
    pub source: Source,
    /// The series' patch files, in order.
    pub patches: Vec<PathBuf>,
}

/// What the report says about one variant's kernel.
#[derive(Clone, Debug)]
pub struct BuildInput {
    pub variant: Variant,
    /// `clang 22, rustc 1.96.0`.
    pub compiler: String,
    pub config: PathBuf,
    pub log: PathBuf,
    pub image: PathBuf,
    /// Its guest's serial log in the run folder.
    pub serial_log: PathBuf,
}

#[derive(Debug, Serialize)]
pub struct Report {
    version: Version,
    checkouts: Vec<Checkout>,
    builds: Vec<Build>,
    tests: Vec<Test>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    issues: Vec<Issue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    incidents: Vec<Incident>,
}

#[derive(Debug, Serialize)]
struct Version {
    major: u32,
    minor: u32,
}

#[derive(Debug, Serialize)]
struct Resource {
    name: String,
    url: String,
}

#[derive(Debug, Serialize)]
struct Checkout {
    id: String,
    origin: &'static str,
    tree_name: String,
    git_commit_name: String,
    /// "" for no patches; else the sha256 of the patches' sha256s, each
    /// followed by a newline, in order.
    patchset_hash: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    patchset_files: Vec<Resource>,
    comment: String,
    start_time: String,
    valid: bool,
}

#[derive(Debug, Serialize)]
struct Build {
    id: String,
    checkout_id: String,
    origin: &'static str,
    architecture: String,
    compiler: String,
    config_name: String,
    config_url: String,
    log_url: String,
    output_files: Vec<Resource>,
    status: &'static str,
}

#[derive(Debug, Serialize)]
struct Environment {
    comment: String,
}

#[derive(Debug, Serialize)]
struct Test {
    id: String,
    build_id: String,
    origin: &'static str,
    path: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
    log_url: String,
    environment: Environment,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration: Option<f64>,
    start_time: String,
}

#[derive(Debug, Serialize)]
struct Culprit {
    code: bool,
    tool: bool,
    harness: bool,
}

#[derive(Debug, Serialize)]
struct Issue {
    id: String,
    version: u32,
    origin: &'static str,
    report_subject: String,
    comment: String,
    culprit: Culprit,
}

#[derive(Debug, Serialize)]
struct Incident {
    id: String,
    origin: &'static str,
    issue_id: String,
    issue_version: u32,
    test_id: String,
    build_id: String,
    present: bool,
    comment: String,
}

/// `lab:<local>`.
fn id(local: &str) -> String {
    format!("{ORIGIN}:{local}")
}

/// A KCIDB test path from a name: dot-separated parts of letters, digits,
/// `_` and `-` (`cow: 162` -> `cow_162`; a harness case's
/// `fixture.test` keeps its dot); None for a name with nothing left.
pub fn test_path(name: &str) -> Option<String> {
    let parts: Vec<String> = name
        .split('.')
        .map(|part| {
            let mut s = String::new();
            for c in part.chars() {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    s.push(c);
                } else if !s.ends_with('_') {
                    s.push('_');
                }
            }
            s.trim_matches('_').to_string()
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("."))
}

fn row_status(s: Status) -> &'static str {
    match s {
        Status::Pass => "PASS",
        Status::Skip => "SKIP",
        Status::Fail | Status::Crash => "FAIL",
        // It did not finish: neither a pass nor a fail of the code.
        Status::Hang => "ERROR",
        Status::NotRun => "MISS",
    }
}

fn case_status(c: &Case) -> &'static str {
    match c.status.as_str() {
        "PASS" => "PASS",
        "SKIP" => "SKIP",
        "FAIL" => "FAIL",
        _ => "ERROR",
    }
}

/// sha256 of `data`, in lower-case hex.
fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// KCIDB's patchset hash of `patches`.
fn patchset_hash(patches: &[PathBuf]) -> Result<String> {
    let mut all = String::new();
    for p in patches {
        let data = fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
        all.push_str(&sha256_hex(&data));
        all.push('\n');
    }
    Ok(if patches.is_empty() { String::new() } else { sha256_hex(all.as_bytes()) })
}

impl Report {
    /// The report of the run `run` (its folder's name) that started at
    /// `start` (RFC 3339).
    pub fn new(
        run: &str,
        start: &str,
        checkouts: &[CheckoutInput],
        builds: &[BuildInput],
        rows: &[TestResult],
    ) -> Result<Self> {
        let mut r = Report {
            version: Version { major: VERSION.0, minor: VERSION.1 },
            checkouts: Vec::new(),
            builds: Vec::new(),
            tests: Vec::new(),
            issues: Vec::new(),
            incidents: Vec::new(),
        };
        for c in checkouts {
            let tree_name = match c.base {
                Base::Mainline => "mainline",
                Base::Lts612 => "stable",
            };
            let origin = format!("Debian {} {}", c.source.package, c.source.version);
            for (part, patches) in [("base", &[][..]), ("series", &c.patches[..])] {
                r.checkouts.push(Checkout {
                    id: id(&format!("{run}/{}/{part}", c.base)),
                    origin: ORIGIN,
                    tree_name: tree_name.into(),
                    git_commit_name: format!("v{}", c.kernel),
                    patchset_hash: patchset_hash(patches)?,
                    patchset_files: patches
                        .iter()
                        .map(|p| Resource {
                            name: p.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                            url: url(p),
                        })
                        .collect(),
                    comment: match part {
                        "base" => format!("{origin}, as Debian ships it"),
                        _ => format!("{origin} with the series ({} patches)", patches.len()),
                    },
                    start_time: start.into(),
                    valid: true,
                });
            }
        }
        for b in builds {
            let v = &b.variant;
            let build_id = id(&format!("{run}/{}", v));
            let rows_of: Vec<&TestResult> = rows.iter().filter(|t| &t.variant == v).collect();
            r.builds.push(Build {
                id: build_id.clone(),
                checkout_id: id(&format!("{run}/{}/series", v.base)),
                origin: ORIGIN,
                architecture: v.arch.to_string(),
                compiler: b.compiler.clone(),
                config_name: v.config.clone(),
                config_url: url(&b.config),
                log_url: url(&b.log),
                output_files: vec![Resource {
                    name: b.image.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                    url: url(&b.image),
                }],
                // The guest booted it, so it built.
                status: "PASS",
            });
            let env = Environment { comment: format!("QEMU TCG {}, the lab's {} guest", v.arch, v.name()) };
            for (i, t) in rows_of.iter().enumerate() {
                let Some(path) = test_path(&t.test) else { continue };
                let test_id = id(&format!("{run}/{v}/{i}"));
                r.tests.push(Test {
                    id: test_id.clone(),
                    build_id: build_id.clone(),
                    origin: ORIGIN,
                    path: path.clone(),
                    status: row_status(t.status),
                    comment: (!t.detail.is_empty()).then(|| t.detail.clone()),
                    log_url: url(&b.serial_log),
                    environment: Environment { comment: env.comment.clone() },
                    duration: t.secs,
                    start_time: start.into(),
                });
                for (j, c) in t.cases.iter().chain(&t.subcases).enumerate() {
                    let Some(case) = test_path(&c.name) else { continue };
                    r.tests.push(Test {
                        id: id(&format!("{run}/{v}/{i}.{j}")),
                        build_id: build_id.clone(),
                        origin: ORIGIN,
                        path: format!("{path}.{case}"),
                        status: case_status(c),
                        comment: None,
                        log_url: url(&b.serial_log),
                        environment: Environment { comment: env.comment.clone() },
                        duration: None,
                        start_time: start.into(),
                    });
                }
                for (k, s) in t.splats.iter().enumerate() {
                    let issue_id = id(&format!("{run}/{v}/{i}/report{k}"));
                    let first = s.excerpt.lines().next().unwrap_or("").trim().to_string();
                    r.issues.push(Issue {
                        id: issue_id.clone(),
                        version: 0,
                        origin: ORIGIN,
                        report_subject: format!("kernel {}: {first}", s.kind),
                        comment: s.excerpt.clone(),
                        culprit: Culprit { code: true, tool: false, harness: false },
                    });
                    r.incidents.push(Incident {
                        id: id(&format!("{run}/{v}/{i}/report{k}/incident")),
                        origin: ORIGIN,
                        issue_id,
                        issue_version: 0,
                        test_id: test_id.clone(),
                        build_id: build_id.clone(),
                        present: true,
                        comment: format!("serial log line {}", s.line),
                    });
                }
            }
        }
        Ok(r)
    }

    /// Writes the report as JSON to `path`.
    pub fn write(&self, path: &Path) -> Result<()> {
        fs::write(path, serde_json::to_string_pretty(self)? + "\n")
            .with_context(|| format!("cannot write {}", path.display()))
    }
}

/// kcidb-io's check of a report: the schema the lab writes must be its
/// newest, and the report valid against it exactly (a report that declares
/// an older version is not upgraded first).
const VALIDATE: &str = "import json, sys
import jsonschema, kcidb_io
v = kcidb_io.schema.LATEST
want = (int(sys.argv[2]), int(sys.argv[3]))
if (v.major, v.minor) != want:
    print(f'kcidb-io knows v{v.major}.{v.minor} as its newest schema, the lab writes v{want[0]}.{want[1]}')
    sys.exit(2)
with open(sys.argv[1], encoding='utf-8') as f:
    data = json.load(f)
try:
    v.validate_exactly(data)
except jsonschema.exceptions.ValidationError as e:
    print('at /' + '/'.join(str(p) for p in e.absolute_path) + ': ' + e.message)
    sys.exit(1)
print(f'{v.count(data)} objects')
";

/// Validates the report at `path` with kcidb-io, run by `python` (its
/// environment's, [`crate::setup::Toolchain::kcidb_python`]); returns
/// kcidb-io's count of its objects.
pub fn validate(python: &Path, path: &Path) -> Result<String> {
    let o = std::process::Command::new(python)
        .arg("-c")
        .arg(VALIDATE)
        .arg(path)
        .args([VERSION.0.to_string(), VERSION.1.to_string()])
        .output()
        .with_context(|| format!("cannot run {}: run `lab setup`", python.display()))?;
    let out = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !o.status.success() {
        bail!(
            "{} is no valid KCIDB v{}.{} report: {}{}",
            path.display(),
            VERSION.0,
            VERSION.1,
            out,
            String::from_utf8_lossy(&o.stderr).lines().last().unwrap_or("")
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::Arch;
    use crate::results::Splat;

    #[test]
    fn a_run_with_every_kind_of_row_is_valid_kcidb() {
        // kcidb-io as `lab setup` installs it (make test does first).
        let layout = crate::testing::layout();
        let python = layout.tools().join(format!("kcidb-io-{}", crate::setup::KCIDB_IO)).join("bin/python3");
        assert!(python.is_file(), "no kcidb-io: run `lab setup` (make test does) first");
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let patches: Vec<PathBuf> = ["0001-a.patch", "0002-b.patch"].iter().map(|n| d.join(n)).collect();
        for p in &patches {
            fs::write(p, "diff\n").unwrap();
        }
        let source =
            Source { package: "linux-source-7.3".into(), version: "7.3.4-1~bpo13+1".into(), tarball: d.into() };
        let checkout = CheckoutInput { base: Base::Mainline, kernel: "7.3.4".into(), source, patches };
        let v = Variant::new(Base::Mainline, Arch::X86_64, "rust");
        let build = BuildInput {
            variant: v.clone(),
            compiler: "clang 22, rustc 1.96.0".into(),
            config: d.join(".config"),
            log: d.join("build-rust.log"),
            image: d.join("bzImage"),
            serial_log: d.join("serial.log"),
        };
        let mut pass = TestResult::new(&v, "vmtests", Status::Pass, "24 pass".into());
        pass.secs = Some(78.8);
        pass.cases.push(Case { name: "cow".into(), status: "PASS".into() });
        pass.subcases.push(Case { name: "cow: 162".into(), status: "SKIP".into() });
        let mut crash = TestResult::new(&v, "fault-stress", Status::Crash, "kernel WARNING".into());
        crash.splats.push(Splat {
            kind: "WARNING".into(),
            line: 812,
            excerpt: "WARNING: CPU: 1 PID: 80 at x\n".into(),
        });
        let rows = vec![
            pass,
            crash,
            TestResult::new(&v, "boot", Status::Pass, "init started".into()),
            TestResult::new(&v, "vma-lock-disk", Status::Hang, "killed".into()),
            TestResult::new(&v, "fault-inject", Status::NotRun, String::new()),
        ];
        let report = Report::new("20261207-190428", "2026-12-07T19:04:28+00:00", &[checkout], &[build], &rows).unwrap();
        let file = d.join("kcidb.json");
        report.write(&file).unwrap();
        // 2 checkouts, 1 build, 5 rows + 2 cases, 1 issue, 1 incident.
        assert_eq!(validate(&python, &file).unwrap(), "12 objects");
        let text = fs::read_to_string(&file).unwrap();
        assert!(text.contains("\"path\": \"vmtests.cow_162\""), "{text}");
        assert!(text.contains("\"status\": \"ERROR\"") && text.contains("\"status\": \"MISS\""), "{text}");
    }

    #[test]
    fn names_become_kcidb_paths() {
        assert_eq!(test_path("fault-bench").as_deref(), Some("fault-bench"));
        assert_eq!(test_path("cow: 162").as_deref(), Some("cow_162"));
        assert_eq!(test_path("stats.disk_swapin_drops_vma_lock").as_deref(), Some("stats.disk_swapin_drops_vma_lock"));
        assert_eq!(test_path("mremap_test: 3 (x)").as_deref(), Some("mremap_test_3_x"));
        assert_eq!(test_path("..."), None);
    }
}
