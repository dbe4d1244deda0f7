//! Confusion matrices.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::frame::{render, DrawResult};
use crate::error::Result;

/// Confusion matrix heat map: rows are true classes, columns predictions; cells are shaded by
/// the row-normalised rate and show counts.
pub fn confusion_matrix(
    path: &Path,
    title: &str,
    names: &[String],
    counts: &[Vec<usize>],
) -> Result<()> {
    render!(path, (900, 860), draw_confusion(title, names, counts))
}

fn draw_confusion<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    names: &[String],
    counts: &[Vec<usize>],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let k = names.len();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((0..k).into_segmented(), (0..k).into_segmented())
        .map_err(|e| e.to_string())?;
    let seg = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => *i,
        SegmentValue::Last => k,
    };
    let label = |v: &SegmentValue<usize>| names.get(seg(v)).cloned().unwrap_or_default();
    let ylabel = |v: &SegmentValue<usize>| {
        names
            .get(k.saturating_sub(1 + seg(v)))
            .cloned()
            .unwrap_or_default()
    };
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("predicted")
        .y_desc("true")
        .x_labels(k)
        .y_labels(k)
        .x_label_formatter(&label)
        .y_label_formatter(&ylabel)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    for (r, row) in counts.iter().enumerate() {
        let total: usize = row.iter().sum();
        for (c, &v) in row.iter().enumerate() {
            let rate = if total > 0 {
                v as f64 / total as f64
            } else {
                0.0
            };
            let shade = (255.0 * (1.0 - rate.sqrt())) as u8;
            let y = k - 1 - r;
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [
                        (SegmentValue::Exact(c), SegmentValue::Exact(y)),
                        (SegmentValue::Exact(c + 1), SegmentValue::Exact(y + 1)),
                    ],
                    RGBColor(shade, shade, 255).filled(),
                )))
                .map_err(|e| e.to_string())?;
            if v > 0 {
                let color = if rate > 0.5 { WHITE } else { BLACK };
                chart
                    .draw_series(std::iter::once(Text::new(
                        v.to_string(),
                        (SegmentValue::CenterOf(c), SegmentValue::CenterOf(y)),
                        ("sans-serif", 13)
                            .into_font()
                            .color(&color)
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    root.present().map_err(|e| e.to_string())
}
