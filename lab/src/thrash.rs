//! The memcg-thrash benchmark: what guest/programs/memcg_thrash.c prints
//! (threads cycling a working set above their memory cgroup's memory.max,
//! with the swap on a disk, beside a thread taking mmap_lock for writing
//! and one forking), read from a guest's serial log, and its comparison
//! between kernels: rounds per second, the access and fork latencies, how
//! many faults were retried per page read back from swap and, on a kernel
//! with the retry under the per-VMA lock, how many of those retries it took
//! and how many of them missed.

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::LazyLock;

use crate::stat::Stat;

/// Latency percentiles, in microseconds, as memcg_thrash prints them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
    pub count: u64,
}

/// One run of memcg_thrash.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub rounds_per_s: f64,
    pub access: Latency,
    pub fork: Latency,
    /// Pages read back from swap (pswpin) and faults retried after the
    /// per-VMA lock was dropped (vma_lock_retry), system-wide.
    pub pswpin: u64,
    pub retry: u64,
    /// None on a kernel without the retry under the per-VMA lock.
    pub retry_vma: Option<RetryVma>,
}

/// The retry under the per-VMA lock, system-wide: a kernel counts both or
/// neither.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RetryVma {
    /// Faults retried under the per-VMA lock after their handler dropped
    /// it to wait (vma_lock_retry_vma).
    pub taken: u64,
    /// Of those, the ones that completed there (vma_lock_retry_success).
    pub completed: u64,
}

impl Sample {
    /// Retries per page read back from swap.
    pub fn retry_per_swapin(&self) -> f64 {
        if self.pswpin == 0 {
            0.0
        } else {
            self.retry as f64 / self.pswpin as f64
        }
    }

    /// The share of retries (vma_lock_retry) taken under the per-VMA lock.
    pub fn retry_vma_share(&self) -> Option<f64> {
        let vma = self.retry_vma?;
        (self.retry > 0).then(|| vma.taken as f64 / self.retry as f64)
    }

    /// The share of retries under the per-VMA lock that did not complete
    /// there and went on under mmap_lock: the folio was gone again by the
    /// time the retry looked (reclaimed after its read, the objection to
    /// the retry under a tight memory cgroup), or the VMA was write-locked
    /// (a fork).
    pub fn retry_vma_missed(&self) -> Option<f64> {
        let RetryVma { taken, completed } = self.retry_vma?;
        (taken > 0).then(|| taken.saturating_sub(completed) as f64 / taken as f64)
    }
}

static ROUNDS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^# rounds [0-9.]+ in [0-9.]+ s: ([0-9.]+) rounds/s").expect("valid regex"));
static LATENCY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?m)^# (\w+) latency us: p50 ([0-9.]+) p90 ([0-9.]+) p99 ([0-9.]+) max ([0-9.]+) \((\d+) ")
        .expect("valid regex")
});
static VMSTAT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^# vmstat:(.*)\(system-wide\)").expect("valid regex"));

/// The memcg_thrash run of a serial log, if it has one; an error if it has
/// a part of one only (the program died, or its output changed).
pub fn parse(log: &str) -> Result<Option<Sample>> {
    let Some(r) = ROUNDS.captures(log) else {
        return Ok(None);
    };
    let lat = |what: &str| -> Result<Latency> {
        let c = LATENCY
            .captures_iter(log)
            .find(|c| &c[1] == what)
            .with_context(|| format!("memcg_thrash printed no {what} latency line"))?;
        let f = |i: usize| c[i].parse::<f64>().with_context(|| format!("{what} latency: {} is not a number", &c[i]));
        let l = Latency { p50: f(2)?, p90: f(3)?, p99: f(4)?, max: f(5)?, count: c[6].parse()? };
        if !(l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.max) {
            bail!("memcg_thrash's {what} latency percentiles are out of order: {}", &c[0]);
        }
        Ok(l)
    };
    let counters = VMSTAT.captures(log).context("memcg_thrash printed no vmstat line")?;
    let mut by_name = BTreeMap::new();
    for field in counters[1].split_whitespace().collect::<Vec<_>>().chunks(2) {
        if let [name, value] = field {
            let n: u64 = value.trim_start_matches('+').parse().with_context(|| format!("vmstat {name}: {value}"))?;
            by_name.insert(*name, n);
        }
    }
    let counter =
        |name: &str| by_name.get(name).copied().with_context(|| format!("memcg_thrash's vmstat has no {name}"));
    let retry_vma = match (by_name.get("vma_lock_retry_vma"), by_name.get("vma_lock_retry_success")) {
        (Some(&taken), Some(&completed)) => Some(RetryVma { taken, completed }),
        (None, None) => None,
        _ => bail!("memcg_thrash's vmstat has one of vma_lock_retry_vma and vma_lock_retry_success only"),
    };
    Ok(Some(Sample {
        rounds_per_s: r[1].parse()?,
        access: lat("access")?,
        fork: lat("fork")?,
        pswpin: counter("pswpin")?,
        retry: counter("vma_lock_retry")?,
        retry_vma,
    }))
}

/// One kernel's runs, summarised.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub variant: String,
    pub rounds_per_s: Stat,
    pub access_p99_us: Stat,
    pub fork_p50_us: Stat,
    pub fork_p99_us: Stat,
    pub retry_per_swapin: Stat,
    /// See Sample::retry_vma_share() and Sample::retry_vma_missed(); None
    /// where no run of the kernel had a retry under the per-VMA lock.
    pub retry_vma_share: Option<Stat>,
    pub retry_vma_missed: Option<Stat>,
}

/// The retry's goal under the writer: its rounds per second at least this
/// many times those of the same series without it.
pub const GOAL: f64 = 1.3;

/// One row per kernel, in the order the kernels first appear.
pub fn summarise(samples: &[(String, Sample)]) -> Vec<Row> {
    let mut order: Vec<&str> = Vec::new();
    for (v, _) in samples {
        if !order.contains(&v.as_str()) {
            order.push(v);
        }
    }
    order
        .into_iter()
        .filter_map(|v| {
            let runs = || samples.iter().filter(|(k, _)| k == v).map(|(_, s)| s);
            let of = |f: &dyn Fn(&Sample) -> f64| Stat::of(&runs().map(f).collect::<Vec<_>>());
            let of_some = |f: &dyn Fn(&Sample) -> Option<f64>| Stat::of(&runs().filter_map(f).collect::<Vec<_>>());
            Some(Row {
                variant: v.to_string(),
                rounds_per_s: of(&|s| s.rounds_per_s)?,
                access_p99_us: of(&|s| s.access.p99)?,
                fork_p50_us: of(&|s| s.fork.p50)?,
                fork_p99_us: of(&|s| s.fork.p99)?,
                retry_per_swapin: of(&|s| s.retry_per_swapin())?,
                retry_vma_share: of_some(&|s| s.retry_vma_share()),
                retry_vma_missed: of_some(&|s| s.retry_vma_missed()),
            })
        })
        .collect()
}

/// The thrash table: medians with the spread over the runs.
pub fn table(rows: &[Row]) -> Result<String> {
    if rows.is_empty() {
        bail!("no memcg_thrash run to report");
    }
    let mut out = String::from(
        "memcg thrash (medians, spread (max-min)/median over the runs; retries: per page read from swap, \
         the share taken under the per-VMA lock, and the share of those that missed and took mmap_lock)\n\
         kernel     rounds/s          access p99 us     fork p50 us       fork p99 us       retry/swap-in  \
         on VMA lock  missed\n",
    );
    let cell = |s: &Stat| format!("{:>9.2} ±{:>4.0}%", s.median, s.spread() * 100.0);
    let share = |s: &Option<Stat>| s.map_or_else(|| "-".to_string(), |s| format!("{:.1}%", s.median * 100.0));
    for r in rows {
        writeln!(
            out,
            "{:<10} {}  {}  {}  {}  {:>13.3}  {:>11}  {:>6}",
            r.variant,
            cell(&r.rounds_per_s),
            cell(&r.access_p99_us),
            cell(&r.fork_p50_us),
            cell(&r.fork_p99_us),
            r.retry_per_swapin.median,
            share(&r.retry_vma_share),
            share(&r.retry_vma_missed),
        )?;
    }
    Ok(out)
}

/// The retry's goals, `with` (the series with the retry) against `without`
/// (the series without it): rounds per second at least GOAL times, and the
/// fork latency's p99 no worse beyond the spread (with's median not above
/// the slowest run without). None if either kernel has no row.
pub fn verdict(rows: &[Row], without: &str, with: &str) -> Option<String> {
    let find = |v: &str| rows.iter().find(|r| r.variant == v);
    let (a, b) = (find(without)?, find(with)?);
    let ratio = b.rounds_per_s.median / a.rounds_per_s.median;
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let rounds = format!(
        "memcg thrash, {with} over {without}: rounds/s x{ratio:.2} (goal x{GOAL}: {}{})",
        met(ratio >= GOAL),
        if ratio >= GOAL { String::new() } else { format!(", short by {:.0}%", (1.0 - ratio / GOAL) * 100.0) }
    );
    let fork_ok = b.fork_p99_us.median <= a.fork_p99_us.max;
    let fork = format!(
        "fork p99 {:.0} us against {:.0} us (slowest run {:.0} us): {}",
        b.fork_p99_us.median,
        a.fork_p99_us.median,
        a.fork_p99_us.max,
        met(fork_ok)
    );
    let missed = b.retry_vma_missed.map_or_else(
        || format!("{with} took no retry under the per-VMA lock"),
        |m| format!("{:.1}% of its retries under the per-VMA lock missed", m.median * 100.0),
    );
    Some(format!("{rounds}; {fork}; {missed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = "# seed 1: 2 threads cycle 96 MiB under memory.max 32 MiB for 10 s\n\
                       # swap on /dev/vda\n\
                       # rounds 42.00 in 10.0 s: 4.200 rounds/s\n\
                       # access latency us: p50 0.2 p90 0.5 p99 2500.0 max 91000.0 (1032192 accesses)\n\
                       # fork latency us: p50 800.0 p90 1200.0 p99 5000.0 max 7000.0 (311 forks)\n\
                       # mmap_lock writer: 8000 map/unmap pairs\n\
                       # vmstat: pswpin +40000 pswpout +45000 vma_lock_success +900000 vma_lock_abort +3 \
                       vma_lock_retry +8000 vma_lock_miss +0 (system-wide)\n\
                       ok 1 thrash\n";

    #[test]
    fn a_run_is_read_with_its_rates_latencies_and_counters() {
        let s = parse(RUN).unwrap().unwrap();
        assert_eq!(s.rounds_per_s, 4.2);
        assert_eq!(s.access, Latency { p50: 0.2, p90: 0.5, p99: 2500.0, max: 91000.0, count: 1032192 });
        assert_eq!((s.fork.p50, s.fork.p99, s.fork.count), (800.0, 5000.0, 311));
        assert_eq!((s.pswpin, s.retry), (40000, 8000));
        assert_eq!(s.retry_per_swapin(), 0.2);
        assert_eq!((s.retry_vma, s.retry_vma_share(), s.retry_vma_missed()), (None, None, None));
    }

    #[test]
    fn a_kernel_with_the_retry_under_the_vma_lock_says_how_many_missed() {
        let s = parse(
            &RUN.replace(" (system-wide)", " vma_lock_retry_vma +6000 vma_lock_retry_success +4500 (system-wide)"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.retry_vma, Some(RetryVma { taken: 6000, completed: 4500 }));
        assert_eq!(s.retry_vma_share(), Some(0.75));
        assert_eq!(s.retry_vma_missed(), Some(0.25));
        let e = parse(&RUN.replace(" (system-wide)", " vma_lock_retry_vma +6000 (system-wide)")).unwrap_err();
        assert!(format!("{e:#}").contains("one of vma_lock_retry_vma"), "{e:#}");
    }

    #[test]
    fn no_run_is_none_and_half_a_run_is_an_error() {
        assert_eq!(parse("ok 1 fault-bench\n").unwrap(), None);
        let e = parse(&RUN.replace("# fork latency", "# fork latenc")).unwrap_err();
        assert!(format!("{e:#}").contains("no fork latency"), "{e:#}");
        let e = parse(&RUN.replace("p99 5000.0 max 7000.0", "p99 8388.6 max 7000.0")).unwrap_err();
        assert!(format!("{e:#}").contains("fork latency percentiles are out of order"), "{e:#}");
        let e = parse(&RUN.replace(" vma_lock_retry +8000", "")).unwrap_err();
        assert!(format!("{e:#}").contains("no vma_lock_retry"), "{e:#}");
    }

    #[test]
    fn each_kernel_gets_a_row_of_medians() {
        let s = parse(RUN).unwrap().unwrap();
        let faster = Sample { rounds_per_s: 6.0, ..s.clone() };
        let samples = vec![
            ("c".to_string(), s.clone()),
            ("rust".to_string(), faster.clone()),
            ("c".to_string(), Sample { rounds_per_s: 5.0, ..s.clone() }),
            ("rust".to_string(), faster),
        ];
        let rows = summarise(&samples);
        assert_eq!(rows.iter().map(|r| r.variant.as_str()).collect::<Vec<_>>(), ["c", "rust"]);
        assert_eq!((rows[0].rounds_per_s.median, rows[0].rounds_per_s.n), (4.6, 2));
        assert_eq!(rows[1].rounds_per_s.median, 6.0);
        let t = table(&rows).unwrap();
        assert!(t.lines().nth(2).unwrap().starts_with("c ") && t.contains("4.60"), "{t}");
        assert!(t.lines().nth(2).unwrap().ends_with("-       -"), "{t}");
        assert!(table(&[]).is_err());
    }

    #[test]
    fn the_verdict_holds_the_retry_to_its_goals() {
        let s = parse(RUN).unwrap().unwrap();
        let retried = Sample { retry_vma: Some(RetryVma { taken: 100, completed: 90 }), ..s.clone() };
        let rows = |with_rounds: f64, with_fork_p99: f64| {
            let with =
                Sample { rounds_per_s: with_rounds, fork: Latency { p99: with_fork_p99, ..s.fork }, ..retried.clone() };
            summarise(&[
                ("noretry".to_string(), s.clone()),
                ("noretry".to_string(), Sample { fork: Latency { p99: 6000.0, ..s.fork }, ..s.clone() }),
                ("rust".to_string(), with),
            ])
        };
        let v = verdict(&rows(5.46, 5900.0), "noretry", "rust").unwrap();
        assert!(v.contains("x1.30 (goal x1.3: met)") && v.contains("5500 us (slowest run 6000 us): met"), "{v}");
        assert!(v.contains("10.0% of its retries under the per-VMA lock missed"), "{v}");
        let v = verdict(&rows(4.62, 6100.0), "noretry", "rust").unwrap();
        assert!(v.contains("x1.10 (goal x1.3: MISSED, short by 15%)") && v.ends_with("missed"), "{v}");
        assert!(v.contains("6100 us against 5500 us (slowest run 6000 us): MISSED"), "{v}");
        assert!(verdict(&rows(5.0, 1.0), "noretry", "debug").is_none());
    }
}
