//! The memcg-thrash benchmark: what guest/programs/memcg_thrash.c prints
//! (threads cycling a working set above their memory cgroup's memory.max,
//! with the swap on a disk, beside a thread taking mmap_lock for writing
//! and one forking), read from a guest's serial log, and its comparison
//! between kernels: rounds per second, the access and fork latencies, and
//! how many faults were retried per page read back from swap.

use anyhow::{bail, Context, Result};
use regex::Regex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

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
}

/// The memcg_thrash run of a serial log, if it has one; an error if it has
/// a part of one only (the program died, or its output changed).
pub fn parse(log: &str) -> Result<Option<Sample>> {
    let rounds = Regex::new(r"(?m)^# rounds [0-9.]+ in [0-9.]+ s: ([0-9.]+) rounds/s").unwrap();
    let latency = |what: &str| {
        Regex::new(&format!(
            r"(?m)^# {what} latency us: p50 ([0-9.]+) p90 ([0-9.]+) p99 ([0-9.]+) max ([0-9.]+) \((\d+) "
        ))
        .unwrap()
    };
    let vmstat = Regex::new(r"(?m)^# vmstat:(.*)\(system-wide\)").unwrap();
    let Some(r) = rounds.captures(log) else {
        return Ok(None);
    };
    let lat = |what: &str| -> Result<Latency> {
        let c = latency(what).captures(log).with_context(|| format!("memcg_thrash printed no {what} latency line"))?;
        let f = |i: usize| c[i].parse::<f64>().with_context(|| format!("{what} latency: {} is not a number", &c[i]));
        Ok(Latency { p50: f(1)?, p90: f(2)?, p99: f(3)?, max: f(4)?, count: c[5].parse()? })
    };
    let counters = vmstat.captures(log).context("memcg_thrash printed no vmstat line")?;
    let mut by_name = BTreeMap::new();
    for field in counters[1].split_whitespace().collect::<Vec<_>>().chunks(2) {
        if let [name, value] = field {
            let n: u64 = value.trim_start_matches('+').parse().with_context(|| format!("vmstat {name}: {value}"))?;
            by_name.insert(*name, n);
        }
    }
    let counter =
        |name: &str| by_name.get(name).copied().with_context(|| format!("memcg_thrash's vmstat has no {name}"));
    Ok(Some(Sample {
        rounds_per_s: r[1].parse()?,
        access: lat("access")?,
        fork: lat("fork")?,
        pswpin: counter("pswpin")?,
        retry: counter("vma_lock_retry")?,
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
}

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
            let of = |f: &dyn Fn(&Sample) -> f64| {
                Stat::of(&samples.iter().filter(|(k, _)| k == v).map(|(_, s)| f(s)).collect::<Vec<_>>())
            };
            Some(Row {
                variant: v.to_string(),
                rounds_per_s: of(&|s| s.rounds_per_s)?,
                access_p99_us: of(&|s| s.access.p99)?,
                fork_p50_us: of(&|s| s.fork.p50)?,
                fork_p99_us: of(&|s| s.fork.p99)?,
                retry_per_swapin: of(&|s| s.retry_per_swapin())?,
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
        "memcg thrash (medians, spread (max-min)/median over the runs)\n\
         kernel     rounds/s          access p99 us     fork p50 us       fork p99 us       retry/swap-in\n",
    );
    let cell = |s: &Stat| format!("{:>9.2} ±{:>4.0}%", s.median, s.spread() * 100.0);
    for r in rows {
        writeln!(
            out,
            "{:<10} {}  {}  {}  {}  {:>8.3}",
            r.variant,
            cell(&r.rounds_per_s),
            cell(&r.access_p99_us),
            cell(&r.fork_p50_us),
            cell(&r.fork_p99_us),
            r.retry_per_swapin.median
        )?;
    }
    Ok(out)
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
    }

    #[test]
    fn no_run_is_none_and_half_a_run_is_an_error() {
        assert_eq!(parse("ok 1 fault-bench\n").unwrap(), None);
        let e = parse(&RUN.replace("# fork latency", "# fork latenc")).unwrap_err();
        assert!(format!("{e:#}").contains("no fork latency"), "{e:#}");
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
        assert!(table(&[]).is_err());
    }
}
