//! `lab`: the command line of the lab.

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lab::layout::Layout;
use lab::qemu::Watchdog;
use lab::{build, pipeline, plan::Plan, tree};

#[derive(Parser)]
#[command(
    name = "lab",
    about = "Build the fault-lock series on Linux 6.12, boot it under QEMU and run the mm selftests"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install missing Debian packages and bindgen, and check versions.
    Setup,
    /// Create the kernel work tree (if needed), apply patches/, and print
    /// where it is.
    Tree,
    /// Apply patches/ to the work tree.
    Apply {
        /// Replace commits that are not in patches/ (kept on a backup branch).
        #[arg(long)]
        force: bool,
    },
    /// Write the tree's commits after `base` back to patches/.
    Export,
    /// Build kernels (default: every variant `lab test` boots) and the
    /// selftests.
    Build { variants: Vec<String> },
    /// The main job for one or more variants: build, boot, test, report.
    Run {
        /// Variants to run (default: rust): a configuration of config/ (an
        /// x86_64 guest) or `<arch>-<configuration>` (arm64-rust).
        #[arg(long = "variant", default_values_t = vec!["rust".to_string()])]
        variants: Vec<String>,
        /// Another test plan than guest/plan.
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Seconds the watchdog allows a test without a timeout of its own.
        #[arg(long, default_value_t = 900)]
        test_deadline: u64,
    },
    /// What CI checks: every variant with the full plan, and the rust
    /// configuration on arm64 (arm64-rust).
    Test,
    /// Check, on built kernels, that C calls the Rust code exactly when the
    /// series' option is on (config/call-path).
    CallPath { variants: Vec<String> },
    /// Check that the programs of checks/compile-fail are rejected by the
    /// compiler with the errors they expect.
    CompileFail { variants: Vec<String> },
    /// Check each patch (checkpatch, get_maintainer, rustfmt, builds with
    /// the option off and on, rustdoc) and the tip on arm64 (build) and
    /// powerpc, s390, riscv, arm (fault.o) and the documentation it
    /// touches (make htmldocs); print a patch x check table.
    Check {
        /// Only the tip's checks: other architectures and documentation.
        #[arg(long)]
        series_only: bool,
        /// Only the documentation (make htmldocs, kernel-doc).
        #[arg(long, conflicts_with = "series_only")]
        docs_only: bool,
    },
    /// Measure the cost per page fault on three kernels side by side
    /// (guest/programs/fault_bench.c): c and rust (does the Rust fault path
    /// cost more than C?), and noretry, rust without the retry under the
    /// per-VMA lock (config/bench/noretry.config; how much of the writer's
    /// cost to uffd and swap-in faults does the retry take away?).
    /// Instructions per fault under -icount, wall-clock time under MTTCG;
    /// tables, JSON and SVG.
    Bench {
        /// Pages each case faults per repeat.
        #[arg(long, default_value_t = 4096)]
        pages: u32,
        /// Measured repeats per case and boot.
        #[arg(long, default_value_t = 5)]
        repeats: u32,
        /// Wall-clock rounds (each boots c, noretry, then rust).
        #[arg(long, default_value_t = 2)]
        rounds: u32,
    },
    /// Write the series as mail (format-patch with the cover letter, base
    /// and To/Cc from get_maintainer.pl) under build/send/ and show what
    /// `git send-email` would send.
    Send {
        /// Send it, with your git send-email configuration.
        #[arg(long, conflicts_with = "loopback")]
        really: bool,
        /// Send it to a mail server of the lab's own on 127.0.0.1, apply what
        /// arrives to base with `git am` and compare the trees.
        #[arg(long)]
        loopback: bool,
    },
    /// List the kernel variants config/ defines, and the guests of other
    /// architectures `lab test` boots.
    Variants,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("lab: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs a check on built kernels (no guest) for `variants` (default: all)
/// and prints its row for each; returns whether all passed.
fn static_check(
    layout: &Layout,
    variants: Vec<String>,
    check: fn(&Layout, &str) -> Result<Option<lab::results::TestResult>>,
) -> Result<bool> {
    let variants = if variants.is_empty() { build::variants(layout)? } else { variants };
    let mut ok = true;
    for v in &variants {
        if let Some(r) = check(layout, v)? {
            println!("{v}: {} {}", r.status.label(), r.detail);
            ok &= !r.status.failed();
        }
    }
    Ok(ok)
}

fn real_main() -> Result<bool> {
    let cli = Cli::parse();
    let layout = Layout::discover()?;
    match cli.command {
        Cmd::Setup => {
            let tc = lab::setup::ensure(&layout.logs())?;
            println!(
                "lab: ready: rustc {}, bindgen {}, QEMU {}, linux-source-6.12 {}",
                tc.rustc.display(),
                tc.bindgen.display(),
                tc.qemu.display(),
                tc.source_version
            );
        }
        Cmd::Tree => {
            pipeline::prepare(&layout)?;
            let t = layout.tree();
            println!("{}", t.display());
            eprintln!(
                "lab: work in {0} (branch main, tag `base` is the Debian source). Commit your \
                 changes, then `make export` writes them to patches/.",
                t.display()
            );
        }
        Cmd::Apply { force } => {
            let tc = lab::setup::ensure(&layout.logs())?;
            tree::ensure_base(&layout, &tc.source_tarball, &tc.source_version)?;
            if !tree::apply(&layout, force)? {
                eprintln!("lab: {} already holds patches/", layout.tree().display());
            }
        }
        Cmd::Export => {
            let changed = tree::export(&layout)?;
            if changed.is_empty() {
                eprintln!("lab: patches/ already matches the tree");
            } else {
                eprintln!("lab: updated in patches/: {}", changed.join(" "));
            }
        }
        Cmd::Build { variants } => {
            let tc = pipeline::prepare(&layout)?;
            let variants = if variants.is_empty() { build::guest_variants(&layout)? } else { variants };
            let plan = Plan::load(&layout.guest().join("plan"))?;
            pipeline::build_all(&layout, &tc, &variants, &plan)?;
        }
        Cmd::Run { variants, plan, test_deadline } => {
            let wd = Watchdog { default_test: Duration::from_secs(test_deadline), ..Watchdog::default() };
            return pipeline::run(&layout, &variants, plan.as_deref(), &wd);
        }
        Cmd::Test => {
            let variants = build::guest_variants(&layout)?;
            return pipeline::run(&layout, &variants, None, &Watchdog::default());
        }
        Cmd::CallPath { variants } => return static_check(&layout, variants, pipeline::call_path),
        Cmd::CompileFail { variants } => return static_check(&layout, variants, pipeline::compile_fail),
        Cmd::Check { series_only, docs_only } => {
            use lab::check::Scope;
            let tc = pipeline::prepare(&layout)?;
            let scope = match (series_only, docs_only) {
                (_, true) => Scope::Docs,
                (true, _) => Scope::Series,
                _ => Scope::All,
            };
            return lab::check::run(&layout, &tc, scope);
        }
        Cmd::Bench { pages, repeats, rounds } => {
            return lab::bench::run(&layout, &lab::bench::Options { pages, repeats, rounds });
        }
        Cmd::Send { really, loopback } => {
            pipeline::prepare(&layout)?;
            return lab::send::run(&layout, really, loopback);
        }
        Cmd::Variants => {
            for v in build::guest_variants(&layout)? {
                println!("{v}");
            }
        }
    }
    Ok(true)
}
