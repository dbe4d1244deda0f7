//! What every chart shares: the font, the palette, the legend, axis bounds, errors naming
//! the file, and the choice of PNG or SVG backend by extension.
//!
//! ```
//! // Every chart colours class i the same way.
//! assert_eq!(recog::plot::class_color(0), recog::plot::class_color(10));
//! ```

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

static FONT: Once = Once::new();

pub(crate) fn register_font() {
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

pub(crate) fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot {
        path: path.to_path_buf(),
        problem: e.to_string(),
    }
}

pub(crate) type DrawResult = std::result::Result<(), String>;

pub(crate) fn prepare(path: &Path) -> Result<Option<String>> {
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
pub(crate) fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> DrawResult {
    draw_legend_at(chart, SeriesLabelPosition::MiddleRight)
}

/// The legend box at `position` (`draw_legend`: middle right, plotters' default).
pub(crate) fn draw_legend_at<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> DrawResult {
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())
}

/// Calls a generic drawing function on the backend the file extension asks for.
macro_rules! render {
    ($path:expr, $size:expr, $f:ident ( $($arg:expr),* )) => {{
        let path: &std::path::Path = $path;
        match $crate::plot::frame::prepare(path)?.as_deref() {
            Some("svg") => $f(SVGBackend::new(path, $size).into_drawing_area() $(, $arg)*).map_err(|e| $crate::plot::frame::plot_err(path, e)),
            Some("png") => $f(BitMapBackend::new(path, $size).into_drawing_area() $(, $arg)*).map_err(|e| $crate::plot::frame::plot_err(path, e)),
            _ => Err($crate::plot::frame::plot_err(path, "unknown plot format: use .png or .svg")),
        }
    }};
}
pub(crate) use render;

/// A named series of (x, y) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Points.
    pub points: Vec<(f64, f64)>,
}

pub(crate) fn bounds(pts: impl Iterator<Item = (f64, f64)>) -> (f64, f64, f64, f64) {
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

pub(crate) fn base64(b: &[u8]) -> String {
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
