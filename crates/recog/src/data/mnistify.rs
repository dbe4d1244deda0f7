//! MNIST-style normalisation of arbitrary images (LeCun et al.'s recipe): grayscale, light
//! strokes on a dark background, the bounding box scaled to fit 20x20 keeping the aspect
//! ratio, then placed so that the centre of mass sits at the centre of a 28x28 image.
//!
//! ```
//! // A dark stroke on white paper becomes a light digit on black, 28x28, like MNIST.
//! let mut paper = vec![255u8; 40 * 40];
//! for y in 10..30 { for x in 18..22 { paper[y * 40 + x] = 0; } }
//! let px = recog::data::mnistify::mnistify(&paper, 40, 40, None).unwrap();
//! assert_eq!(px.len(), 784);
//! assert_eq!(px[0], 0);
//! assert!(px.iter().any(|&v| v > 200));
//! ```

use std::path::Path;

use crate::error::{Error, Result};

/// Pixels above this value count as ink when finding the bounding box.
const INK: u8 = 40;

/// True when the mean of the image's border is lighter than mid-grey: dark ink on light paper.
pub fn border_is_light(gray: &[u8], width: usize, height: usize) -> bool {
    let mut sum = 0u64;
    let mut n = 0u64;
    for y in 0..height {
        for x in 0..width {
            if y == 0 || x == 0 || y + 1 == height || x + 1 == width {
                sum += gray[y * width + x] as u64;
                n += 1;
            }
        }
    }
    n > 0 && sum / n > 127
}

/// Normalises a `width x height` grayscale image. `invert` = `None` decides from the border
/// (a border lighter than mid-grey means dark ink on light paper). Returns 784 pixels, or
/// `None` when there is no ink at all.
pub fn mnistify(gray: &[u8], width: usize, height: usize, invert: Option<bool>) -> Option<Vec<u8>> {
    if width == 0 || height == 0 || gray.len() != width * height {
        return None;
    }
    let invert = invert.unwrap_or_else(|| border_is_light(gray, width, height));
    let px: Vec<u8> = if invert {
        gray.iter().map(|&p| 255 - p).collect()
    } else {
        gray.to_vec()
    };
    // Bounding box of ink.
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for y in 0..height {
        for x in 0..width {
            if px[y * width + x] > INK {
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
        }
    }
    if x0 == usize::MAX {
        return None;
    }
    let (bw, bh) = (x1 - x0 + 1, y1 - y0 + 1);
    let crop = image::GrayImage::from_fn(bw as u32, bh as u32, |x, y| {
        image::Luma([px[(y0 + y as usize) * width + x0 + x as usize]])
    });
    let s = 20.0 / bw.max(bh) as f32;
    let nw = ((bw as f32 * s).round() as u32).clamp(1, 20);
    let nh = ((bh as f32 * s).round() as u32).clamp(1, 20);
    let small = image::imageops::resize(&crop, nw, nh, image::imageops::FilterType::Triangle);
    // Centre of mass of the small image.
    let (mut m, mut mx, mut my) = (0f64, 0f64, 0f64);
    for (x, y, p) in small.enumerate_pixels() {
        let v = p.0[0] as f64;
        m += v;
        mx += v * x as f64;
        my += v * y as f64;
    }
    let (cx, cy) = if m > 0.0 {
        (mx / m, my / m)
    } else {
        (nw as f64 / 2.0, nh as f64 / 2.0)
    };
    let ox = (14.0 - cx).round() as i64;
    let oy = (14.0 - cy).round() as i64;
    let mut out = vec![0u8; 784];
    for (x, y, p) in small.enumerate_pixels() {
        let (tx, ty) = (x as i64 + ox, y as i64 + oy);
        if (0..28).contains(&tx) && (0..28).contains(&ty) {
            out[(ty * 28 + tx) as usize] = p.0[0];
        }
    }
    Some(out)
}

/// Reads an image file of any size and format and normalises it like MNIST.
pub fn mnistify_file(path: &Path) -> Result<Vec<u8>> {
    let g = crate::data::image_file::decode(path)?.to_luma8();
    let (w, h) = (g.width() as usize, g.height() as usize);
    if w == 0 || h == 0 {
        return Err(Error::Image {
            path: path.to_path_buf(),
            problem: "empty image (0 pixels)".into(),
        });
    }
    mnistify(g.as_raw(), w, h, None).ok_or_else(|| Error::Image {
        path: path.to_path_buf(),
        problem: "no ink found: the image is blank".into(),
    })
}

/// Every file as an MNIST-style digit ([`mnistify_file`]): the readable ones as one data set,
/// in order, and for each file its row in that set or why it could not be read (batch work
/// goes on past unreadable files).
pub fn mnistify_files(
    files: &[std::path::PathBuf],
) -> Result<(super::Dataset, Vec<std::result::Result<usize, String>>)> {
    let mut pixels = Vec::new();
    let mut rows = Vec::with_capacity(files.len());
    let mut n = 0;
    for f in files {
        match mnistify_file(f) {
            Ok(px) => {
                pixels.extend(px);
                rows.push(Ok(n));
                n += 1;
            }
            Err(e) => rows.push(Err(e.to_string())),
        }
    }
    let set = super::Dataset::new(pixels, vec![0; n], 28, 28, vec!["?".into()])?;
    Ok((set, rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dark_on_light_bar_is_inverted_scaled_and_centred() {
        // a black vertical bar on white paper, 100x60, off-centre
        let (w, h) = (100, 60);
        let mut g = vec![255u8; w * h];
        for y in 10..50 {
            for x in 70..78 {
                g[y * w + x] = 0;
            }
        }
        let m = mnistify(&g, w, h, None).unwrap();
        // background is black, box is 20 tall
        assert_eq!(m[0], 0);
        let rows: Vec<usize> = (0..28)
            .filter(|&y| (0..28).any(|x| m[y * 28 + x] > 40))
            .collect();
        assert_eq!(rows.len(), 20);
        // centre of mass within one pixel of (14, 14)
        let (mut s, mut sx, mut sy) = (0f64, 0f64, 0f64);
        for y in 0..28 {
            for x in 0..28 {
                let v = m[y * 28 + x] as f64;
                s += v;
                sx += v * x as f64;
                sy += v * y as f64;
            }
        }
        assert!((sx / s - 14.0).abs() <= 1.0 && (sy / s - 14.0).abs() <= 1.0);
    }

    #[test]
    fn blank_is_none() {
        assert!(mnistify(&[255u8; 100], 10, 10, None).is_none());
        assert!(mnistify(&[], 0, 0, None).is_none());
    }
}
