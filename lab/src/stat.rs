//! Median and spread of repeated measurements, as the benchmarks report
//! them.

use serde::Serialize;

/// Median and spread of a set of values.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stat {
    /// None for an empty set.
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 };
        Some(Stat { median, min: v[0], max: v[v.len() - 1], n: v.len() })
    }

    /// `(max - min) / median`: how far apart the repeats were.
    pub fn spread(&self) -> f64 {
        if self.median > 0.0 {
            (self.max - self.min) / self.median
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_spread() {
        let s = Stat::of(&[3.0, 1.0, 2.0, 10.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.5, 1.0, 10.0, 4));
        assert!((s.spread() - 3.6).abs() < 1e-9);
        assert_eq!(Stat::of(&[5.0, 1.0, 3.0]).unwrap().median, 3.0);
        assert!(Stat::of(&[]).is_none());
    }
}
