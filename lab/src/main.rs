//! `lab`: the command line of the lab.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use lab::base::Base;
use lab::config::{self, Kernel};
use lab::layout::Layout;
use lab::qemu::Watchdog;
use lab::setup::{self, Toolchain};
use lab::variant::Variant;
use lab::{build, pipeline, plan::Plan, tree};

#[derive(Parser)]
#[command(
    name = "lab",
    about = "Build the fault-lock series on mainline and on 6.12 LTS in a Debian trixie build root, boot it \
             under QEMU and run the mm selftests"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// The base a command works on.
#[derive(Args)]
struct OneBase {
    /// `mainline` (the newest linux-source-N.M of Debian trixie) or `6.12`.
    #[arg(long, default_value = "mainline")]
    base: Base,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what the host lacks (mmdebstrap), make the Debian trixie build
    /// root if it is missing or its package list changed, and check the
    /// tools in it.
    Setup {
        /// Make the build root again even if it is current (to pick up
        /// Debian's newer packages).
        #[arg(long)]
        refresh: bool,
    },
    /// Create the base's kernel work tree (if needed), apply its series,
    /// and print where it is.
    Tree(OneBase),
    /// Apply the base's series to its work tree.
    Apply {
        #[command(flatten)]
        base: OneBase,
        /// Replace commits that are not in the series (kept on a backup branch).
        #[arg(long)]
        force: bool,
    },
    /// Write the work tree's commits after `base` back to patches/<base>/.
    Export(OneBase),
    /// Build kernels (default: every variant `lab test` boots for the base)
    /// and the test programs.
    Build {
        #[command(flatten)]
        base: OneBase,
        /// Variants of the base: a configuration of config/<base>/ (an x86_64
        /// kernel) or `<arch>-<configuration>` (arm64-rust).
        variants: Vec<String>,
    },
    /// The main job for one or more variants of a base: build, boot, test,
    /// report.
    Run {
        #[command(flatten)]
        base: OneBase,
        /// Variants to run (default: rust, or c where the base has no rust
        /// configuration): a configuration of config/<base>/ (an x86_64
        /// guest) or `<arch>-<configuration>` (arm64-rust).
        #[arg(long = "variant")]
        variants: Vec<String>,
        /// Another test plan than guest/plan.
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Seconds the watchdog allows a test without a timeout of its own.
        #[arg(long, default_value_t = 900)]
        test_deadline: u64,
        /// A test of the plan not to run (repeatable).
        #[arg(long = "skip")]
        skip: Vec<String>,
    },
    /// Boot a variant with the test programs and the machine the tests get
    /// (disks, swap, cgroup), but an interactive shell on this terminal
    /// instead of the plan; `exit` powers the guest off.
    Shell {
        #[command(flatten)]
        base: OneBase,
        /// The variant: a configuration of config/<base>/ or
        /// `<arch>-<configuration>` (arm64-rust).
        variant: String,
    },
    /// Every guest of the given bases (default: all), as config/<base>/guests
    /// lists them, with the full plan; one report.
    Test {
        /// A base to test (repeatable; default: every base).
        #[arg(long = "base")]
        bases: Vec<Base>,
    },
    /// Write a variant's boot as a LAVA job (deploy, boot with the qemu
    /// method, the plan's results read by LAVA's monitors), with the device
    /// dictionary of a local qemu device rendered by lava-server's templates;
    /// with --run, run it with lava-run and check that LAVA's results are the
    /// lab's own reading of the same console
    Lava {
        #[command(flatten)]
        base: OneBase,
        /// The variant: a configuration of config/<base>/ or
        /// `<arch>-<configuration>` (arm64-rust).
        variant: String,
        /// Run the job with lava-run in the build root.
        #[arg(long)]
        run: bool,
    },
    /// Check, on built kernels, that C calls the Rust code exactly when the
    /// series' option is on (config/<base>/call-path).
    CallPath {
        #[command(flatten)]
        base: OneBase,
        variants: Vec<String>,
    },
    /// Check that the programs of checks/compile-fail/<base> are rejected by the
    /// compiler with the errors they expect.
    CompileFail {
        #[command(flatten)]
        base: OneBase,
        variants: Vec<String>,
    },
    /// Check that the 6.12 backport is still mainline's series: compare the
    /// Rust sources of both series at their tips; every difference must be
    /// explained in config/6.12/rust-differences.
    Backport,
    /// Check each patch of the base's series (checkpatch, get_maintainer,
    /// rustfmt, builds with the option off and on, rustdoc) and the tip on
    /// arm64 (build) and powerpc, s390, riscv, arm and, on mainline,
    /// loongarch (fault.o) and the documentation it touches (make
    /// htmldocs); print a patch x check table.
    Check {
        #[command(flatten)]
        base: OneBase,
        /// Only the tip's checks: other architectures and documentation
        /// (in the tip checkout, build/<base>/tip: they may run beside a
        /// walk of the work tree).
        #[arg(long)]
        series_only: bool,
        /// Only the documentation (make htmldocs, kernel-doc).
        #[arg(long, conflicts_with = "series_only")]
        docs_only: bool,
        /// Only the checks of each patch, not the tip's.
        #[arg(long, conflicts_with_all = ["series_only", "docs_only"])]
        patches_only: bool,
    },
    /// Measure the cost per page fault on three kernels of a base side by
    /// side (guest/programs/fault_bench.c): c and rust (does the Rust fault
    /// path cost more than C?), and noretry, rust without the retry under
    /// the per-VMA lock (config/<base>/bench/noretry.config). Instructions
    /// per fault under -icount, wall-clock time under MTTCG; tables, JSON
    /// and SVG.
    Bench {
        #[command(flatten)]
        base: OneBase,
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
    /// Prepare the base's series with b4 (its cover letter from
    /// patches/<base>/, To/Cc from get_maintainer.pl) and write it as mail
    /// under build/<base>/send/mail, showing who each message goes to.
    Send {
        #[command(flatten)]
        base: OneBase,
        /// Send it with `b4 send` and your git configuration (b4 asks first).
        #[arg(long, conflicts_with = "loopback")]
        really: bool,
        /// Send a fresh b4 branch of it to a mail server of the lab's own on
        /// 127.0.0.1, apply what arrives to base with `git am` and compare
        /// the trees.
        #[arg(long)]
        loopback: bool,
    },
    /// List each base's configurations and the guests `lab test` boots.
    Variants,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("lab: error: {e:#}");
            if let (true, Ok(layout)) = (lab::disk::is_disk_full(&e), Layout::discover()) {
                eprintln!("lab: {}", lab::disk::disk_full_advice(&layout.build));
            }
            ExitCode::from(2)
        }
    }
}

/// The variants named on the command line, or `default` when none is.
fn variants_of(base: Base, names: &[String], default: impl FnOnce() -> Result<Vec<Variant>>) -> Result<Vec<Variant>> {
    if names.is_empty() {
        default()
    } else {
        Ok(names.iter().map(|n| Variant::parse(base, n)).collect())
    }
}

/// The variant `lab run` boots when none is named: the series' Rust
/// configuration, or the plain kernel where the base has none yet.
fn default_run_variant(layout: &Layout, base: Base) -> Result<Vec<Variant>> {
    let configs = config::configs(layout, base)?;
    let config = if configs.iter().any(|c| c == "rust") { "rust" } else { "c" };
    Ok(vec![Variant::parse(base, config)])
}

/// Runs a check on built kernels (no guest) for `variants` (default: the
/// base's guests) and prints its row for each; returns whether all passed.
fn static_check(
    layout: &Layout,
    base: Base,
    names: &[String],
    check: impl Fn(&Variant) -> Result<Option<lab::results::TestResult>>,
) -> Result<bool> {
    let variants = variants_of(base, names, || config::guests(layout, base))?;
    let mut ok = true;
    for v in &variants {
        if let Some(r) = check(v)? {
            println!("{v}: {} {}", r.status.label(), r.detail);
            ok &= !r.status.failed();
        }
    }
    Ok(ok)
}

fn toolchain(layout: &Layout) -> Result<Toolchain> {
    setup::ensure(layout, false)
}

fn real_main() -> Result<bool> {
    let cli = Cli::parse();
    let layout = Layout::discover()?;
    match cli.command {
        Cmd::Setup { refresh } => {
            if !layout.root().exists() {
                if let Some(w) = lab::disk::short_of_disk(&layout.repo) {
                    eprintln!("lab: warning: {w}");
                }
            }
            let tc = setup::ensure(&layout, refresh)?;
            let mut sources = Vec::new();
            for base in Base::ALL {
                let s = tc.source(base)?;
                sources.push(format!("{base}: {} {}", s.package, s.version));
            }
            let mut compilers = Vec::new();
            for base in Base::ALL {
                let llvm = setup::llvm_of(base);
                compilers.push(format!(
                    "{base}: clang-{llvm} {}, bindgen {}",
                    tc.root.package_version(&format!("clang-{llvm}"))?,
                    tc.bindgen(base).version
                ));
            }
            println!(
                "lab: ready: build root {} (rustc-web {}; {}); {}",
                tc.root.dir.display(),
                tc.root.package_version("rustc-web")?,
                compilers.join("; "),
                sources.join("; ")
            );
        }
        Cmd::Tree(OneBase { base }) => {
            let tc = toolchain(&layout)?;
            pipeline::prepare_base(&layout, &tc, base)?;
            let t = layout.tree(base);
            println!("{}", t.display());
            eprintln!(
                "lab: work in {0} (branch main, tag `base` is the Debian source). Commit your changes, then \
                 `make export BASE={base}` writes them to {1}.",
                t.display(),
                layout.patches(base).display()
            );
        }
        Cmd::Apply { base: OneBase { base }, force } => {
            let tc = toolchain(&layout)?;
            tree::ensure_base(&layout, &tc.root, base, &tc.source(base)?)?;
            if !tree::apply(&layout, base, force)? {
                eprintln!("lab: {} already holds the {base} series", layout.tree(base).display());
            }
        }
        Cmd::Export(OneBase { base }) => {
            let changed = tree::export(&layout, base)?;
            if changed.is_empty() {
                eprintln!("lab: {} already matches the tree", layout.patches(base).display());
            } else {
                eprintln!("lab: updated in {}: {}", layout.patches(base).display(), changed.join(" "));
            }
        }
        Cmd::Build { base: OneBase { base }, variants } => {
            let tc = toolchain(&layout)?;
            let variants = variants_of(base, &variants, || config::guests(&layout, base))?;
            if variants.iter().any(lab::tip::walked) {
                pipeline::prepare_base(&layout, &tc, base)?;
            } else {
                // Only kernels of the tip checkout, which follows the series
                // by itself, without waiting for a walk of the work tree.
                tree::ensure_base(&layout, &tc.root, base, &tc.source(base)?)?;
            }
            let plan = Plan::load(&layout.guest().join("plan"))?;
            pipeline::build_all(&layout, &tc, &variants, &plan)?;
        }
        Cmd::Run { base: OneBase { base }, variants, plan, test_deadline, skip } => {
            let tc = toolchain(&layout)?;
            let variants = variants_of(base, &variants, || default_run_variant(&layout, base))?;
            let wd = Watchdog { default_test: Duration::from_secs(test_deadline), ..Watchdog::default() };
            return pipeline::run(&layout, &tc, &variants, plan.as_deref(), &skip, &wd);
        }
        Cmd::Shell { base: OneBase { base }, variant } => {
            let tc = toolchain(&layout)?;
            pipeline::shell(&layout, &tc, &Variant::parse(base, &variant))?;
        }
        Cmd::Lava { base: OneBase { base }, variant, run } => {
            let tc = toolchain(&layout)?;
            if !lab::lava::dispatch::lava(&layout, &tc, &Variant::parse(base, &variant), run)? {
                std::process::exit(1);
            }
        }
        Cmd::Test { bases } => {
            let tc = toolchain(&layout)?;
            let bases = if bases.is_empty() { Base::ALL.to_vec() } else { bases };
            let mut variants = Vec::new();
            for base in bases {
                variants.extend(config::guests(&layout, base)?);
            }
            return pipeline::run(&layout, &tc, &variants, None, &[], &Watchdog::default());
        }
        Cmd::CallPath { base: OneBase { base }, variants } => {
            return static_check(&layout, base, &variants, |v| pipeline::call_path(&layout, v));
        }
        Cmd::CompileFail { base: OneBase { base }, variants } => {
            let tc = toolchain(&layout)?;
            return static_check(&layout, base, &variants, |v| pipeline::compile_fail(&layout, &tc, v));
        }
        Cmd::Backport => {
            let tc = toolchain(&layout)?;
            for base in Base::ALL {
                pipeline::prepare_base(&layout, &tc, base)?;
            }
            lab::backport::check(&layout)?;
            return Ok(true);
        }
        Cmd::Check { base: OneBase { base }, series_only, docs_only, patches_only } => {
            use lab::check::Scope;
            let tc = toolchain(&layout)?;
            let scope = match (series_only, docs_only, patches_only) {
                (_, true, _) => Scope::Docs,
                (true, _, _) => Scope::Series,
                (_, _, true) => Scope::Patches,
                _ => Scope::All,
            };
            if matches!(scope, Scope::All | Scope::Patches) {
                pipeline::prepare_base(&layout, &tc, base)?;
            } else {
                // The tip checkout follows the series by itself, without
                // waiting for a walk of the work tree.
                tree::ensure_base(&layout, &tc.root, base, &tc.source(base)?)?;
            }
            return lab::check::run(&layout, &tc, base, scope);
        }
        Cmd::Bench { base: OneBase { base }, pages, repeats, rounds } => {
            let tc = toolchain(&layout)?;
            return lab::bench::run(&layout, &tc, base, &lab::bench::Options { pages, repeats, rounds });
        }
        Cmd::Send { base: OneBase { base }, really, loopback } => {
            let tc = toolchain(&layout)?;
            pipeline::prepare_base(&layout, &tc, base)?;
            return lab::send::run(&layout, &tc.root, base, really, loopback);
        }
        Cmd::Variants => {
            for base in Base::ALL {
                let configs = config::configs(&layout, base)?;
                let guests: Vec<String> = config::guests(&layout, base)?.iter().map(Variant::name).collect();
                let bench = config::bench_configs(&layout, base)?;
                println!(
                    "{base}: configurations {}; guests {}; bench-only {}",
                    configs.join(" "),
                    guests.join(" "),
                    if bench.is_empty() { "none".into() } else { bench.join(" ") }
                );
                for c in &configs {
                    let k = Kernel::of(&layout, &Variant::parse(base, c))?;
                    let frags: Vec<String> = k
                        .fragments
                        .iter()
                        .filter_map(|f| f.strip_prefix(&layout.repo).ok())
                        .map(|p| p.display().to_string())
                        .collect();
                    println!("  {c}: {} ({})", frags.join(" + "), build::image(&layout, &k.variant).display());
                }
            }
        }
    }
    Ok(true)
}
