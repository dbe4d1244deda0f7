//! The embedding scatter, coloured by class.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{bounds, class_color, render, DrawResult};
use crate::error::Result;

/// Scatter of 2-D points coloured by class, with a legend.
pub fn scatter(
    path: &Path,
    title: &str,
    xy: &[f32],
    labels: &[u32],
    classes: &[String],
) -> Result<()> {
    render!(path, (900, 900), draw_scatter(title, xy, labels, classes))
}

fn draw_scatter<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    xy: &[f32],
    labels: &[u32],
    classes: &[String],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let pts: Vec<(f64, f64)> = xy.chunks(2).map(|p| (p[0] as f64, p[1] as f64)).collect();
    let (x0, x1, y0, y1) = bounds(pts.iter().copied());
    {
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        for (c, name) in classes.iter().enumerate() {
            let color = class_color(c);
            let cls: Vec<(f64, f64)> = pts
                .iter()
                .zip(labels)
                .filter(|(_, &l)| l as usize == c)
                .map(|(p, _)| *p)
                .collect();
            if cls.is_empty() {
                continue;
            }
            chart
                .draw_series(
                    cls.into_iter()
                        .map(|p| Circle::new(p, 2, color.mix(0.6).filled())),
                )
                .map_err(|e| e.to_string())?
                .label(name.clone())
                .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}
