//! The benchmark's samples: one per measured repeat, read from the
//! `# bench` lines guest/programs/fault_bench.c prints, and their
//! statistics per clock, configuration and kernel.
//!
//! A `# bench` line is one measured repeat of one case (the warm-up repeat
//! is not printed), `NAME=VALUE` fields in this order, separated by single
//! spaces:
//!
//! ```text
//! # bench kind=K threads=T writer=W rep=I pages=P faults=F majflt=M ns=N ns_per_fault=X cpu_ns=C writer_ops=O
//! ```
//!
//! K is anon, swapin, uffd or file; T the faulting threads (1, 2); W
//! whether a thread mprotect()s another mapping meanwhile (0, 1); I the
//! repeat (0 to R-1); P the pages faulted; F the faults counted for the
//! faulting threads (RUSAGE_THREAD minflt + majflt), M its major part; N
//! the CLOCK_MONOTONIC nanoseconds from the start barrier to the last
//! faulting thread done, X = N/P with one decimal; C the faulting threads'
//! CLOCK_THREAD_CPUTIME_ID nanoseconds summed; O the writer's mprotect()
//! calls. Before the harness's TAP, one `# bench config ...` line gives the
//! run's options.

use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::BTreeMap;

use crate::pipeline::Guest;
use crate::stat::Stat;

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
    pub(super) fn guest(self) -> Guest {
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

/// The samples' statistics per clock, configuration and kernel, of those
/// `keep` picks: the one grouping every comparison reads. A kernel with
/// no sample of a configuration has no entry under it.
pub fn stats(
    samples: &[(Clock, String, Sample)],
    keep: impl Fn(Clock, &Key) -> bool,
) -> BTreeMap<(Clock, Key), BTreeMap<&str, Stat>> {
    let mut groups: BTreeMap<(Clock, Key), BTreeMap<&str, Vec<f64>>> = BTreeMap::new();
    for (clock, variant, s) in samples.iter().filter(|(c, _, s)| keep(*c, &s.key)) {
        groups
            .entry((*clock, s.key.clone()))
            .or_default()
            .entry(variant.as_str())
            .or_default()
            .push(s.per_fault(*clock));
    }
    groups
        .into_iter()
        .map(|(key, by)| (key, by.into_iter().filter_map(|(v, x)| Some((v, Stat::of(&x)?))).collect()))
        .collect()
}

/// Made-up samples for the comparisons' tests.
#[cfg(test)]
pub(super) mod fixtures {
    use super::*;

    pub fn sample(kind: &str, ns: f64) -> Sample {
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

    pub fn at(clock: Clock, variant: &str, kind: &str, threads: u32, writer: bool, ns: f64) -> (Clock, String, Sample) {
        let s = sample(kind, ns);
        (clock, variant.to_string(), Sample { key: Key { threads, writer, ..s.key.clone() }, ..s })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
