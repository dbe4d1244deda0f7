//! Cluster scatters: colour by cluster, marker by label.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::frame::{bounds, class_color, draw_legend, render, DrawResult};
use crate::error::Result;

/// 2-D scatter coloured by cluster, with the marker shape given by the true label when
/// labels are known (circle, triangle, square, cross, cycling).
pub fn cluster_scatter(
    path: &Path,
    title: &str,
    xy: &[f32],
    clusters: &[usize],
    truth: Option<(&[usize], &[String])>,
) -> Result<()> {
    render!(
        path,
        (900, 900),
        draw_cluster_scatter(title, xy, clusters, truth)
    )
}

fn draw_cluster_scatter<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    xy: &[f32],
    clusters: &[usize],
    truth: Option<(&[usize], &[String])>,
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let pts: Vec<(f64, f64)> = xy.chunks(2).map(|p| (p[0] as f64, p[1] as f64)).collect();
    let (x0, x1, y0, y1) = bounds(pts.iter().copied());
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
        .x_desc("PC 1")
        .y_desc("PC 2")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    let k = clusters.iter().copied().max().map_or(0, |m| m + 1);
    for c in 0..k {
        let color = class_color(c);
        let members: Vec<usize> = (0..pts.len()).filter(|&i| clusters[i] == c).collect();
        let shape_of = |i: usize| truth.map_or(0, |(t, _)| t[i] % 4);
        chart
            .draw_series(
                members
                    .iter()
                    .filter(|&&i| shape_of(i) == 0)
                    .map(|&i| Circle::new(pts[i], 6, color.filled())),
            )
            .map_err(|e| e.to_string())?
            .label(format!("cluster {c} ({})", members.len()))
            .legend(move |(x, y)| Circle::new((x + 8, y), 5, color.filled()));
        chart
            .draw_series(
                members
                    .iter()
                    .filter(|&&i| shape_of(i) == 1)
                    .map(|&i| TriangleMarker::new(pts[i], 8, color.filled())),
            )
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(
                members
                    .iter()
                    .filter(|&&i| shape_of(i) == 3)
                    .map(|&i| Cross::new(pts[i], 6, color.stroke_width(2))),
            )
            .map_err(|e| e.to_string())?;
        // Squares drawn separately (plotters has no square marker element).
        chart
            .draw_series(members.iter().filter(|&&i| shape_of(i) == 2).map(|&i| {
                let (px, py) = pts[i];
                let dx = (x1 - x0) * 0.006;
                let dy = (y1 - y0) * 0.006;
                Rectangle::new([(px - dx, py - dy), (px + dx, py + dy)], color.filled())
            }))
            .map_err(|e| e.to_string())?;
    }
    if let Some((_, names)) = truth {
        let caption = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{}: {n}", ["circle", "triangle", "square", "cross"][i % 4]))
            .collect::<Vec<_>>()
            .join(", ");
        let shown: String = caption.chars().take(140).collect();
        root.draw(&Text::new(shown, (20, 880), ("sans-serif", 13)))
            .map_err(|e| e.to_string())?;
    }
    draw_legend(&mut chart)?;
    root.present().map_err(|e| e.to_string())
}
