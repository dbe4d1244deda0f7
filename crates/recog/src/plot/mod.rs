//! Plots: loss curves, embedding scatters and the digit "sprite" map, as PNG or SVG (chosen by
//! the file extension). Text uses the DejaVu Sans font compiled into the binary.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::error::{Error, Result};

static FONT: Once = Once::new();

fn register_font() {
    FONT.call_once(|| {
        // The bytes are static and valid; a failure would only lose text, not the plot.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

/// A qualitative palette (Tableau 10), by class index.
pub fn class_color(i: usize) -> RGBColor {
    const P: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = P[i % P.len()];
    RGBColor(r, g, b)
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        problem: e.to_string(),
    }
}

type DrawResult = std::result::Result<(), String>;

fn prepare(path: &Path) -> Result<Option<String>> {
    register_font();
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    Ok(path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase()))
}

/// The legend box every chart uses (upper left, white, framed).
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> DrawResult {
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())
}

/// Calls a generic drawing function on the backend the file extension asks for.
macro_rules! render {
    ($path:expr, $size:expr, $f:ident ( $($arg:expr),* )) => {{
        let path: &Path = $path;
        match prepare(path)?.as_deref() {
            Some("svg") => $f(SVGBackend::new(path, $size).into_drawing_area() $(, $arg)*).map_err(|e| plot_err(path, e)),
            Some("png") => $f(BitMapBackend::new(path, $size).into_drawing_area() $(, $arg)*).map_err(|e| plot_err(path, e)),
            _ => Err(plot_err(path, "unknown plot format: use .png or .svg")),
        }
    }};
}

/// A named series of (x, y) points.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

fn bounds(pts: impl Iterator<Item = (f64, f64)>) -> (f64, f64, f64, f64) {
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (x, y) in pts.filter(|(x, y)| x.is_finite() && y.is_finite()) {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        return (0.0, 1.0, 0.0, 1.0);
    }
    let px = ((x1 - x0) * 0.05).max(1e-6);
    let py = ((y1 - y0) * 0.05).max(1e-6);
    (x0 - px, x1 + px, y0 - py, y1 + py)
}

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
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                .map_err(|e| e.to_string())?;
        }
        draw_legend(&mut chart)?;
        root.present().map_err(|e| e.to_string())
    }
}

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

/// The notebook's picture of the embedding: each image drawn at its 2-D position, tinted by
/// class, on a black canvas of `size` pixels. PNG is rasterised directly; SVG embeds one small
/// PNG per image.
pub fn sprite(
    path: &Path,
    xy: &[f32],
    images: &[&[u8]],
    labels: &[u32],
    h: usize,
    w: usize,
    size: u32,
) -> Result<()> {
    let ext = prepare(path)?;
    let pts: Vec<(f64, f64)> = xy.chunks(2).map(|p| (p[0] as f64, p[1] as f64)).collect();
    let (x0, x1, y0, y1) = bounds(pts.iter().copied());
    let span = (size as usize).saturating_sub(w.max(h)) as f64;
    let place = |(x, y): (f64, f64)| -> (u32, u32) {
        let px = ((x - x0) / (x1 - x0) * span) as u32;
        let py = ((y1 - y) / (y1 - y0) * span) as u32; // y up
        (px, py)
    };
    let tile = |i: usize| -> image::RgbaImage {
        let c = class_color(labels.get(i).copied().unwrap_or(0) as usize);
        image::RgbaImage::from_fn(w as u32, h as u32, |x, y| {
            let v = images[i][y as usize * w + x as usize];
            let a = v as u32;
            image::Rgba([
                (c.0 as u32 * a / 255) as u8,
                (c.1 as u32 * a / 255) as u8,
                (c.2 as u32 * a / 255) as u8,
                v,
            ])
        })
    };
    match ext.as_deref() {
        Some("png") => {
            let mut canvas = image::RgbaImage::from_pixel(size, size, image::Rgba([0, 0, 0, 255]));
            for (i, &p) in pts.iter().enumerate() {
                let (px, py) = place(p);
                let t = tile(i);
                for (x, y, pix) in t.enumerate_pixels() {
                    let (cx, cy) = (px + x, py + y);
                    if cx < size && cy < size && pix.0[3] > 0 {
                        let dst = canvas.get_pixel_mut(cx, cy);
                        for k in 0..3 {
                            dst.0[k] = dst.0[k].max(pix.0[k]);
                        }
                    }
                }
            }
            canvas.save(path).map_err(|e| plot_err(path, e))
        }
        Some("svg") => {
            use std::fmt::Write as _;
            let mut s = format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 {size} {size}\">\n<rect width=\"100%\" height=\"100%\" fill=\"black\"/>\n"
            );
            for (i, &p) in pts.iter().enumerate() {
                let (px, py) = place(p);
                let mut png = Vec::new();
                tile(i)
                    .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                    .map_err(|e| plot_err(path, e))?;
                let _ = writeln!(
                    s,
                    "<image x=\"{px}\" y=\"{py}\" width=\"{w}\" height=\"{h}\" href=\"data:image/png;base64,{}\"/>",
                    base64(&png)
                );
            }
            s.push_str("</svg>\n");
            std::fs::write(path, s).map_err(|e| Error::io(path, e))
        }
        _ => Err(plot_err(path, "unknown plot format: use .png or .svg")),
    }
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        s.push(T[(n >> 18) as usize & 63] as char);
        s.push(T[(n >> 12) as usize & 63] as char);
        s.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        s.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    s
}

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

/// The "picture map": RGB thumbnails drawn at their 2-D positions on a white canvas
/// of `size` pixels, framed in their cluster's colour. PNG is rasterised directly; SVG embeds
/// one small PNG per thumbnail.
pub fn picture_map(
    path: &Path,
    xy: &[f32],
    thumbs: &[image::RgbImage],
    clusters: &[usize],
    size: u32,
) -> Result<()> {
    let ext = prepare(path)?;
    let pts: Vec<(f64, f64)> = xy.chunks(2).map(|p| (p[0] as f64, p[1] as f64)).collect();
    let (x0, x1, y0, y1) = bounds(pts.iter().copied());
    let t = thumbs
        .iter()
        .map(|i| i.width().max(i.height()))
        .max()
        .unwrap_or(1);
    let span = size.saturating_sub(t + 4) as f64;
    let place = |p: &(f64, f64)| {
        (
            ((p.0 - x0) / (x1 - x0) * span) as i64 + 2,
            ((y1 - p.1) / (y1 - y0) * span) as i64 + 2,
        )
    };
    if ext.as_deref() == Some("svg") {
        let mut s = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" viewBox=\"0 0 {size} {size}\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        for ((p, img), &c) in pts.iter().zip(thumbs).zip(clusters) {
            let (px, py) = place(p);
            let RGBColor(r, g, b) = class_color(c);
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| plot_err(path, e))?;
            s.push_str(&format!(
                "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"rgb({r},{g},{b})\"/><image x=\"{px}\" y=\"{py}\" width=\"{}\" height=\"{}\" href=\"data:image/png;base64,{}\"/>\n",
                px - 2,
                py - 2,
                img.width() + 4,
                img.height() + 4,
                img.width(),
                img.height(),
                base64(&png)
            ));
        }
        s.push_str("</svg>\n");
        return std::fs::write(path, s).map_err(|e| Error::io(path, e));
    }
    let mut canvas = image::RgbImage::from_pixel(size, size, image::Rgb([255, 255, 255]));
    for ((p, img), &c) in pts.iter().zip(thumbs).zip(clusters) {
        let (px, py) = place(p);
        let RGBColor(r, g, b) = class_color(c);
        for y in -2..img.height() as i64 + 2 {
            for x in -2..img.width() as i64 + 2 {
                let (cx, cy) = (px + x, py + y);
                if cx < 0 || cy < 0 || cx >= size as i64 || cy >= size as i64 {
                    continue;
                }
                let inside = x >= 0 && y >= 0 && x < img.width() as i64 && y < img.height() as i64;
                let v = if inside {
                    *img.get_pixel(x as u32, y as u32)
                } else {
                    image::Rgb([r, g, b])
                };
                canvas.put_pixel(cx as u32, cy as u32, v);
            }
        }
    }
    canvas.save(path).map_err(|e| plot_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_golden() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

    #[test]
    fn plots_write_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let s = vec![Series {
            label: "train".into(),
            points: vec![(1.0, 0.5), (2.0, 0.3)],
        }];
        for ext in ["png", "svg"] {
            let p = dir.path().join(format!("loss.{ext}"));
            line_chart(&p, "loss", "epoch", "loss", &s).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 1000);
            let p = dir.path().join(format!("scatter.{ext}"));
            scatter(
                &p,
                "emb",
                &[0.0, 0.0, 1.0, 1.0],
                &[0, 1],
                &["a".into(), "b".into()],
            )
            .unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 1000);
            let img = vec![255u8; 4];
            let p = dir.path().join(format!("sprite.{ext}"));
            sprite(&p, &[0.0, 0.0, 1.0, 1.0], &[&img, &img], &[0, 1], 2, 2, 64).unwrap();
            assert!(p.exists());
        }
        assert!(line_chart(&dir.path().join("x.gif"), "", "", "", &s).is_err());
    }
}
