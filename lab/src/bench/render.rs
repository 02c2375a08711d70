//! The benchmark's report: its tables and its SVG chart.

use anyhow::{Context, Result};
use std::path::Path;

use super::compare::{RetryIcountRow, RetryRow, Row};
use super::sample::{Clock, Key};
use super::GOAL;
use crate::thrash;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::compare::summarise;
    use crate::bench::sample::fixtures::sample;

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
