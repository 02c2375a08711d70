//! `lab bench`: what a page fault costs on the kernels of a base, side by
//! side: `c` (the series with its Rust option off), `rust`
//! (config/<base>/rust.config: the Rust fault path, and on 6.12 the retry
//! of faults that waited under the per-VMA lock) and, where the base has
//! it, `noretry` (config/<base>/bench/noretry.config: rust without that
//! retry, a kernel only the benchmark boots; mainline's series has no
//! retry yet, so there the benchmark boots c and rust only).
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
//!   several rounds: wall-clock time per fault, for the contended cases.
//!
//! Two comparisons come out of it:
//!
//! - c against rust, every kind (issue 6): does the Rust fault path cost
//!   more than C? The Rust/C ratio per configuration, a verdict and an SVG
//!   chart;
//! - where the base has noretry, noretry against rust, the kinds whose
//!   faults wait (uffd, swapin; issue 8): does the retry under the per-VMA
//!   lock keep a fault that waited from queueing behind the writer's
//!   mmap_lock? Per kernel, the
//!   wall-clock throughput with the writer over that without it (1.0: the
//!   writer costs nothing; the goal is [`RETRY_GOAL`] with the retry), and
//!   the uffd instructions per fault of both.
//!
//! Each configuration is summarised by the median over its repeats (and
//! rounds) and the spread, `(max - min) / median`. The report is tables,
//! JSON and an SVG chart (c against rust) under build/bench/<time>/.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

use crate::base::Base;
use crate::config;
use crate::layout::Layout;
use crate::pipeline::{self, Guest};
use crate::plan::Plan;
use crate::qemu::Watchdog;
use crate::results::Status;
use crate::setup::Toolchain;
use crate::stat::Stat;
use crate::thrash;
use crate::variant::Variant;

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

/// How a sample was timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Clock {
    /// `-icount`, one vCPU: nanoseconds are instructions.
    Icount,
    /// Multi-threaded TCG, two vCPUs: host time as the guest sees it.
    Wall,
}

impl Clock {
    fn guest(self) -> Guest {
        match self {
            Clock::Icount => Guest { cpus: 1, icount: true },
            Clock::Wall => Guest::TEST,
        }
    }
}

/// A fault configuration: the table's first three columns.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Key {
    pub kind: String,
    pub threads: u32,
    pub writer: bool,
}

/// One measured repeat, from a `# bench kind=... ns_per_fault=...` line.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    #[serde(flatten)]
    pub key: Key,
    pub rep: u32,
    pub pages: u64,
    pub faults: u64,
    pub majflt: u64,
    pub ns: u64,
    pub ns_per_fault: f64,
    /// The faulting threads' own CPU time in their timed loops, summed.
    pub cpu_ns: u64,
    pub writer_ops: u64,
}

impl Sample {
    /// What the comparison counts per fault: under `-icount`, the faulting
    /// threads' CPU time (the instructions they executed), on the wall
    /// clock the elapsed time.
    pub fn per_fault(&self, clock: Clock) -> f64 {
        match clock {
            Clock::Icount if self.pages > 0 => self.cpu_ns as f64 / self.pages as f64,
            Clock::Icount => 0.0,
            Clock::Wall => self.ns_per_fault,
        }
    }
}

/// Reads the `# bench` lines of a serial log (other lines are ignored).
/// A line that starts like one but misses a field is an error: it means
/// the program and the lab disagree on the format.
pub fn parse_samples(log: &str) -> Result<Vec<Sample>> {
    let mut out = Vec::new();
    for (n, line) in log.lines().enumerate() {
        let Some(rest) = line.trim_end().strip_prefix("# bench kind=") else {
            continue;
        };
        let text = format!("kind={rest}");
        let fields: BTreeMap<&str, &str> = text.split_whitespace().filter_map(|w| w.split_once('=')).collect();
        let get = |k: &str| -> Result<&str> {
            fields.get(k).copied().with_context(|| format!("serial log line {}: no {k}= in {line:?}", n + 1))
        };
        let num = |k: &str| -> Result<u64> {
            get(k)?.parse().with_context(|| format!("serial log line {}: {k} is not a number", n + 1))
        };
        out.push(Sample {
            key: Key { kind: get("kind")?.to_string(), threads: num("threads")? as u32, writer: num("writer")? != 0 },
            rep: num("rep")? as u32,
            pages: num("pages")?,
            faults: num("faults")?,
            majflt: num("majflt")?,
            ns: num("ns")?,
            ns_per_fault: get("ns_per_fault")?
                .parse()
                .with_context(|| format!("serial log line {}: ns_per_fault is not a number", n + 1))?,
            cpu_ns: num("cpu_ns")?,
            writer_ops: num("writer_ops")?,
        });
    }
    Ok(out)
}

/// One line of the report: a configuration under one clock.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub clock: Clock,
    #[serde(flatten)]
    pub key: Key,
    pub c: Stat,
    pub rust: Stat,
    /// Rust's median over C's.
    pub ratio: f64,
}

impl Row {
    /// Whether Rust is slower than C by more than both runs' own spread
    /// (the wall-clock test of "no worse").
    pub fn worse_beyond_spread(&self) -> bool {
        self.rust.median - self.c.median > (self.c.max - self.c.min).max(self.rust.max - self.rust.min)
    }
}

/// Groups samples by clock and configuration and compares the variants.
/// A configuration that one variant lacks (a skipped case) has no row.
pub fn summarise(samples: &[(Clock, String, Sample)]) -> Vec<Row> {
    let mut groups: BTreeMap<(Clock, Key), BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    for (clock, variant, s) in samples {
        groups.entry((*clock, s.key.clone())).or_default().entry(variant).or_default().push(s.per_fault(*clock));
    }
    groups
        .into_iter()
        .filter_map(|((clock, key), by)| {
            let c = Stat::of(by.get("c")?)?;
            let rust = Stat::of(by.get("rust")?)?;
            let ratio = if c.median > 0.0 { rust.median / c.median } else { f64::NAN };
            Some(Row { clock, key, c, rust, ratio })
        })
        .collect()
}

/// The report's tables: instructions per fault, then wall-clock time.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    for (clock, title, unit) in [
        (Clock::Icount, "instructions per fault (-icount, 1 vCPU; spread over repeats)", "instr"),
        (Clock::Wall, "wall-clock ns per fault (MTTCG, 2 vCPUs; spread over repeats and rounds)", "ns"),
    ] {
        let rows: Vec<&Row> = rows.iter().filter(|r| r.clock == clock).collect();
        if rows.is_empty() {
            continue;
        }
        out.push_str(&format!("{title}\n"));
        out.push_str(&format!(
            "{:<7} {:>7} {:>6} {:>12} {:>7} {:>12} {:>7} {:>7}\n",
            "kind",
            "threads",
            "writer",
            format!("C {unit}"),
            "spread",
            format!("Rust {unit}"),
            "spread",
            "ratio"
        ));
        for r in rows {
            out.push_str(&format!(
                "{:<7} {:>7} {:>6} {:>12.1} {:>6.2}% {:>12.1} {:>6.2}% {:>7.4}\n",
                r.key.kind,
                r.key.threads,
                if r.key.writer { "yes" } else { "no" },
                r.c.median,
                100.0 * r.c.spread(),
                r.rust.median,
                100.0 * r.rust.spread(),
                r.ratio
            ));
        }
        out.push('\n');
    }
    out
}

/// One line on the goal: how many uncontended icount configurations are
/// within [`GOAL`], and which wall-clock ones are worse beyond their
/// spread. With the writer on, even icount varies by several percent (how
/// the threads interleave changes from repeat to repeat), so the
/// contended cases are judged by wall clock, as the issue asks.
pub fn verdict(rows: &[Row]) -> String {
    let icount: Vec<&Row> = rows.iter().filter(|r| r.clock == Clock::Icount && !r.key.writer).collect();
    let met = icount.iter().filter(|r| r.ratio <= GOAL).count();
    let worst = icount.iter().map(|r| r.ratio).fold(f64::NAN, f64::max);
    let slower: Vec<String> = rows
        .iter()
        .filter(|r| r.clock == Clock::Wall && r.worse_beyond_spread())
        .map(|r| format!("{} threads={} writer={}", r.key.kind, r.key.threads, u8::from(r.key.writer)))
        .collect();
    format!(
        "goal Rust/C <= {GOAL} instructions per fault without the writer: {met} of {} configurations \
         (worst {worst:.4}); wall-clock slower beyond the spread: {}",
        icount.len(),
        if slower.is_empty() { "none".to_string() } else { slower.join(", ") }
    )
}

/// The chart: Rust/C per configuration, one panel per clock (each with its
/// own scale: wall-clock ratios swing far wider), with 1.0 and the goal.
pub fn write_svg(path: &Path, rows: &[Row], thrash_rows: &[thrash::Row]) -> Result<()> {
    use plotters::prelude::*;

    let keys: Vec<&Key> = {
        let mut k: Vec<&Key> = rows.iter().map(|r| &r.key).collect();
        k.sort();
        k.dedup();
        k
    };
    let nr_panels = if thrash_rows.is_empty() { 2 } else { 3 };
    let width = (120 + 50 * keys.len() as u32).max(120 + 100 * thrash_rows.len() as u32);
    let root = SVGBackend::new(path, (width, 450 * nr_panels as u32)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((nr_panels, 1));
    for (area, clock, title, color) in [
        (&panels[0], Clock::Icount, "Rust/C instructions per fault (-icount, 1 vCPU)", BLUE),
        (&panels[1], Clock::Wall, "Rust/C wall-clock time per fault (MTTCG, 2 vCPUs)", RED),
    ] {
        let rows: Vec<&Row> = rows.iter().filter(|r| r.clock == clock).collect();
        if rows.is_empty() {
            continue;
        }
        let (lo, hi) = rows.iter().fold((1.0, GOAL), |(lo, hi), r| (r.ratio.min(lo), r.ratio.max(hi)));
        let pad = ((hi - lo) * 0.1).max(0.002);
        let (lo, hi) = (lo - pad, hi + pad);
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 16))
            .margin(10)
            .x_label_area_size(110)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..keys.len() as f64, lo..hi)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .y_desc("Rust / C")
            .y_label_formatter(&|y| format!("{y:.3}"))
            .draw()?;
        // One label under each configuration's bar.
        let style = ("sans-serif", 12).into_font().transform(FontTransform::Rotate90);
        for (i, k) in keys.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(i as f64 + 0.4, lo));
            let label = format!("{} t{}{}", k.kind, k.threads, if k.writer { " +writer" } else { "" });
            area.draw(&Text::new(label, (x + 6, y + 6), style.clone()))?;
        }
        chart.draw_series(rows.iter().filter_map(|r| {
            let i = keys.iter().position(|k| *k == &r.key)? as f64;
            Some(Rectangle::new([(i + 0.2, lo), (i + 0.8, r.ratio)], color.mix(0.7).filled()))
        }))?;
        for (y, style, name) in [(1.0, BLACK, "1.0"), (GOAL, GREEN, "goal 1.005")] {
            chart
                .draw_series(LineSeries::new([(0.0, y), (keys.len() as f64, y)], style))?
                .label(name)
                .legend(move |(x, yy)| PathElement::new([(x, yy), (x + 10, yy)], style));
        }
        chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    }
    if let Some(area) = panels.get(2) {
        thrash_panel(area, thrash_rows)?;
    }
    root.present().with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The memcg-thrash panel: each kernel's rounds per second, its median as a
/// bar and the range of its runs as a line.
fn thrash_panel<DB: plotters::prelude::DrawingBackend>(
    area: &plotters::prelude::DrawingArea<DB, plotters::coord::Shift>,
    rows: &[thrash::Row],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    use plotters::prelude::*;

    let hi = thrash_axis_top(rows);
    let mut chart = ChartBuilder::on(area)
        .caption("memcg thrash: rounds/s under the writer and the forker (median, range)", ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..rows.len() as f64, 0f64..hi)?;
    chart.configure_mesh().disable_x_mesh().x_labels(0).y_desc("rounds/s").draw()?;
    for (i, r) in rows.iter().enumerate() {
        let x = i as f64;
        chart.draw_series([Rectangle::new(
            [(x + 0.2, 0.0), (x + 0.8, r.rounds_per_s.median)],
            MAGENTA.mix(0.6).filled(),
        )])?;
        chart.draw_series([PathElement::new([(x + 0.5, r.rounds_per_s.min), (x + 0.5, r.rounds_per_s.max)], BLACK)])?;
        let label = format!("{} {:.2}", r.variant, r.rounds_per_s.median);
        chart.draw_series([Text::new(label, (x + 0.22, r.rounds_per_s.median), ("sans-serif", 14))])?;
    }
    Ok(())
}

/// The top of the thrash panel's axis: the fastest run with room above
/// it, or 1 if no run made a round.
fn thrash_axis_top(rows: &[thrash::Row]) -> f64 {
    let hi = rows.iter().fold(0.0, |hi: f64, r| hi.max(r.rounds_per_s.max)) * 1.15;
    if hi > 0.0 {
        hi
    } else {
        1.0
    }
}

/// A kernel's wall-clock time per fault without and with the writer.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Contention {
    /// Without the writer (writer=0).
    pub uncontended: Stat,
    /// With the writer looping mprotect() (writer=1).
    pub contended: Stat,
    /// Throughput with the writer over throughput without it: the
    /// uncontended median over the contended one (1.0: the writer costs
    /// nothing).
    pub ratio: f64,
}

impl Contention {
    fn of(uncontended: Stat, contended: Stat) -> Contention {
        let ratio = if contended.median > 0.0 { uncontended.median / contended.median } else { f64::NAN };
        Contention { uncontended, contended, ratio }
    }
}

/// One line of the retry comparison: a waiting fault kind and thread count,
/// on the kernel without the retry and on the one with it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryRow {
    pub kind: String,
    pub threads: u32,
    pub noretry: Contention,
    pub rust: Contention,
}

/// One configuration's instructions per fault on noretry and rust.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RetryIcountRow {
    #[serde(flatten)]
    pub key: Key,
    pub noretry: Stat,
    pub rust: Stat,
    /// rust's median over noretry's.
    pub ratio: f64,
}

/// Per configuration and variant, the statistics of the samples taken under
/// `clock` of a kind in `kinds`.
fn stats_by_key<'a>(
    samples: &'a [(Clock, String, Sample)],
    clock: Clock,
    kinds: &[&str],
) -> BTreeMap<Key, BTreeMap<&'a str, Stat>> {
    let mut groups: BTreeMap<Key, BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    for (_, variant, s) in samples.iter().filter(|(c, _, s)| *c == clock && kinds.contains(&s.key.kind.as_str())) {
        groups.entry(s.key.clone()).or_default().entry(variant.as_str()).or_default().push(s.per_fault(clock));
    }
    groups
        .into_iter()
        .map(|(key, by)| (key, by.into_iter().filter_map(|(v, ns)| Some((v, Stat::of(&ns)?))).collect()))
        .collect()
}

/// The retry comparison: wall-clock samples of the [`RETRY_KINDS`], per
/// kind and thread count, contended against uncontended on noretry and on
/// rust. A configuration that either kernel lacks with or without the
/// writer (a skipped case) has no row; icount samples and other kinds are
/// ignored.
pub fn summarise_retry(samples: &[(Clock, String, Sample)]) -> Vec<RetryRow> {
    let stats = stats_by_key(samples, Clock::Wall, &RETRY_KINDS);
    let contention = |key: &Key, variant: &str| -> Option<Contention> {
        let contended = Key { writer: true, ..key.clone() };
        Some(Contention::of(*stats.get(key)?.get(variant)?, *stats.get(&contended)?.get(variant)?))
    };
    stats
        .keys()
        .filter(|k| !k.writer)
        .filter_map(|k| {
            Some(RetryRow {
                kind: k.kind.clone(),
                threads: k.threads,
                noretry: contention(k, NORETRY)?,
                rust: contention(k, "rust")?,
            })
        })
        .collect()
}

/// Instructions per fault (icount) of uffd faults on noretry and rust, with
/// and without the writer: what the retry costs where it is taken most.
pub fn summarise_retry_icount(samples: &[(Clock, String, Sample)]) -> Vec<RetryIcountRow> {
    stats_by_key(samples, Clock::Icount, &["uffd"])
        .into_iter()
        .filter_map(|(key, by)| {
            let (noretry, rust) = (*by.get(NORETRY)?, *by.get("rust")?);
            let ratio = if noretry.median > 0.0 { rust.median / noretry.median } else { f64::NAN };
            Some(RetryIcountRow { key, noretry, rust, ratio })
        })
        .collect()
}

/// The retry comparison's tables: contended against uncontended wall-clock
/// time, then uffd instructions per fault.
pub fn retry_table(rows: &[RetryRow], icount: &[RetryIcountRow]) -> String {
    let mut out = String::new();
    if !rows.is_empty() {
        out.push_str(
            "retry under the per-VMA lock: wall-clock ns per fault, writer off (uncontended) and on (contended)\n\
             (MTTCG, 2 vCPUs; medians over repeats and rounds; ratio = uncontended / contended, 1.0: the writer \
             costs nothing)\n",
        );
        out.push_str(&format!(
            "{:<7} {:>7} {:>19} {:>17} {:>13} {:>16} {:>14} {:>10}\n",
            "kind",
            "threads",
            "noretry uncontended",
            "noretry contended",
            "noretry ratio",
            "rust uncontended",
            "rust contended",
            "rust ratio"
        ));
        for r in rows {
            out.push_str(&format!(
                "{:<7} {:>7} {:>19.1} {:>17.1} {:>13.4} {:>16.1} {:>14.1} {:>10.4}\n",
                r.kind,
                r.threads,
                r.noretry.uncontended.median,
                r.noretry.contended.median,
                r.noretry.ratio,
                r.rust.uncontended.median,
                r.rust.contended.median,
                r.rust.ratio
            ));
        }
        out.push('\n');
    }
    if !icount.is_empty() {
        out.push_str(
            "retry under the per-VMA lock: uffd instructions per fault (-icount, 1 vCPU; spread over repeats; \
             ratio = rust / noretry)\n",
        );
        out.push_str(&format!(
            "{:<7} {:>7} {:>6} {:>13} {:>7} {:>12} {:>7} {:>7}\n",
            "kind", "threads", "writer", "noretry instr", "spread", "rust instr", "spread", "ratio"
        ));
        for r in icount {
            out.push_str(&format!(
                "{:<7} {:>7} {:>6} {:>13.1} {:>6.2}% {:>12.1} {:>6.2}% {:>7.4}\n",
                r.key.kind,
                r.key.threads,
                if r.key.writer { "yes" } else { "no" },
                r.noretry.median,
                100.0 * r.noretry.spread(),
                r.rust.median,
                100.0 * r.rust.spread(),
                r.ratio
            ));
        }
        out.push('\n');
    }
    out
}

/// One line on the retry's goal: how many configurations reach
/// [`RETRY_GOAL`] on rust, the worst ratio there, and the worst without
/// the retry for comparison.
pub fn retry_verdict(rows: &[RetryRow]) -> String {
    if rows.is_empty() {
        return format!(
            "goal contended/uncontended >= {RETRY_GOAL} with the retry: no {} configuration was measured \
             on both {NORETRY} and rust (see the serial logs for skipped cases)",
            RETRY_KINDS.join(" or ")
        );
    }
    let met = rows.iter().filter(|r| r.rust.ratio >= RETRY_GOAL).count();
    let worst = |f: fn(&RetryRow) -> f64| rows.iter().map(f).fold(f64::NAN, f64::min);
    format!(
        "goal contended/uncontended >= {RETRY_GOAL} with the retry: {met} of {} configurations \
         (worst {:.4}); without it ({NORETRY}): worst {:.4}",
        rows.len(),
        worst(|r| r.rust.ratio),
        worst(|r| r.noretry.ratio)
    )
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
    let dir =
        layout.build.join("bench").join(base.name()).join(chrono::Local::now().format("%Y%m%d-%H%M%S").to_string());
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
    use std::path::PathBuf;

    const LINE: &str = "# bench kind=uffd threads=2 writer=1 rep=3 pages=4096 faults=4101 majflt=0 \
                        ns=1234567 ns_per_fault=301.4 cpu_ns=1200000 writer_ops=17";

    #[test]
    fn a_bench_line_is_read_with_every_field() {
        let s = parse_samples(&format!("noise\n{LINE}\r\nok 1 x\n")).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].key, Key { kind: "uffd".into(), threads: 2, writer: true });
        assert_eq!((s[0].rep, s[0].pages, s[0].faults, s[0].ns, s[0].writer_ops), (3, 4096, 4101, 1234567, 17));
        assert_eq!(s[0].ns_per_fault, 301.4);
        assert_eq!(s[0].cpu_ns, 1200000);
        assert_eq!(s[0].per_fault(Clock::Wall), 301.4);
        assert!((s[0].per_fault(Clock::Icount) - 1200000.0 / 4096.0).abs() < 1e-9);
    }

    #[test]
    fn a_bench_line_without_a_field_is_an_error() {
        let e = parse_samples(&LINE.replace(" majflt=0", "")).unwrap_err();
        assert!(format!("{e:#}").contains("no majflt="), "{e:#}");
    }

    #[test]
    fn the_kernels_are_c_and_rust_and_noretry_where_the_base_has_it() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(kernels(&names(&["rust", "debug", "c"])).unwrap(), ["c", "rust"]);
        assert_eq!(kernels(&names(&["rust", "noretry", "c"])).unwrap(), ["c", "noretry", "rust"]);
        let e = kernels(&names(&["c", "debug"])).unwrap_err().to_string();
        assert!(e.contains("no rust") && e.contains("config/<base>/rust.config"), "{e}");
    }

    fn sample(kind: &str, ns: f64) -> Sample {
        Sample {
            key: Key { kind: kind.into(), threads: 1, writer: false },
            rep: 0,
            pages: 1,
            faults: 1,
            majflt: 0,
            ns: ns as u64,
            ns_per_fault: ns,
            cpu_ns: ns as u64,
            writer_ops: 0,
        }
    }

    #[test]
    fn the_ratio_is_rust_over_c_per_clock_and_configuration() {
        let samples = vec![
            (Clock::Icount, "c".to_string(), sample("anon", 1000.0)),
            (Clock::Icount, "rust".to_string(), sample("anon", 1004.0)),
            (Clock::Icount, "c".to_string(), sample("uffd", 2000.0)),
            (Clock::Icount, "rust".to_string(), sample("uffd", 2100.0)),
            // Only one variant: no row.
            (Clock::Icount, "c".to_string(), sample("file", 10.0)),
            // Contended: not judged by icount.
            (
                Clock::Icount,
                "c".to_string(),
                Sample { key: Key { writer: true, ..sample("swapin", 1.0).key }, ..sample("swapin", 1.0) },
            ),
            (
                Clock::Icount,
                "rust".to_string(),
                Sample { key: Key { writer: true, ..sample("swapin", 2.0).key }, ..sample("swapin", 2.0) },
            ),
            (Clock::Wall, "c".to_string(), sample("anon", 10.0)),
            (Clock::Wall, "c".to_string(), sample("anon", 12.0)),
            (Clock::Wall, "rust".to_string(), sample("anon", 30.0)),
        ];
        let rows = summarise(&samples);
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[0].key.kind.as_str(), rows[0].clock), ("anon", Clock::Icount));
        assert!((rows[0].ratio - 1.004).abs() < 1e-9);
        assert_eq!((rows[1].key.kind.as_str(), rows[1].key.writer), ("swapin", true));
        assert!((rows[2].ratio - 1.05).abs() < 1e-9);
        assert!(rows[3].worse_beyond_spread());
        let v = verdict(&rows);
        assert!(v.contains("1 of 2 configurations (worst 1.0500)"), "{v}");
        assert!(v.contains("slower beyond the spread: anon threads=1 writer=0"), "{v}");
        let t = table(&rows);
        assert!(t.contains("anon          1     no       1000.0"), "{t}");
    }

    fn at(clock: Clock, variant: &str, kind: &str, threads: u32, writer: bool, ns: f64) -> (Clock, String, Sample) {
        let s = sample(kind, ns);
        (clock, variant.to_string(), Sample { key: Key { threads, writer, ..s.key.clone() }, ..s })
    }

    /// Made-up samples for the retry comparison, with everything it must
    /// leave out.
    fn retry_samples() -> Vec<(Clock, String, Sample)> {
        use Clock::{Icount, Wall};
        vec![
            // uffd, 1 thread: noretry 100 -> 200 ns (0.5), rust 80 -> 100 (0.8).
            at(Wall, "noretry", "uffd", 1, false, 90.0),
            at(Wall, "noretry", "uffd", 1, false, 100.0),
            at(Wall, "noretry", "uffd", 1, false, 110.0),
            at(Wall, "noretry", "uffd", 1, true, 200.0),
            at(Wall, "rust", "uffd", 1, false, 80.0),
            at(Wall, "rust", "uffd", 1, true, 90.0),
            at(Wall, "rust", "uffd", 1, true, 110.0),
            // swapin, 2 threads: noretry 300 -> 400 (0.75), rust 300 -> 310.
            at(Wall, "noretry", "swapin", 2, false, 300.0),
            at(Wall, "noretry", "swapin", 2, true, 400.0),
            at(Wall, "rust", "swapin", 2, false, 300.0),
            at(Wall, "rust", "swapin", 2, true, 310.0),
            // icount: not this comparison's clock (it would move every median).
            at(Icount, "noretry", "uffd", 1, true, 1e6),
            at(Icount, "rust", "uffd", 1, false, 1e6),
            at(Icount, "rust", "uffd", 1, false, 1e6),
            at(Icount, "noretry", "uffd", 1, false, 5000.0),
            // anon does not wait: no row, though both kernels have both.
            at(Wall, "noretry", "anon", 1, false, 10.0),
            at(Wall, "noretry", "anon", 1, true, 20.0),
            at(Wall, "rust", "anon", 1, false, 10.0),
            at(Wall, "rust", "anon", 1, true, 20.0),
            // uffd, 2 threads: rust lacks it (a skipped case): no row.
            at(Wall, "noretry", "uffd", 2, false, 100.0),
            at(Wall, "noretry", "uffd", 2, true, 100.0),
            // swapin, 1 thread: noretry has no contended sample: no row.
            at(Wall, "noretry", "swapin", 1, false, 100.0),
            at(Wall, "rust", "swapin", 1, false, 100.0),
            at(Wall, "rust", "swapin", 1, true, 100.0),
            // c is not part of it.
            at(Wall, "c", "uffd", 1, false, 1.0),
            at(Wall, "c", "uffd", 1, true, 1e6),
        ]
    }

    #[test]
    fn the_retry_ratio_is_uncontended_over_contended_per_kernel() {
        let rows = summarise_retry(&retry_samples());
        let keys: Vec<(&str, u32)> = rows.iter().map(|r| (r.kind.as_str(), r.threads)).collect();
        assert_eq!(keys, [("swapin", 2), ("uffd", 1)]);
        let uffd = &rows[1];
        assert_eq!((uffd.noretry.uncontended.median, uffd.noretry.uncontended.n), (100.0, 3));
        assert_eq!((uffd.noretry.contended.median, uffd.noretry.contended.n), (200.0, 1));
        assert!((uffd.noretry.ratio - 0.5).abs() < 1e-9, "{}", uffd.noretry.ratio);
        assert_eq!((uffd.rust.uncontended.median, uffd.rust.contended.median), (80.0, 100.0));
        assert!((uffd.rust.ratio - 0.8).abs() < 1e-9, "{}", uffd.rust.ratio);
        let swapin = &rows[0];
        assert!((swapin.noretry.ratio - 0.75).abs() < 1e-9, "{}", swapin.noretry.ratio);
        assert!((swapin.rust.ratio - 300.0 / 310.0).abs() < 1e-9, "{}", swapin.rust.ratio);
        let v = retry_verdict(&rows);
        assert_eq!(
            v,
            "goal contended/uncontended >= 0.9 with the retry: 1 of 2 configurations (worst 0.8000); \
             without it (noretry): worst 0.5000"
        );
        let t = retry_table(&rows, &[]);
        assert!(t.contains("\nuffd          1               100.0             200.0        0.5000"), "{t}");
        assert!(t.contains("\nswapin        2               300.0             400.0        0.7500"), "{t}");
        assert!(!t.contains("instructions"), "{t}");
        assert!(retry_verdict(&[]).contains("no swapin or uffd configuration was measured"));
        assert!(retry_table(&[], &[]).is_empty());
    }

    #[test]
    fn noretry_samples_leave_the_rust_over_c_rows_alone() {
        let mut samples = vec![
            at(Clock::Icount, "c", "uffd", 1, false, 2000.0),
            at(Clock::Icount, "rust", "uffd", 1, false, 2100.0),
            at(Clock::Wall, "c", "swapin", 2, true, 10.0),
            at(Clock::Wall, "rust", "swapin", 2, true, 12.0),
        ];
        let before = summarise(&samples);
        samples.extend(retry_samples().into_iter().filter(|(_, v, _)| v == NORETRY));
        assert_eq!(summarise(&samples), before);
        assert_eq!(before.len(), 2);
    }

    #[test]
    fn the_uffd_instructions_compare_noretry_and_rust_per_writer_setting() {
        let rows = summarise_retry_icount(&retry_samples());
        // writer=1 has no rust sample: only writer=0.
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].key.kind.as_str(), rows[0].key.writer), ("uffd", false));
        assert_eq!((rows[0].noretry.median, rows[0].rust.median), (5000.0, 1e6));
        assert!((rows[0].ratio - 200.0).abs() < 1e-9, "{}", rows[0].ratio);
        let t = retry_table(&[], &rows);
        assert!(t.contains("uffd          1     no        5000.0   0.00%    1000000.0   0.00% 200.0000"), "{t}");
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
        let layout = Layout::new(Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap());
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

    #[test]
    fn the_chart_is_an_svg_with_every_configuration() {
        let samples = vec![
            (Clock::Icount, "c".to_string(), sample("anon", 1000.0)),
            (Clock::Icount, "rust".to_string(), sample("anon", 1004.0)),
            (Clock::Wall, "c".to_string(), sample("uffd", 10.0)),
            (Clock::Wall, "rust".to_string(), sample("uffd", 9.0)),
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.svg");
        write_svg(&path, &summarise(&samples), &[]).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..80.min(svg.len())]);
        assert!(svg.contains("anon t1") && svg.contains("uffd t1"), "labels missing");
        assert!(!svg.contains("memcg thrash"), "a thrash panel without a thrash run");

        let latency = thrash::Latency { p50: 1.0, p90: 2.0, p99: 3.0, max: 4.0, count: 5 };
        let run = |rounds_per_s| thrash::Sample {
            rounds_per_s,
            access: latency,
            fork: latency,
            pswpin: 10,
            retry: 2,
            retry_vma: None,
            retry_vma_success: None,
        };
        let thrash_rows = thrash::summarise(&[("noretry".to_string(), run(4.0)), ("rust".to_string(), run(6.0))]);
        write_svg(&path, &summarise(&samples), &thrash_rows).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.contains("memcg thrash") && svg.contains("noretry 4.00") && svg.contains("rust 6.00"), "{svg}");
        // A third of a round a second (the guests' rate) fills the panel.
        let slow = thrash::summarise(&[("c".to_string(), run(0.3)), ("rust".to_string(), run(0.4))]);
        assert!((thrash_axis_top(&slow) - 0.46).abs() < 1e-9, "{}", thrash_axis_top(&slow));
        assert_eq!(thrash_axis_top(&thrash::summarise(&[("c".to_string(), run(0.0))])), 1.0);
    }
}
