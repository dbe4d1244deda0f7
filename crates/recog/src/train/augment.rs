//! Cheap image augmentation for 28x28 digits.

use rand::Rng;

/// Shifts each `h x w` image in `px` by a random offset in `[-max, max]` on both axes,
/// filling with 0 (background).
pub fn random_shift(px: &mut [f32], h: usize, w: usize, max: usize, rng: &mut impl Rng) {
    let m = max as i64;
    let mut tmp = vec![0f32; h * w];
    for img in px.chunks_mut(h * w) {
        let dy = rng.random_range(-m..=m);
        let dx = rng.random_range(-m..=m);
        if dx == 0 && dy == 0 {
            continue;
        }
        tmp.iter_mut().for_each(|v| *v = 0.0);
        for y in 0..h as i64 {
            let sy = y - dy;
            if sy < 0 || sy >= h as i64 {
                continue;
            }
            for x in 0..w as i64 {
                let sx = x - dx;
                if sx >= 0 && sx < w as i64 {
                    tmp[(y * w as i64 + x) as usize] = img[(sy * w as i64 + sx) as usize];
                }
            }
        }
        img.copy_from_slice(&tmp);
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
}
