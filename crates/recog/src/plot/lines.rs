//! Line charts (the loss curve, ROC, DIR-FAR, the elbow) and operating points.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use plotters::coord::types::RangedCoordf64;

use super::frame::{bounds, class_color, draw_legend, draw_legend_at, render, DrawResult, Series};
use crate::error::Result;

/// Line chart of several series (the loss curve: train and validation loss per epoch).
pub fn line_chart(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> Result<()> {
    render!(
        path,
        (900, 600),
        draw_lines(title, x_label, y_label, series)
    )
}

fn draw_lines<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let (x0, x1, y0, y1) = bounds(series.iter().flat_map(|s| s.points.iter().copied()));
    let y0 = y0.min(0.0);
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
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| e.to_string())?;
        draw_marked_lines(&mut chart, series)?;
        draw_legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())
    }
}

/// Operating points of several rules (one series per rule, one point per setting), with the
/// region that meets `goal` = (x, y) shaded: both axes at least the goal's. The view is cut
/// to 20 points of x and 4 of y below the goal, so that one far-off rule does not flatten
/// the others (its points outside are left out), unless the cut would leave out most points
/// ([`operating_points_in_view`]).
pub fn operating_points(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    goal: (f64, f64),
) -> Result<()> {
    let kept = operating_points_in_view(series, goal);
    render!(
        path,
        (900, 600),
        draw_operating_points(title, x_label, y_label, &kept, goal)
    )
}

/// The points [`operating_points`] draws: those within 20 points of x and 4 of y below
/// `goal`, when that keeps at least half of them; otherwise every point. Far from the goal
/// (D = 2, where the best rule rejects under 90% of its worst held-out generator) the cut
/// view was left with one stray point and no line.
pub fn operating_points_in_view(series: &[Series], (gx, gy): (f64, f64)) -> Vec<Series> {
    let inside = |&(x, y): &(f64, f64)| x >= gx - 20.0 && y >= gy - 4.0;
    let total: usize = series.iter().map(|s| s.points.len()).sum();
    let near: usize = series
        .iter()
        .map(|s| s.points.iter().filter(|p| inside(p)).count())
        .sum();
    let cut = 2 * near >= total;
    series
        .iter()
        .map(|s| Series {
            label: s.label.clone(),
            points: s
                .points
                .iter()
                .copied()
                .filter(|p| !cut || inside(p))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

fn draw_operating_points<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    (gx, gy): (f64, f64),
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    let goal_corner = [(gx, gy)];
    let (x0, x1, y0, y1) = bounds(
        series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .chain(goal_corner),
    );
    let (x1, y1) = (x1.max(gx + 0.5), y1.max(gy + 0.1));
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc(x_label)
        .y_desc(y_label)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    let green = RGBColor(200, 235, 200);
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(gx, gy), (x1, y1)],
            green.filled(),
        )))
        .map_err(|e| e.to_string())?
        .label("goal")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 20, y + 5)], green.filled()));
    draw_marked_lines(&mut chart, series)?;
    draw_legend_at(&mut chart, SeriesLabelPosition::LowerLeft)?;
    root.present().map_err(|e| e.to_string())
}

/// Each series as a line through its finite points, with a dot on each point, in the class
/// colours, labelled for the legend.
fn draw_marked_lines<'a, DB: DrawingBackend + 'a>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    series: &[Series],
) -> DrawResult
where
    DB::ErrorType: 'static,
{
    for (i, s) in series.iter().enumerate() {
        let c = class_color(i);
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
