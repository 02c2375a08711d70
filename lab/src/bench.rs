//! `lab bench`: what a page fault costs on the kernels of a base, side by
//! side: `c` (the series with its Rust option off), `rust`
//! (config/<base>/rust.config: the Rust fault path) and, where the base's
//! rust kernel retries faults that waited under the per-VMA lock, `noretry`
//! (config/<base>/bench/noretry.config: rust without that retry, a kernel
//! only the benchmark boots; mainline has it, 6.12's backport does not).
//!
//! The kernels run guest/programs/fault_bench.c (four fault kinds, 1
//! or 2 faulting threads, with and without a thread looping mprotect) in
//! the same invocation, booted in the order c, noretry, rust:
//!
//! - under `-icount` with one vCPU, where the guest clock counts
//!   instructions: the faulting threads' own CPU time per fault is the
//!   instructions they executed per fault (without the userfaultfd
//!   handler's or the writer's, whose scheduling varies between repeats);
//! - under multi-threaded TCG with two vCPUs, the three boots in turn for
//!   several rounds: wall-clock time per fault, for the contended cases,
//!   and guest/programs/memcg_thrash.c on the swap disk (see
//!   [`crate::thrash`]).
//!
//! The comparisons (`bench/compare.rs`, from the samples of
//! `bench/sample.rs`):
//!
//! - c against rust, every kind: does the Rust fault path cost more than
//!   C? The Rust/C ratio per configuration, a verdict and an SVG chart;
//! - where the base has noretry, noretry against rust, the kinds whose
//!   faults wait (uffd, swapin): does the retry under the per-VMA lock keep
//!   a fault that waited from queueing behind the writer's mmap_lock? Per
//!   kernel, the wall-clock throughput with the writer over that without it
//!   (1.0: the writer costs nothing; the goal is [`RETRY_GOAL`] with the
//!   retry), and the uffd instructions per fault of both; and memcg-thrash's
//!   rounds a second and fork latency.
//!
//! Each configuration is summarised by the median over its repeats (and
//! rounds) and the spread, `(max - min) / median`. The report
//! (`bench/render.rs`) is tables, JSON and an SVG chart under
//! `build/bench/<base>/<time>/`, with `latest` beside it.

use anyhow::{bail, Context, Result};
use std::path::Path;

use crate::base::Base;
use crate::config;
use crate::layout::Layout;
use crate::pipeline;
use crate::plan::Plan;
use crate::qemu::Watchdog;
use crate::results::Status;
use crate::setup::Toolchain;
use crate::thrash;
use crate::variant::Variant;

mod compare;
mod render;
mod sample;

pub use compare::{
    retry_verdict, summarise, summarise_retry, summarise_retry_icount, verdict, Contention, RetryIcountRow, RetryRow,
    Row,
};
pub use render::{retry_table, table, write_svg};
pub use sample::{parse_samples, Clock, Key, Sample};

/// The kernels measured, in the order they boot in each round: c and rust
/// for the Rust/C comparison, noretry and rust for the retry's.
pub const VARIANTS: [&str; 3] = ["c", NORETRY, "rust"];
/// The bench-only kernel: rust without the retry under the per-VMA lock
/// (config/bench/noretry.config).
pub const NORETRY: &str = "noretry";
/// The largest Rust/C ratio of instructions per fault that counts as free.
pub const GOAL: f64 = 1.005;
/// The fault kinds whose faults wait (for a swapped-out page's folio lock,
/// for the userfaultfd handler) and so retry: the retry comparison's.
pub const RETRY_KINDS: [&str; 2] = ["swapin", "uffd"];
/// The smallest contended/uncontended throughput ratio (uncontended over
/// contended wall-clock ns per fault) that counts as "the writer costs
/// nothing", for the kernel with the retry.
pub const RETRY_GOAL: f64 = 0.9;

/// What `lab bench` runs.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Pages each case faults per repeat.
    pub pages: u32,
    /// Measured repeats per case and boot.
    pub repeats: u32,
    /// Wall-clock rounds (each boots c, noretry, then rust).
    pub rounds: u32,
}

/// The kernels a bench boots, in the order of [`VARIANTS`], among the
/// configurations `known` of a base: c and rust, which every base must
/// have, and noretry where the base has it.
pub fn kernels(known: &[String]) -> Result<Vec<&'static str>> {
    let has = |v: &str| known.iter().any(|k| k == v);
    if let Some(missing) = ["c", "rust"].into_iter().find(|v| !has(v)) {
        bail!(
            "the benchmark compares the configurations c and rust of one base, but it has no {missing} (it has: {}); \
             add config/<base>/{missing}.config",
            known.join(", ")
        );
    }
    Ok(VARIANTS.into_iter().filter(|v| has(v)).collect())
}

/// The guest plan of a bench boot under `clock`: the fault benchmark, and
/// under the wall clock the memcg-thrash one too, which waits for a
/// throttled disk in real time (under -icount, guest time would not be
/// the disk's).
fn plan(opts: &Options, clock: Clock) -> Result<Plan> {
    let mut text = format!("fault-bench ktap 3000 fault_bench -p {} -r {}\n", opts.pages, opts.repeats);
    if clock == Clock::Wall {
        text.push_str("memcg-thrash ktap 300 needs=memcg_thrash with-swap disk memcg_thrash -t 10\n");
    }
    Plan::parse(&text, "lab bench")
}

/// Boots `variant` once under `clock` and returns its samples, and its
/// memcg-thrash run where the plan has one; fails if a benchmark itself
/// failed (a wrong page or a fault count that is off).
fn boot_once(
    layout: &Layout,
    tc: &Toolchain,
    plan: &Plan,
    variant: &Variant,
    clock: Clock,
    dir: &Path,
) -> Result<(Vec<Sample>, Option<thrash::Sample>)> {
    let (rows, _) = pipeline::boot(layout, tc, variant, plan, dir, &Watchdog::default(), clock.guest())?;
    let log = dir.join("serial.log");
    if let Some(bad) = rows.iter().find(|r| r.status.failed()) {
        bail!(
            "the benchmark failed on {variant} ({clock:?}): {} {}: {}; see {}",
            bad.test,
            bad.status.label(),
            bad.detail,
            log.display()
        );
    }
    if !rows.iter().any(|r| r.test == "fault-bench" && r.status == Status::Pass) {
        bail!("no fault-bench result on {variant} ({clock:?}); see {}", log.display());
    }
    let text = String::from_utf8_lossy(&std::fs::read(&log)?).into_owned();
    let samples = parse_samples(&text)?;
    if samples.is_empty() {
        bail!("fault_bench printed no `# bench` line on {variant} ({clock:?}); see {}", log.display());
    }
    let thrash = thrash::parse(&text).with_context(|| format!("memcg_thrash on {variant}: see {}", log.display()))?;
    if thrash.is_none() && plan.tests.iter().any(|t| t.name == "memcg-thrash") {
        bail!("memcg_thrash printed no rates on {variant} ({clock:?}); see {}", log.display());
    }
    Ok((samples, thrash))
}

/// The whole `lab bench` on `base`: returns whether every boot ran its
/// benchmark.
pub fn run(layout: &Layout, tc: &Toolchain, base: Base, opts: &Options) -> Result<bool> {
    let known: Vec<String> =
        config::configs(layout, base)?.into_iter().chain(config::bench_configs(layout, base)?).collect();
    let names = kernels(&known).with_context(|| format!("{base} cannot be benchmarked"))?;
    let source = pipeline::prepare_base(layout, tc, base)?;
    let variants: Vec<Variant> = names.iter().map(|v| Variant::parse(base, v)).collect();
    pipeline::build_all(layout, tc, &variants, &plan(opts, Clock::Wall)?)?;
    let dir = crate::layout::dated_dir(&layout.build.join("bench").join(base.name()))?;
    let mut samples = Vec::new();
    let mut thrash_samples = Vec::new();
    let mut boots = vec![(Clock::Icount, 0)];
    boots.extend((0..opts.rounds).map(|r| (Clock::Wall, r)));
    for (clock, round) in boots {
        let plan = plan(opts, clock)?;
        for v in &variants {
            let sub = dir.join(format!("{}-{round}-{}", format!("{clock:?}").to_lowercase(), v.name()));
            let (bench, thrash) = boot_once(layout, tc, &plan, v, clock, &sub)?;
            samples.extend(bench.into_iter().map(|s| (clock, v.config.clone(), s)));
            thrash_samples.extend(thrash.map(|t| (v.config.clone(), t)));
        }
    }
    let thrash_rows = thrash::summarise(&thrash_samples);
    let rows = summarise(&samples);
    let retry_rows = summarise_retry(&samples);
    let retry_icount_rows = summarise_retry_icount(&samples);
    let json = serde_json::json!({
        "base": base,
        "kernel": crate::tree::kernel_version(&layout.tree(base)).unwrap_or_default(),
        "debian_package": source.package,
        "debian_version": source.version,
        "pages": opts.pages,
        "repeats": opts.repeats,
        "rounds": opts.rounds,
        "goal": GOAL,
        "rows": rows,
        "variants": names,
        "retry_goal": RETRY_GOAL,
        "retry_rows": retry_rows,
        "retry_icount_rows": retry_icount_rows,
        "samples": samples.iter().map(|(c, v, s)| serde_json::json!({"clock": c, "variant": v, "sample": s})).collect::<Vec<_>>(),
        "thrash_rows": thrash_rows,
        "thrash_samples": thrash_samples.iter().map(|(v, s)| serde_json::json!({"variant": v, "sample": s})).collect::<Vec<_>>(),
    });
    std::fs::write(dir.join("bench.json"), serde_json::to_string_pretty(&json)?)?;
    write_svg(&dir.join("bench.svg"), &rows, &thrash_rows)?;
    print!("{}", table(&rows));
    println!("{}", verdict(&rows));
    println!();
    if names.contains(&NORETRY) {
        print!("{}", retry_table(&retry_rows, &retry_icount_rows));
        println!("{}", retry_verdict(&retry_rows));
    } else {
        println!(
            "{base} has no {NORETRY} bench kernel (config/{}/bench/{NORETRY}.config: its series has no retry under \
             the per-VMA lock yet), so there is no retry comparison",
            base.name()
        );
    }
    if !thrash_rows.is_empty() {
        println!();
        print!("{}", thrash::table(&thrash_rows)?);
        if let Some(v) = thrash::verdict(&thrash_rows, NORETRY, "rust") {
            println!("{v}");
        }
    }
    println!("serial logs, bench.json and bench.svg: {}", dir.display());
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    #[test]
    fn the_kernels_are_c_and_rust_and_noretry_where_the_base_has_it() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(kernels(&names(&["rust", "debug", "c"])).unwrap(), ["c", "rust"]);
        assert_eq!(kernels(&names(&["rust", "noretry", "c"])).unwrap(), ["c", "noretry", "rust"]);
        let e = kernels(&names(&["c", "debug"])).unwrap_err().to_string();
        assert!(e.contains("no rust") && e.contains("config/<base>/rust.config"), "{e}");
    }

    /// A base has a noretry bench kernel exactly when its rust kernel has
    /// the retry of faults that waited under the per-VMA lock (from
    /// rust.config, or from the base's base.config, which every kernel of
    /// the base reads: mainline's, since its series has the retry; 6.12's
    /// backport does not); where it has one, it loads from
    /// config/<base>/bench/, where `lab test` does not see it, and is rust
    /// without the retry, nothing else.
    #[test]
    fn noretry_is_rust_without_the_retry_and_no_variant_of_lab_test() {
        let layout = crate::testing::layout();
        assert_eq!(VARIANTS, ["c", "noretry", "rust"]);
        // What a kernel's own fragments (config/..., in merge order) set,
        // as the build merges them; the tree's tiny.config is left out.
        let values = |base: Base, v: &str| -> BTreeMap<String, crate::kconfig::Value> {
            let k = crate::config::Kernel::of(&layout, &Variant::parse(base, v)).unwrap();
            let ours: Vec<PathBuf> = k.fragments.into_iter().filter(|f| f.starts_with(layout.config())).collect();
            let f = crate::kconfig::Fragment::from_files(&ours).unwrap();
            f.render().lines().filter_map(crate::kconfig::parse_line).collect()
        };
        use crate::kconfig::Value;
        for base in Base::ALL {
            let mut rust = values(base, "rust");
            let retry = rust.remove("MM_FAULT_VMA_RETRY") == Some(Value::Set("y".into()));
            assert!(!config::configs(&layout, base).unwrap().iter().any(|v| v == NORETRY));
            let has_noretry = config::bench_configs(&layout, base).unwrap().iter().any(|v| v == NORETRY);
            assert_eq!(has_noretry, retry, "{base:?}: a noretry bench kernel goes with the retry in rust.config");
            if !has_noretry {
                continue;
            }
            crate::config::Kernel::of(&layout, &Variant::parse(base, "c")).unwrap();
            let mut noretry = values(base, NORETRY);
            assert_eq!(noretry.remove("MM_FAULT_VMA_RETRY"), Some(Value::No));
            assert_eq!(rust, noretry, "bench/noretry.config must differ from rust.config only in the retry");
        }
    }
}
