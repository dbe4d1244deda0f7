//! Annotated images: boxes, keypoints and labels drawn onto a copy of the input.
//!
//! ```
//! use recog::face::{draw, FaceBox};
//! let img = image::RgbImage::new(64, 64);
//! let face = FaceBox { x0: 10.0, y0: 10.0, x1: 40.0, y1: 40.0, score: 0.9, keypoints: vec![], landmarks: vec![] };
//! let out = draw::annotate(&img, &[draw::identity_mark(face.clone(), Some("Ada"), 0.41)]);
//! assert_eq!(out.dimensions(), (64, 64));
//! assert!(out.pixels().any(|p| p.0 != [0, 0, 0]));
//! let jpeg = draw::face_thumbnail(&img, &face, 32).unwrap();
//! assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
//! ```

use ab_glyph::{FontRef, PxScale};
use image::{Rgb, RgbImage};
use imageproc::drawing::{
    draw_filled_circle_mut, draw_filled_rect_mut, draw_hollow_rect_mut, draw_text_mut, text_size,
};
use imageproc::rect::Rect;

use super::FaceBox;

/// Green for accepted faces, red for unknown ones.
pub const GREEN: Rgb<u8> = Rgb([40, 200, 60]);
/// Red.
pub const RED: Rgb<u8> = Rgb([220, 40, 40]);

/// One face's mark for [`annotate`]: "name distance" (or "unknown distance") in green when
/// named, red when not.
pub fn identity_mark(
    face: FaceBox,
    name: Option<&str>,
    distance: f32,
) -> (FaceBox, Option<String>, Rgb<u8>) {
    let label = format!("{} {distance:.2}", name.unwrap_or("unknown"));
    (face, Some(label), if name.is_some() { GREEN } else { RED })
}

/// Draws each face's box (2 px), keypoints and, if given, a label above the box.
pub fn annotate(img: &RgbImage, faces: &[(FaceBox, Option<String>, Rgb<u8>)]) -> RgbImage {
    let mut out = img.clone();
    let font = FontRef::try_from_slice(dejavu::sans::regular()).ok();
    let size = (img.height().max(img.width()) as f32 / 30.0).clamp(11.0, 28.0);
    for (f, label, color) in faces {
        let (x, y) = (f.x0.round() as i32, f.y0.round() as i32);
        let (w, h) = (
            (f.x1 - f.x0).round().max(1.0) as u32,
            (f.y1 - f.y0).round().max(1.0) as u32,
        );
        draw_hollow_rect_mut(&mut out, Rect::at(x, y).of_size(w, h), *color);
        draw_hollow_rect_mut(
            &mut out,
            Rect::at(x + 1, y + 1).of_size(w.saturating_sub(2).max(1), h.saturating_sub(2).max(1)),
            *color,
        );
        for k in &f.landmarks {
            draw_filled_circle_mut(
                &mut out,
                (k[0].round() as i32, k[1].round() as i32),
                1,
                Rgb([0, 200, 255]),
            );
        }
        for k in &f.keypoints {
            draw_filled_circle_mut(
                &mut out,
                (k[0].round() as i32, k[1].round() as i32),
                2,
                Rgb([255, 220, 0]),
            );
        }
        if let (Some(text), Some(font)) = (label, &font) {
            let scale = PxScale::from(size);
            let (tw, th) = text_size(scale, font, text);
            let ty = (y - th as i32 - 4).max(0);
            draw_filled_rect_mut(&mut out, Rect::at(x, ty).of_size(tw + 6, th + 4), *color);
            draw_text_mut(
                &mut out,
                Rgb([255, 255, 255]),
                x + 3,
                ty + 1,
                scale,
                font,
                text,
            );
        }
    }
    out
}

/// A square JPEG thumbnail of a face (the box with a 20% margin, `size` pixels a side), for
/// galleries and the web UI.
pub fn face_thumbnail(img: &RgbImage, f: &FaceBox, size: u32) -> crate::Result<Vec<u8>> {
    let side = ((f.x1 - f.x0).max(f.y1 - f.y0) * 1.4).max(1.0);
    let [cx, cy] = f.centre();
    let x0 = (cx - side / 2.0).clamp(0.0, img.width().saturating_sub(1) as f32) as u32;
    let y0 = (cy - side / 2.0).clamp(0.0, img.height().saturating_sub(1) as f32) as u32;
    let w = (side as u32).clamp(1, img.width() - x0);
    let h = (side as u32).clamp(1, img.height() - y0);
    let crop = image::imageops::crop_imm(img, x0, y0, w, h).to_image();
    let thumb = image::imageops::resize(&crop, size, size, image::imageops::FilterType::Triangle);
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
        .encode_image(&thumb)
        .map_err(|e| crate::Error::InvalidArgument(format!("encoding a thumbnail: {e}")))?;
    Ok(out)
}
