//! `lab lava`: a variant's job, device dictionary and rendered device
//! written to a run folder, and, with `--run`, the job run by `lava-run`
//! in the build root and its results compared with the lab's own.

use anyhow::{bail, Context, Result};
use std::fs;
use std::path::Path;

use super::results::{self, Compared};
use super::{job, render_device, to_yaml, DEVICE};
use crate::cmd;
use crate::layout::{file_url as url, Layout};
use crate::pipeline::{self, Guest};
use crate::plan::Plan;
use crate::progress::Progress;
use crate::qemu::{HostOutcome, Watchdog};
use crate::results::KunitPy;
use crate::setup::Toolchain;
use crate::variant::Variant;

/// What the job file says of itself.
const HEADER: &str = "A LAVA job written by the lab (lab lava): it boots the kernel, initramfs and disks
of one variant as the lab boots them, and reads the plan's results from the
console with the `monitors` method (no shell). For a LAVA server, publish the
artifacts and change the file:// URLs to theirs; everything else stays. A real
board replaces device_type, the deploy (to: tftp, with a dtb) and the boot
method (u-boot, depthcharge): see README.md, `LAVA`.";

/// Writes `v`'s job, device dictionary and rendered device into a new run
/// folder, and with `run` runs the job with lava-run and compares LAVA's
/// results with the lab's reading of the same console. Returns whether
/// they agree (true when not run).
pub fn lava(layout: &Layout, tc: &Toolchain, v: &Variant, run: bool) -> Result<bool> {
    let plan = Plan::load(&layout.guest().join("plan"))?;
    if crate::tip::walked(v) {
        pipeline::prepare_base(layout, tc, v.base)?;
    } else {
        // A kernel of the tip checkout, which follows the series by
        // itself: no need to wait for a walk of the work tree.
        crate::tree::ensure_base(layout, &tc.root, v.base, &tc.source(v.base)?)?;
    }
    pipeline::build_all(layout, tc, std::slice::from_ref(v), &plan)?;
    let plan = plan.for_variant(v);
    let dir = crate::layout::dated_dir(&layout.runs())?.join(v.base.name()).join(v.name());
    fs::create_dir_all(&dir)?;
    let m = pipeline::machine(layout, tc, v, &plan, &dir, Guest::TEST)?;
    let outcome = write_and_run(layout, tc, v, &plan, &m, &dir, run);
    for d in &m.disks {
        let _ = fs::remove_file(&d.image);
    }
    let Some(output) = outcome? else { return Ok(true) };

    let logs = output.join("logs.yaml");
    let rec = results::read(&logs)?;
    fs::write(dir.join("serial.log"), &rec.console)?;
    let host = match rec.job.as_deref() {
        Some("pass") => HostOutcome::Exited { code: Some(0) },
        _ => HostOutcome::Exited { code: None },
    };
    let ktap = KunitPy::new(&tc.root, &layout.tree(v.base), &dir.join("ktap"))?;
    let rows = crate::results::analyse(v, &rec.console, &plan, &host, &ktap);
    let compared = results::compare(&plan, &rec, &rows);
    println!("{:<16} {:<6} {:<6} agree", "test", "LAVA", "lab");
    for c in &compared {
        let word = |w: Option<&str>| w.unwrap_or("-").to_string();
        println!(
            "{:<16} {:<6} {:<6} {}",
            c.test,
            word(c.lava.as_deref()),
            word(c.lab),
            if c.agrees() { "yes" } else { "NO" }
        );
    }
    if rec.job.as_deref() != Some("pass") {
        bail!(
            "LAVA did not complete the job ({}): see its log {}",
            rec.job.as_deref().unwrap_or("no verdict"),
            logs.display()
        );
    }
    let disagree: Vec<&Compared> = compared.iter().filter(|c| !c.agrees()).collect();
    if !disagree.is_empty() {
        eprintln!(
            "lab: LAVA and the lab disagree on {}: LAVA's log {}, the lab's reading of its console {}",
            disagree.iter().map(|c| c.test.as_str()).collect::<Vec<_>>().join(", "),
            logs.display(),
            dir.join("serial.log").display()
        );
        return Ok(false);
    }
    eprintln!("lab: LAVA and the lab agree on the {} tests of {v} (LAVA's log: {})", plan.tests.len(), logs.display());
    Ok(true)
}

/// Writes the job files into `dir`; with `run`, runs lava-run on them and
/// returns its output folder.
fn write_and_run(
    layout: &Layout,
    tc: &Toolchain,
    v: &Variant,
    plan: &Plan,
    m: &crate::qemu::Machine,
    dir: &Path,
    run: bool,
) -> Result<Option<std::path::PathBuf>> {
    let default_test = Watchdog::default().default_test.as_secs();
    let job_file = dir.join("job.yaml");
    fs::write(&job_file, to_yaml(HEADER, &job(v, m, plan, default_test, &url))?)?;
    let dict = layout.repo.join("config/lava").join(format!("{DEVICE}.jinja2"));
    fs::copy(&dict, dir.join(format!("{DEVICE}.jinja2"))).with_context(|| format!("cannot copy {}", dict.display()))?;
    let device = dir.join("device.yaml");
    let log = dir.join("lava-run.log");
    render_device(layout, &tc.root, &job_file, &device, &log)?;
    eprintln!("lab: LAVA job {} and device {} ({DEVICE}.jinja2 rendered)", job_file.display(), device.display());
    if !run {
        return Ok(None);
    }
    // Downloads (the artifacts' copies) into the run folder, not the root.
    let downloads = dir.join("downloads");
    let dispatcher = dir.join("dispatcher.yaml");
    fs::write(&dispatcher, format!("dispatcher_download_dir: {}\n", downloads.display()))?;
    let output = dir.join("lava");
    let mut c = tc.root.command("lava-run");
    c.arg("--job-id").arg(format!("lab-{}-{}", v.base.name(), v.name()));
    c.arg("--output-dir").arg(&output).arg("--device").arg(&device).arg("--dispatcher").arg(&dispatcher);
    c.arg(&job_file);
    let pb = Progress::spinner(&format!("LAVA job {v}"), "lava-run");
    let res = cmd::run_logged(&mut c, &log, |l| {
        if let Some(i) = l.find("LAB: ") {
            pb.message(l[i..].trim_end_matches(['"', '}']));
        }
    });
    pb.finish();
    let _ = fs::remove_dir_all(&downloads);
    // lava-run fails (1) when the job is incomplete: its log says why, and
    // the comparison names it.
    if let Err(e) = res {
        if !output.join("logs.yaml").is_file() {
            return Err(e.context(format!("lava-run failed before it wrote a log: see {}", log.display())));
        }
    }
    Ok(Some(output))
}
