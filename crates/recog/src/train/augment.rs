//! Cheap image augmentation for 28x28 digits: a random affine map per image (shift,
//! rotation, scale), bilinear sampling, background 0.
//!
//! ```
//! use rand::SeedableRng;
//! let mut px = vec![0.0f32; 16];
//! px[5] = 1.0;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
//! recog::train::augment::random_shift(&mut px, 4, 4, 1, &mut rng);
//! assert!(px.iter().sum::<f32>() <= 1.0); // shifted, maybe off the edge, never duplicated
//! ```

use rand::Rng;

/// How much each image may move.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Affine {
    /// Maximum shift in pixels on each axis.
    pub shift: f32,
    /// Maximum rotation in degrees.
    pub rotate_deg: f32,
    /// Maximum relative scale change (0.1 = 90%..110%).
    pub scale: f32,
}

/// Applies an independent random [`Affine`] map to each `h x w` image of `px`.
pub fn random_affine(px: &mut [f32], h: usize, w: usize, a: Affine, rng: &mut impl Rng) {
    let mut tmp = vec![0f32; h * w];
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let uni = |rng: &mut dyn rand::RngCore, m: f32| {
        if m > 0.0 {
            rng.random_range(-m..=m)
        } else {
            0.0
        }
    };
    for img in px.chunks_mut(h * w) {
        let dx = uni(rng, a.shift);
        let dy = uni(rng, a.shift);
        let th = uni(rng, a.rotate_deg).to_radians();
        let s = 1.0 + uni(rng, a.scale);
        if dx == 0.0 && dy == 0.0 && th == 0.0 && s == 1.0 {
            continue;
        }
        let (c, sn) = (th.cos() / s, th.sin() / s);
        for y in 0..h {
            for x in 0..w {
                // inverse map: output pixel -> source position
                let (u, v) = (x as f32 - cx - dx, y as f32 - cy - dy);
                let sx = c * u + sn * v + cx;
                let sy = -sn * u + c * v + cy;
                let (x0, y0) = (sx.floor(), sy.floor());
                let (fx, fy) = (sx - x0, sy - y0);
                let get = |xx: f32, yy: f32| -> f32 {
                    if xx < 0.0 || yy < 0.0 || xx >= w as f32 || yy >= h as f32 {
                        0.0
                    } else {
                        img[yy as usize * w + xx as usize]
                    }
                };
                tmp[y * w + x] = get(x0, y0) * (1.0 - fx) * (1.0 - fy)
                    + get(x0 + 1.0, y0) * fx * (1.0 - fy)
                    + get(x0, y0 + 1.0) * (1.0 - fx) * fy
                    + get(x0 + 1.0, y0 + 1.0) * fx * fy;
            }
        }
        img.copy_from_slice(&tmp);
    }
}

/// Shifts each image by a random whole number of pixels in `[-max, max]` on both axes.
pub fn random_shift(px: &mut [f32], h: usize, w: usize, max: usize, rng: &mut impl Rng) {
    let m = max as i64;
    let mut tmp = vec![0f32; h * w];
    for img in px.chunks_mut(h * w) {
        let dy = rng.random_range(-m..=m);
        let dx = rng.random_range(-m..=m);
        if dx == 0 && dy == 0 {
            continue;
        }
        shift_image(img, &mut tmp, h, w, dx, dy);
        img.copy_from_slice(&tmp);
    }
}

/// Writes `src` (`h x w`) moved by `(dx, dy)` pixels into `dst`, uncovered pixels
/// `T::default()` (background).
pub fn shift_image<T: Copy + Default>(
    src: &[T],
    dst: &mut [T],
    h: usize,
    w: usize,
    dx: i64,
    dy: i64,
) {
    dst.iter_mut().for_each(|v| *v = T::default());
    for y in 0..h as i64 {
        let sy = y - dy;
        if sy < 0 || sy >= h as i64 {
            continue;
        }
        for x in 0..w as i64 {
            let sx = x - dx;
            if sx >= 0 && sx < w as i64 {
                dst[(y * w as i64 + x) as usize] = src[(sy * w as i64 + sx) as usize];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn shift_keeps_mass_inside() {
        let mut px = vec![0f32; 25];
        px[12] = 1.0; // centre of 5x5
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        random_shift(&mut px, 5, 5, 1, &mut rng);
        assert_eq!(px.iter().sum::<f32>(), 1.0);
    }

    #[test]
    fn identity_affine_changes_nothing_and_rotation_keeps_mass() {
        let mut px: Vec<f32> = (0..784)
            .map(|i| if (300..500).contains(&i) { 1.0 } else { 0.0 })
            .collect();
        let orig = px.clone();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        random_affine(
            &mut px,
            28,
            28,
            Affine {
                shift: 0.0,
                rotate_deg: 0.0,
                scale: 0.0,
            },
            &mut rng,
        );
        assert_eq!(px, orig);
        random_affine(
            &mut px,
            28,
            28,
            Affine {
                shift: 0.0,
                rotate_deg: 10.0,
                scale: 0.0,
            },
            &mut rng,
        );
        let (a, b): (f32, f32) = (orig.iter().sum(), px.iter().sum());
        assert!((a - b).abs() / a < 0.05, "{a} vs {b}");
    }
}
