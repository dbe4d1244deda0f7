//! Picture maps: thumbnails at their 2-D position, framed by cluster colour.

use std::path::Path;

use plotters::prelude::*;

use super::frame::{base64, bounds, class_color, plot_err, prepare};
use crate::error::{Error, Result};

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
