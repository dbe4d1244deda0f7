//! Face alignment: a similarity transform from detected keypoints to the template of the
//! embedding network, and the warp that cuts the aligned chip out of the image.
//!
//! The template is dlib's: `get_face_chip_details(shape, 150, 0.25)` maps the mean positions
//! of the 68-point landmarks (below, points 17..67 in a unit square) onto a 150x150 chip with
//! 25% padding. BlazeFace gives eye centres, nose tip and mouth centre, so the template
//! points are the means of dlib's eye and mouth landmarks and its nose-tip landmark.
//!
//! ```
//! use recog::face::align::Similarity;
//! // A scale by 2 and a shift, recovered from three points.
//! let from = [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]];
//! let to = [[1.0, 1.0], [3.0, 1.0], [1.0, 3.0]];
//! let s = Similarity::fit(&from, &to);
//! assert!((s.scale() - 2.0).abs() < 1e-5);
//! let p = s.apply([1.0, 1.0]);
//! assert!((p[0] - 3.0).abs() < 1e-4 && (p[1] - 3.0).abs() < 1e-4);
//! ```

use image::RgbImage;

/// dlib's mean face shape, points 17..67 (`dlib/image_transforms/interpolation.h`).
const MEAN_X: [f32; 51] = [
    0.000213256,
    0.0752622,
    0.18113,
    0.29077,
    0.393397,
    0.586856,
    0.689483,
    0.799124,
    0.904991,
    0.98004,
    0.490127,
    0.490127,
    0.490127,
    0.490127,
    0.36688,
    0.426036,
    0.490127,
    0.554217,
    0.613373,
    0.121737,
    0.187122,
    0.265825,
    0.334606,
    0.260918,
    0.182743,
    0.645647,
    0.714428,
    0.793132,
    0.858516,
    0.79751,
    0.719335,
    0.254149,
    0.340985,
    0.428858,
    0.490127,
    0.551395,
    0.639268,
    0.726104,
    0.642159,
    0.556721,
    0.490127,
    0.423532,
    0.338094,
    0.290379,
    0.428096,
    0.490127,
    0.552157,
    0.689874,
    0.553364,
    0.490127,
    0.42689,
];
const MEAN_Y: [f32; 51] = [
    0.106454, 0.038915, 0.0187482, 0.0344891, 0.0773906, 0.0773906, 0.0344891, 0.0187482, 0.038915,
    0.106454, 0.203352, 0.307009, 0.409805, 0.515625, 0.587326, 0.609345, 0.628106, 0.609345,
    0.587326, 0.216423, 0.178758, 0.179852, 0.231733, 0.245099, 0.244077, 0.231733, 0.179852,
    0.178758, 0.216423, 0.244077, 0.245099, 0.780233, 0.745405, 0.727388, 0.742578, 0.727388,
    0.745405, 0.780233, 0.864805, 0.902192, 0.909281, 0.902192, 0.864805, 0.784792, 0.778746,
    0.785343, 0.778746, 0.784792, 0.824182, 0.831803, 0.824182,
];

fn mean_of(range: std::ops::RangeInclusive<usize>) -> [f32; 2] {
    let n = range.clone().count() as f32;
    let (mut x, mut y) = (0.0, 0.0);
    for i in range {
        x += MEAN_X[i - 17];
        y += MEAN_Y[i - 17];
    }
    [x / n, y / n]
}

/// Where the eyes, nose tip and mouth centre go in a `size` x `size` chip with `padding`
/// (fraction of the face width added on every side), in BlazeFace's keypoint order:
/// the subject's right eye (left in the image), left eye, nose tip, mouth centre.
pub fn dlib_template(size: usize, padding: f32) -> [[f32; 2]; 4] {
    let pts = [
        mean_of(36..=41),
        mean_of(42..=47),
        mean_of(30..=30),
        mean_of(48..=67),
    ];
    pts.map(|[x, y]| {
        [
            (padding + x) / (1.0 + 2.0 * padding) * size as f32,
            (padding + y) / (1.0 + 2.0 * padding) * size as f32,
        ]
    })
}

/// InsightFace's 112x112 template (`arcface_dst`): the subject's right eye (left in the
/// image), left eye, nose tip, right and left mouth corners.
pub const ARCFACE_112: [[f32; 2]; 5] = [
    [38.2946, 51.6963],
    [73.5318, 51.5014],
    [56.0252, 71.7366],
    [41.5493, 92.3655],
    [70.7299, 92.2041],
];

/// The five ArcFace points from 68 iBUG landmarks: eye centres, nose tip, mouth corners.
pub fn five_from_68(l: &[[f32; 2]]) -> Option<[[f32; 2]; 5]> {
    if l.len() < 68 {
        return None;
    }
    let mean = |r: std::ops::RangeInclusive<usize>| {
        let n = r.clone().count() as f32;
        let s = r.fold([0.0, 0.0], |s, i| [s[0] + l[i][0], s[1] + l[i][1]]);
        [s[0] / n, s[1] / n]
    };
    Some([mean(36..=41), mean(42..=47), l[30], l[48], l[54]])
}

/// An ArcFace-layout chip of side `size` (the template scaled from 112) from five points
/// (eyes, nose tip, mouth corners) or four (eyes, nose tip, mouth centre: BlazeFace's).
pub fn align_arcface(img: &RgbImage, points: &[[f32; 2]], size: usize) -> RgbImage {
    let k = size as f32 / 112.0;
    let t = ARCFACE_112.map(|[x, y]| [x * k, y * k]);
    let tf = if points.len() >= 5 {
        Similarity::fit(&t, &points[..5])
    } else {
        let mouth = [(t[3][0] + t[4][0]) / 2.0, (t[3][1] + t[4][1]) / 2.0];
        let from = [t[0], t[1], t[2], mouth];
        let n = points.len().min(4);
        Similarity::fit(&from[..n], &points[..n])
    };
    warp(img, &tf, size)
}

/// A similarity transform `q = [a -b; b a] p + t` (rotation, uniform scale, shift).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    /// `scale * cos(angle)`.
    pub a: f32,
    /// `scale * sin(angle)`.
    pub b: f32,
    /// Translation.
    pub t: [f32; 2],
}

impl Similarity {
    /// The least-squares similarity that maps `from[i]` onto `to[i]`.
    pub fn fit(from: &[[f32; 2]], to: &[[f32; 2]]) -> Similarity {
        let n = from.len().min(to.len()).max(1) as f32;
        let mean = |p: &[[f32; 2]]| {
            let s = p.iter().fold([0.0, 0.0], |s, q| [s[0] + q[0], s[1] + q[1]]);
            [s[0] / n, s[1] / n]
        };
        let (mf, mt) = (mean(from), mean(to));
        let (mut num_a, mut num_b, mut den) = (0.0f32, 0.0f32, 0.0f32);
        for (p, q) in from.iter().zip(to) {
            let (px, py) = (p[0] - mf[0], p[1] - mf[1]);
            let (qx, qy) = (q[0] - mt[0], q[1] - mt[1]);
            num_a += px * qx + py * qy;
            num_b += px * qy - py * qx;
            den += px * px + py * py;
        }
        let den = den.max(1e-12);
        let (a, b) = (num_a / den, num_b / den);
        let t = [
            mt[0] - (a * mf[0] - b * mf[1]),
            mt[1] - (b * mf[0] + a * mf[1]),
        ];
        Similarity { a, b, t }
    }

    /// Applies the transform to a point.
    pub fn apply(&self, p: [f32; 2]) -> [f32; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.t[0],
            self.b * p[0] + self.a * p[1] + self.t[1],
        ]
    }

    /// Scale factor.
    pub fn scale(&self) -> f32 {
        (self.a * self.a + self.b * self.b).sqrt()
    }
}

/// Cuts a `size` x `size` chip: chip pixel `p` samples the image at `chip_to_image(p)`
/// (bilinear; outside the image is black).
pub fn warp(img: &RgbImage, chip_to_image: &Similarity, size: usize) -> RgbImage {
    let src = Source {
        raw: img.as_raw(),
        w: img.width() as i64,
        h: img.height() as i64,
        stride: img.width() as usize * 3,
    };
    let mut out = vec![0u8; size * size * 3];
    // Eight chip pixels at a time with AVX2 where every one of them lies inside; the same
    // operations in the same order, so the same bytes (a twentieth of `recog bench face
    // --precision f32` was this loop, in the refining crops and the chips).
    #[cfg(target_arch = "x86_64")]
    let vector = x86::usable(&src);
    for (v, row) in out.chunks_exact_mut((size * 3).max(1)).enumerate() {
        #[cfg(target_arch = "x86_64")]
        let done = if vector {
            // SAFETY: `usable` checked the CPU (AVX2) and the image (offsets within i32).
            unsafe { x86::row(&src, chip_to_image, v, row) }
        } else {
            0
        };
        #[cfg(not(target_arch = "x86_64"))]
        let done = 0;
        for (u, c) in row.chunks_exact_mut(3).enumerate().skip(done) {
            src.pixel(chip_to_image, u, v, c);
        }
    }
    RgbImage::from_raw(size as u32, size as u32, out)
        .unwrap_or_else(|| RgbImage::new(size as u32, size as u32))
}

/// The image a chip is cut from: its bytes, sides and row length in bytes.
struct Source<'a> {
    raw: &'a [u8],
    w: i64,
    h: i64,
    stride: usize,
}

impl Source<'_> {
    /// Byte offset of pixel `(x, y)`, which must be inside.
    #[inline(always)]
    fn at(&self, x: i64, y: i64) -> usize {
        (y as usize) * self.stride + (x as usize) * 3
    }

    /// Pixel `(x, y)`, black outside the image.
    #[inline(always)]
    fn px(&self, x: i64, y: i64) -> [f32; 3] {
        if x < 0 || y < 0 || x >= self.w || y >= self.h {
            return [0.0; 3];
        }
        match self.raw.get(self.at(x, y)..self.at(x, y) + 3) {
            Some(p) => [p[0] as f32, p[1] as f32, p[2] as f32],
            None => [0.0; 3],
        }
    }

    /// Chip pixel `(u, v)` into `c` (3 bytes).
    #[inline(always)]
    fn pixel(&self, chip_to_image: &Similarity, u: usize, v: usize, c: &mut [u8]) {
        let [x, y] = chip_to_image.apply([u as f32, v as f32]);
        let (xi, yi) = (floor(x), floor(y));
        let (fx, fy) = (x - xi as f32, y - yi as f32);
        // Inside, the two rows of the 2x2 neighbourhood are read as two 6-byte runs
        // (`get_pixel` and its bounds asserts per neighbour were most of the warp's
        // time); on the border each neighbour is looked up, outside reading black.
        let inside = xi >= 0 && yi >= 0 && xi + 1 < self.w && yi + 1 < self.h;
        let quad = if inside {
            let (t, b) = (self.at(xi, yi), self.at(xi, yi + 1));
            let raw = self.raw;
            raw.get(t..t + 6).zip(raw.get(b..b + 6)).map(|(t, b)| {
                let f = |p: &[u8], o: usize| [p[o] as f32, p[o + 1] as f32, p[o + 2] as f32];
                (f(t, 0), f(t, 3), f(b, 0), f(b, 3))
            })
        } else {
            None
        };
        let (p00, p10, p01, p11) = quad.unwrap_or_else(|| {
            (
                self.px(xi, yi),
                self.px(xi + 1, yi),
                self.px(xi, yi + 1),
                self.px(xi + 1, yi + 1),
            )
        });
        for k in 0..3 {
            let top = p00[k] * (1.0 - fx) + p10[k] * fx;
            let bot = p01[k] * (1.0 - fx) + p11[k] * fx;
            // A convex mix of bytes: in [0, 255], so adding a half and truncating
            // rounds it; `f32::round` is a libm call on baseline x86-64 (a tenth of the
            // warp's time in a profile of `recog bench face`).
            c[k] = (top * (1.0 - fy) + bot * fy + 0.5) as u8;
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{Similarity, Source};
    use std::arch::x86_64::*;

    /// Whether [`row`] may run: the CPU has AVX2, and the image's byte offsets (up to the
    /// last byte, plus the 4-byte gathers' reach) and sides fit i32.
    pub(super) fn usable(src: &Source) -> bool {
        src.raw.len() < (i32::MAX as usize) / 2
            && src.w < 1 << 30
            && src.h < 1 << 30
            && std::arch::is_x86_feature_detected!("avx2")
    }

    /// Chip row `v`'s first pixels, eight at a time while the row lasts, into `row`;
    /// returns how many pixels it wrote (a multiple of 8). A group with a pixel on the
    /// border or outside goes through [`Source::pixel`].
    ///
    /// # Safety
    /// Only where [`usable`] says so.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn row(src: &Source, tf: &Similarity, v: usize, row: &mut [u8]) -> usize {
        let groups = row.len() / 24;
        let vf = v as f32;
        // As `Similarity::apply`: x = (a u - b v) + t0, y = (b u + a v) + t1.
        let (bv, av) = (tf.b * vf, tf.a * vf);
        let (a, b) = (_mm256_set1_ps(tf.a), _mm256_set1_ps(tf.b));
        let (bv, av) = (_mm256_set1_ps(bv), _mm256_set1_ps(av));
        let (t0, t1) = (_mm256_set1_ps(tf.t[0]), _mm256_set1_ps(tf.t[1]));
        let one = _mm256_set1_ps(1.0);
        let half = _mm256_set1_ps(0.5);
        let byte = _mm256_set1_epi32(0xff);
        let lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let (wm1, hm1) = (
            _mm256_set1_epi32(src.w as i32 - 1),
            _mm256_set1_epi32(src.h as i32 - 1),
        );
        let minus1 = _mm256_set1_epi32(-1);
        let stride = _mm256_set1_epi32(src.stride as i32);
        let three = _mm256_set1_epi32(3);
        let floor = |x: __m256| {
            // `floor` below, lane by lane: truncate, then one less where that rounded up. A
            // lane out of i32's range becomes i32::MIN (or, after the step, i32::MAX),
            // which fails the inside test.
            let t = _mm256_cvttps_epi32(x);
            let up = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(_mm256_cvtepi32_ps(t), x));
            _mm256_add_epi32(t, up)
        };
        for g in 0..groups {
            let u0 = g * 8;
            let uf = _mm256_cvtepi32_ps(_mm256_add_epi32(_mm256_set1_epi32(u0 as i32), lanes));
            let x = _mm256_add_ps(_mm256_sub_ps(_mm256_mul_ps(a, uf), bv), t0);
            let y = _mm256_add_ps(_mm256_add_ps(_mm256_mul_ps(b, uf), av), t1);
            let (xi, yi) = (floor(x), floor(y));
            // 0 <= xi < w - 1 and 0 <= yi < h - 1 (xi + 1 < w without the overflow).
            let inside = _mm256_and_si256(
                _mm256_and_si256(_mm256_cmpgt_epi32(xi, minus1), _mm256_cmpgt_epi32(wm1, xi)),
                _mm256_and_si256(_mm256_cmpgt_epi32(yi, minus1), _mm256_cmpgt_epi32(hm1, yi)),
            );
            let c = &mut row[u0 * 3..][..24];
            if _mm256_movemask_epi8(inside) != -1 {
                for (i, c) in c.chunks_exact_mut(3).enumerate() {
                    src.pixel(tf, u0 + i, v, c);
                }
                continue;
            }
            let fx = _mm256_sub_ps(x, _mm256_cvtepi32_ps(xi));
            let fy = _mm256_sub_ps(y, _mm256_cvtepi32_ps(yi));
            let top = _mm256_add_epi32(
                _mm256_mullo_epi32(yi, stride),
                _mm256_mullo_epi32(xi, three),
            );
            let bottom = _mm256_add_epi32(top, stride);
            // Each 6-byte run (two pixels) as two 4-byte reads, at 0 and 2: bytes 0-2 are
            // the left pixel, 3-5 (the second read's 1-3) the right one; nothing past the
            // run is read, and the run is inside the image (checked above).
            let base = src.raw.as_ptr() as *const i32;
            let gather = |o: __m256i| unsafe { _mm256_i32gather_epi32::<1>(base, o) };
            let two = _mm256_set1_epi32(2);
            let (tl, tr) = (gather(top), gather(_mm256_add_epi32(top, two)));
            let (bl, br) = (gather(bottom), gather(_mm256_add_epi32(bottom, two)));
            let ch = |word: __m256i, shift: i32| {
                let s = _mm_cvtsi32_si128(shift);
                _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srl_epi32(word, s), byte))
            };
            let (one_fx, one_fy) = (_mm256_sub_ps(one, fx), _mm256_sub_ps(one, fy));
            let mut bytes = [[0i32; 8]; 3];
            for (k, out) in bytes.iter_mut().enumerate() {
                let k = k as i32;
                let (p00, p10) = (ch(tl, 8 * k), ch(tr, 8 * (k + 1)));
                let (p01, p11) = (ch(bl, 8 * k), ch(br, 8 * (k + 1)));
                let t = _mm256_add_ps(_mm256_mul_ps(p00, one_fx), _mm256_mul_ps(p10, fx));
                let bo = _mm256_add_ps(_mm256_mul_ps(p01, one_fx), _mm256_mul_ps(p11, fx));
                let m = _mm256_add_ps(
                    _mm256_add_ps(_mm256_mul_ps(t, one_fy), _mm256_mul_ps(bo, fy)),
                    half,
                );
                // `as u8`: truncation, saturating (the mix is in [0, 255.5] anyway).
                let q = _mm256_min_epi32(
                    _mm256_max_epi32(_mm256_cvttps_epi32(m), _mm256_setzero_si256()),
                    byte,
                );
                _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, q);
            }
            for (i, c) in c.chunks_exact_mut(3).enumerate() {
                c[0] = bytes[0][i] as u8;
                c[1] = bytes[1][i] as u8;
                c[2] = bytes[2][i] as u8;
            }
        }
        groups * 8
    }
}

/// `x.floor()` as an integer, without the libm call baseline x86-64 makes for `floor`
/// (saturating far outside any image, as `x.floor() as i64` does).
#[inline(always)]
fn floor(x: f32) -> i64 {
    let t = x as i64;
    if (t as f32) > x {
        t - 1
    } else {
        t
    }
}

/// Aligns a face: fits the similarity from the chip template to the detected keypoints
/// (eyes, nose, mouth) and warps the chip.
pub fn align(img: &RgbImage, keypoints: &[[f32; 2]], size: usize, padding: f32) -> RgbImage {
    let template = dlib_template(size, padding);
    let n = keypoints.len().min(4);
    let tf = Similarity::fit(&template[..n], &keypoints[..n]);
    warp(img, &tf, size)
}

/// dlib's `get_face_chip_details` for 68 landmarks: the similarity that best maps the mean
/// face shape (eyebrows and lower lip left out, as dlib does) onto the landmarks, and the
/// warped `size` x `size` chip.
pub fn align68(img: &RgbImage, landmarks: &[[f32; 2]], size: usize, padding: f32) -> RgbImage {
    let mut from = Vec::new();
    let mut to = Vec::new();
    for i in 17..68.min(landmarks.len()) {
        if (55..=59).contains(&i) || (65..=67).contains(&i) || (17..=26).contains(&i) {
            continue;
        }
        from.push([
            (padding + MEAN_X[i - 17]) / (1.0 + 2.0 * padding) * size as f32,
            (padding + MEAN_Y[i - 17]) / (1.0 + 2.0 * padding) * size as f32,
        ]);
        to.push(landmarks[i]);
    }
    warp(img, &Similarity::fit(&from, &to), size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inline_floor_agrees_with_f32_floor() {
        for i in -40_000..40_000 {
            let x = i as f32 * 0.013_7;
            assert_eq!(floor(x), x.floor() as i64, "{x}");
        }
        for x in [-1.0, -0.5, -0.0, 0.0, 0.5, 1.0, 1e12, -1e12, f32::NAN] {
            assert_eq!(floor(x), x.floor() as i64, "{x}");
        }
    }

    #[test]
    fn fit_recovers_a_known_similarity() {
        let truth = Similarity {
            a: 1.5 * 0.3f32.cos(),
            b: 1.5 * 0.3f32.sin(),
            t: [10.0, -4.0],
        };
        let from = [[0.0, 0.0], [10.0, 0.0], [3.0, 7.0], [5.0, 12.0]];
        let to: Vec<[f32; 2]> = from.iter().map(|&p| truth.apply(p)).collect();
        let fit = Similarity::fit(&from, &to);
        assert!((fit.a - truth.a).abs() < 1e-5 && (fit.b - truth.b).abs() < 1e-5);
        assert!((fit.t[0] - truth.t[0]).abs() < 1e-4 && (fit.t[1] - truth.t[1]).abs() < 1e-4);
    }

    #[test]
    fn template_is_symmetric_and_inside_the_chip() {
        let t = dlib_template(150, 0.25);
        // Eyes level and mirror images about the vertical centre line of the mean face.
        assert!((t[0][1] - t[1][1]).abs() < 1e-4);
        let centre = (0.25 + 0.490127) / 1.5 * 150.0;
        assert!(((t[0][0] + t[1][0]) / 2.0 - centre).abs() < 0.05);
        assert!(t
            .iter()
            .all(|p| p[0] > 0.0 && p[0] < 150.0 && p[1] > 0.0 && p[1] < 150.0));
        assert!(t[3][1] > t[2][1] && t[2][1] > t[0][1]);
    }

    #[test]
    fn arcface_chip_puts_the_five_points_on_the_template() {
        // Pixel (x, y) holds (x, y, 0); the face's points are the template shifted by (10, 20),
        // so chip pixel (u, v) must sample image pixel (u + 10, v + 20).
        let img = RgbImage::from_fn(200, 200, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let pts: Vec<[f32; 2]> = ARCFACE_112
            .iter()
            .map(|p| [p[0] + 10.0, p[1] + 20.0])
            .collect();
        let chip = align_arcface(&img, &pts, 112);
        assert_eq!(chip.get_pixel(0, 0).0, [10, 20, 0]);
        assert_eq!(chip.get_pixel(56, 71).0, [66, 91, 0]);
        // Four points (BlazeFace: eyes, nose, mouth centre) give the same chip here.
        let mouth = [(pts[3][0] + pts[4][0]) / 2.0, (pts[3][1] + pts[4][1]) / 2.0];
        let four = [pts[0], pts[1], pts[2], mouth];
        assert_eq!(align_arcface(&img, &four, 112), chip);
    }

    #[test]
    fn five_points_from_68_landmarks() {
        assert!(five_from_68(&[[0.0, 0.0]; 67]).is_none());
        let mut l = vec![[0.0f32, 0.0]; 68];
        for (i, p) in l.iter_mut().enumerate().take(42).skip(36) {
            *p = [10.0 + i as f32, 5.0]; // mean x = 10 + 38.5
        }
        for p in &mut l[42..=47] {
            *p = [60.0, 7.0];
        }
        l[30] = [35.0, 30.0];
        l[48] = [20.0, 50.0];
        l[54] = [50.0, 51.0];
        let p = five_from_68(&l).unwrap();
        assert_eq!(
            p,
            [
                [48.5, 5.0],
                [60.0, 7.0],
                [35.0, 30.0],
                [20.0, 50.0],
                [50.0, 51.0]
            ]
        );
    }

    /// Bilinear sampling as written out in the warp's doc: each neighbour looked up, black
    /// outside, `f32::floor`, the mix rounded half up.
    fn reference_warp(img: &RgbImage, tf: &Similarity, size: usize) -> RgbImage {
        let (w, h) = (img.width() as i64, img.height() as i64);
        let px = |x: i64, y: i64| -> [f32; 3] {
            if x < 0 || y < 0 || x >= w || y >= h {
                [0.0; 3]
            } else {
                img.get_pixel(x as u32, y as u32).0.map(|v| v as f32)
            }
        };
        RgbImage::from_fn(size as u32, size as u32, |u, v| {
            let [x, y] = tf.apply([u as f32, v as f32]);
            let (x0, y0) = (x.floor(), y.floor());
            let (fx, fy) = (x - x0, y - y0);
            let (xi, yi) = (x0 as i64, y0 as i64);
            let (a, b, c, d) = (
                px(xi, yi),
                px(xi + 1, yi),
                px(xi, yi + 1),
                px(xi + 1, yi + 1),
            );
            image::Rgb(std::array::from_fn(|k| {
                let top = a[k] * (1.0 - fx) + b[k] * fx;
                let bot = c[k] * (1.0 - fx) + d[k] * fx;
                (top * (1.0 - fy) + bot * fy + 0.5) as u8
            }))
        })
    }

    /// The warp's fast paths inside the image (two 6-byte runs per pixel; eight pixels at
    /// a time with AVX2) give what looking up each neighbour gives, on chips that straddle
    /// the border and lie partly outside.
    #[test]
    fn warp_reads_the_same_neighbours_inside_and_on_the_border() {
        let img = RgbImage::from_fn(37, 29, |x, y| {
            image::Rgb([(x * 7 + y) as u8, (y * 11) as u8, (x * y) as u8])
        });
        for i in 0..40 {
            let angle = i as f32 * 0.37;
            let scale = 0.3 + (i % 7) as f32 * 0.2;
            let tf = Similarity {
                a: scale * angle.cos(),
                b: scale * angle.sin(),
                t: [(i % 9) as f32 * 5.0 - 10.0, (i % 5) as f32 * 7.0 - 8.0],
            };
            assert_eq!(
                warp(&img, &tf, 23),
                reference_warp(&img, &tf, 23),
                "transform {i}"
            );
        }
    }

    proptest::proptest! {
        /// Every chip byte equals the reference's, for images of any size (the last
        /// column and row, where the eight-pixel path must not read past the image, at
        /// any offset), chips of any size and transforms from shrinking to enlarging, far
        /// outside included.
        #[test]
        fn warp_equals_the_reference_sampling_byte_for_byte(
            w in 1u32..90,
            h in 1u32..70,
            seed in 0u32..1000,
            size in 1usize..70,
            angle in -3.2f32..3.2,
            scale in 0.05f32..3.0,
            tx in -100f32..150.0,
            ty in -100f32..150.0,
        ) {
            let img = RgbImage::from_fn(w, h, |x, y| {
                let v = x.wrapping_mul(2_654_435_761).wrapping_add(y.wrapping_mul(40_503)) ^ seed;
                image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
            });
            let tf = Similarity { a: scale * angle.cos(), b: scale * angle.sin(), t: [tx, ty] };
            proptest::prop_assert_eq!(warp(&img, &tf, size), reference_warp(&img, &tf, size));
        }
    }

    /// Coordinates beyond i32 (and NaN) fall back to the per-pixel path, which reads black,
    /// instead of wrapping into an offset inside the image.
    #[test]
    fn warp_far_outside_reads_black() {
        let img = RgbImage::from_pixel(40, 40, image::Rgb([200, 100, 50]));
        for t in [
            [3e9, 5.0],
            [-3e9, 5.0],
            [5.0, 3e9],
            [5.0, -3e9],
            [f32::NAN, 5.0],
        ] {
            let tf = Similarity { a: 1.0, b: 0.0, t };
            let chip = warp(&img, &tf, 16);
            assert_eq!(chip, reference_warp(&img, &tf, 16), "{t:?}");
        }
    }

    #[test]
    fn identity_warp_copies_pixels() {
        let img = RgbImage::from_fn(8, 8, |x, y| image::Rgb([x as u8 * 10, y as u8 * 10, 7]));
        let id = Similarity {
            a: 1.0,
            b: 0.0,
            t: [2.0, 1.0],
        };
        let chip = warp(&img, &id, 4);
        assert_eq!(chip.get_pixel(0, 0).0, [20, 10, 7]);
        assert_eq!(chip.get_pixel(3, 2).0, [50, 30, 7]);
    }
}
