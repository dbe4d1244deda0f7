//! Histograms of several series, with an optional marker line.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{class_color, draw_legend, render, DrawResult, Series};
use crate::error::Result;

/// Overlaid histograms of several groups of values (e.g. same-person and different-person
/// distances), normalised to fractions, with an optional vertical marker (a threshold).
pub fn histogram(
    path: &Path,
    title: &str,
    x_label: &str,
    groups: &[Series],
    bins: usize,
    marker: Option<(f64, &str)>,
) -> Result<()> {
    render!(
        path,
        (900, 600),
        draw_histogram(title, x_label, groups, bins.max(1), marker)
    )
}

fn draw_histogram<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    groups: &[Series],
    bins: usize,
    marker: Option<(f64, &str)>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    // Series.points hold (value, _); only x is used.
    let vals = groups
        .iter()
        .flat_map(|g| g.points.iter().map(|p| p.0))
        .filter(|v| v.is_finite());
    let (mut lo, mut hi) = (f64::MAX, f64::MIN);
    for v in vals {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo > hi {
        lo = 0.0;
        hi = 1.0;
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let width = (hi - lo) / bins as f64;
    let counts: Vec<Vec<f64>> = groups
        .iter()
        .map(|g| {
            let mut c = vec![0f64; bins];
            for p in g.points.iter().filter(|p| p.0.is_finite()) {
                let i = (((p.0 - lo) / width) as usize).min(bins - 1);
                c[i] += 1.0;
            }
            let n = g.points.len().max(1) as f64;
            c.iter().map(|x| x / n).collect()
        })
        .collect();
    let ymax = counts.iter().flatten().cloned().fold(0.0, f64::max) * 1.1 + 1e-9;
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, 0.0..ymax)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc("fraction")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (gi, (g, c)) in groups.iter().zip(&counts).enumerate() {
        let color = class_color(gi);
        chart
            .draw_series(c.iter().enumerate().map(|(i, &y)| {
                let x0 = lo + i as f64 * width;
                Rectangle::new([(x0, 0.0), (x0 + width, y)], color.mix(0.45).filled())
            }))
            .map_err(|e| e.to_string())?
            .label(g.label.clone())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.mix(0.6).filled())
            });
    }
    if let Some((t, label)) = marker {
        let label = label.to_string();
        chart
            .draw_series(LineSeries::new(
                vec![(t, 0.0), (t, ymax)],
                BLACK.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(label)
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    }
    draw_legend(&mut chart)?;
    root.present().map_err(|e| e.to_string())
}
