//! The sprite: digit images placed at their 2-D embedding.

use std::path::Path;

use super::frame::{base64, bounds, class_color, plot_err, prepare};
use crate::error::{Error, Result};

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
