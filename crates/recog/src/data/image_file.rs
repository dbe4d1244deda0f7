//! Reading image files as people have them: the format is taken from the content, never the
//! extension (a WebP saved as `.jpg` is common); EXIF orientation is applied, so a phone photo
//! stored sideways comes out upright; grayscale, 16-bit and alpha images become 8-bit RGB or
//! gray; and every format is held to the same size limits, so a decompression bomb is
//! refused instead of exhausting memory.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let p = dir.path().join("photo.jpg"); // a PNG under a JPEG name
//! image::RgbImage::new(4, 3).save_with_format(&p, image::ImageFormat::Png).unwrap();
//! let img = recog::data::image_file::decode(&p).unwrap();
//! assert_eq!((img.width(), img.height()), (4, 3));
//! ```

use std::io::{BufReader, Cursor};
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use crate::error::{Error, Result};

/// Largest side accepted, in pixels (a 200-megapixel phone photo is about 16,320 wide).
pub const MAX_SIDE: u32 = 20_000;

/// Largest decoded buffer accepted, in bytes.
pub const MAX_ALLOC: u64 = 1 << 30;

/// Largest decoded buffer accepted from an upload or a video frame sent to the server, in
/// bytes: an 85-megapixel RGB photo. The decoder allocates the size a header claims before
/// it reads a pixel, so a few bytes may claim up to this much.
pub const MAX_UPLOAD_ALLOC: u64 = 256 << 20;

/// Decoded bytes any file may take, whatever its size: a 21-megapixel RGB photo.
pub const FREE_ALLOC: u64 = 64 << 20;

/// Above [`FREE_ALLOC`], the largest ratio of decoded to file bytes accepted. Photos are far
/// below it (a JPEG about 10, a PNG of a screenshot about 100, a plain-colour PNG about
/// 1,000); a header that claims a gigabyte in a few hundred bytes is a decompression bomb.
pub const MAX_EXPANSION: u64 = 1024;

/// Whether `decoded` bytes from a file of `file` bytes exceed both [`FREE_ALLOC`] and
/// [`MAX_EXPANSION`] times the file.
fn is_bomb(decoded: u64, file: u64) -> bool {
    decoded > FREE_ALLOC && decoded / MAX_EXPANSION > file
}

/// File extensions (any case) that folder listings treat as images.
pub const EXTENSIONS: [&str; 8] = ["png", "jpg", "jpeg", "webp", "bmp", "tif", "tiff", "gif"];

/// Whether a path names an image file by its extension (the decoder itself looks at the
/// content).
pub fn has_image_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn limits(max_alloc: u64) -> Limits {
    let mut l = Limits::default();
    l.max_image_width = Some(MAX_SIDE);
    l.max_image_height = Some(MAX_SIDE);
    l.max_alloc = Some(max_alloc);
    l
}

/// Decodes an image file by its content (JPEG, PNG, WebP, BMP, TIFF, GIF's first frame)
/// and turns it upright by its EXIF orientation. Errors name the file.
pub fn decode(path: &Path) -> Result<DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_bytes(&bytes).map_err(|problem| Error::Image {
        path: path.to_path_buf(),
        problem,
    })
}

/// [`decode`] for bytes in memory; the error is the decoder's text.
pub fn decode_bytes(bytes: &[u8]) -> std::result::Result<DynamicImage, String> {
    decode_bytes_within(bytes, MAX_ALLOC)
}

/// [`decode_bytes`] with a decoded size of at most `max_alloc` bytes ([`MAX_UPLOAD_ALLOC`]
/// for what clients send).
pub fn decode_bytes_within(
    bytes: &[u8],
    max_alloc: u64,
) -> std::result::Result<DynamicImage, String> {
    let mut reader = ImageReader::new(BufReader::new(Cursor::new(bytes)))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not an image in a supported format (JPEG, PNG, WebP, BMP, TIFF, GIF)".into());
    }
    reader.limits(limits(max_alloc));
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    // `into_decoder` checks the sides, not the buffer `from_decoder` then allocates whole
    // (only `ImageReader::decode` reserves it against `max_alloc`).
    let need = decoder.total_bytes();
    if need > max_alloc {
        return Err(format!(
            "the image would take {need} bytes decoded, over the limit of {max_alloc}"
        ));
    }
    // The decoder also fills a claimed size from almost no data, which costs seconds and
    // gigabytes (the fuzzer's 669-byte JPEG: 7 s, 1.4 GB), so size is checked against the
    // file's too.
    let file = bytes.len() as u64;
    if is_bomb(need, file) {
        return Err(format!(
            "the image would take {need} bytes decoded from a file of {file} bytes, more than \
             {MAX_EXPANSION} times its size: refused as a decompression bomb"
        ));
    }
    // A broken EXIF block is no reason to refuse the pixels.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    if img.width() == 0 || img.height() == 0 {
        return Err("empty image".into());
    }
    img.apply_orientation(orientation);
    Ok(img)
}

/// Reads an image file as upright RGB, by its content ([`decode`]), naming the file on
/// failure.
pub fn load_rgb(path: &Path) -> Result<image::RgbImage> {
    Ok(decode(path)?.to_rgb8())
}

/// Loads an image as grayscale, resized to `height` x `width`, light-on-dark like MNIST
/// (images whose border is lighter than their centre are inverted).
pub fn load_gray(path: &Path, height: usize, width: usize) -> Result<Vec<u8>> {
    let g = decode(path)?.to_luma8();
    if g.width() == 0 || g.height() == 0 {
        return Err(Error::Image {
            path: path.to_path_buf(),
            problem: "empty image".into(),
        });
    }
    let g = image::imageops::resize(
        &g,
        width as u32,
        height as u32,
        image::imageops::FilterType::Triangle,
    );
    let mut px = g.into_raw();
    // MNIST digits are light on dark; the border tells the background.
    if crate::data::mnistify::border_is_light(&px, width, height) {
        px.iter_mut().for_each(|p| *p = 255 - *p);
    }
    Ok(px)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A PNG claiming `w` x `h` RGB pixels, with the pixel data of one row start.
    fn png_header(w: u32, h: u32) -> Vec<u8> {
        let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut chunk = |kind: &[u8], data: &[u8]| {
            out.extend_from_slice(&(data.len() as u32).to_be_bytes());
            let mut crc = flate2::Crc::new();
            crc.update(kind);
            crc.update(data);
            out.extend_from_slice(kind);
            out.extend_from_slice(data);
            out.extend_from_slice(&crc.sum().to_be_bytes());
        };
        let ihdr = [&w.to_be_bytes()[..], &h.to_be_bytes()[..], &[8, 2, 0, 0, 0]].concat();
        chunk(b"IHDR", &ihdr);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut z, &[0; 16]).unwrap();
        chunk(b"IDAT", &z.finish().unwrap());
        chunk(b"IEND", &[]);
        out
    }

    /// The `image_decode` fuzz target peaked at 1.5 GB: a PNG of a few bytes claiming 16,000
    /// x 16,000 pixels (768 MB) was allocated whole, the size limit unchecked on the decoder
    /// path. It is refused by its size now, before any allocation.
    #[test]
    fn an_upload_whose_header_claims_768_mb_is_refused_before_allocating() {
        let bytes = png_header(16_000, 16_000);
        let e = decode_bytes_within(&bytes, MAX_UPLOAD_ALLOC).unwrap_err();
        assert!(e.contains("over the limit"), "{e}");
        let e = decode_bytes_within(&bytes, 700 << 20).unwrap_err();
        assert!(e.contains("over the limit"), "{e}");
        // A 48 MB claim passes the limit and fails on the missing pixels instead.
        let e = decode_bytes_within(&png_header(4_000, 4_000), MAX_UPLOAD_ALLOC).unwrap_err();
        assert!(!e.contains("over the limit"), "{e}");
    }
    /// The image_decode fuzzer's timeout (2026-12-04): a 669-byte JPEG whose header claims
    /// about a gigabyte took 7 s and 1.4 GB to decode, since the decoder fills the claimed
    /// size from almost no data. It is refused by its size against the file's now.
    #[test]
    fn a_669_byte_jpeg_claiming_a_gigabyte_is_refused_as_a_bomb() {
        let bytes = include_bytes!(
            "../../tests/fixtures/fuzz/image_decode_669_byte_jpeg_claiming_1_gb.jpg"
        );
        let e = decode_bytes(bytes).unwrap_err();
        assert!(e.contains("decompression bomb"), "{e}");
        // Sizes a photo can have pass: anything up to 64 MiB, and above it up to 1024
        // times the file (a 600 MB, 200-megapixel photo from a 60 MB file).
        assert!(!is_bomb(FREE_ALLOC, 1));
        assert!(!is_bomb(600 << 20, 60 << 20));
        assert!(!is_bomb(1024 * (1 << 20), 1 << 20));
        assert!(is_bomb(1024 * (1 << 20) + 1024, (1 << 20) - 1));
        assert!(is_bomb(FREE_ALLOC + 1, 669));
    }

    use image::{ImageFormat, Rgb, RgbImage};

    fn sample() -> RgbImage {
        RgbImage::from_fn(6, 4, |x, y| Rgb([(x * 40) as u8, (y * 60) as u8, 7]))
    }

    fn encoded(img: &DynamicImage, f: ImageFormat) -> Vec<u8> {
        let mut c = Cursor::new(Vec::new());
        img.write_to(&mut c, f).unwrap();
        c.into_inner()
    }

    #[test]
    fn every_common_format_decodes_by_content() {
        let img = DynamicImage::ImageRgb8(sample());
        for f in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::WebP,
            ImageFormat::Bmp,
            ImageFormat::Tiff,
            ImageFormat::Gif,
        ] {
            let src = if f == ImageFormat::Gif {
                DynamicImage::ImageRgba8(img.to_rgba8())
            } else {
                img.clone()
            };
            let got = decode_bytes(&encoded(&src, f)).unwrap_or_else(|e| panic!("{f:?}: {e}"));
            assert_eq!((got.width(), got.height()), (6, 4), "{f:?}");
        }
    }

    #[test]
    fn gray_16_bit_and_alpha_become_rgb() {
        let g16 = DynamicImage::ImageLuma16(image::ImageBuffer::from_pixel(
            3,
            2,
            image::Luma([40_000u16]),
        ));
        let got = decode_bytes(&encoded(&g16, ImageFormat::Png))
            .unwrap()
            .to_rgb8();
        assert_eq!(got.get_pixel(0, 0).0, [156, 156, 156]);
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            2,
            2,
            image::Rgba([10, 20, 30, 0]),
        ));
        let got = decode_bytes(&encoded(&rgba, ImageFormat::Png))
            .unwrap()
            .to_rgb8();
        assert_eq!(got.get_pixel(1, 1).0, [10, 20, 30]);
    }

    #[test]
    fn garbage_and_truncated_files_are_errors_not_panics() {
        assert!(decode_bytes(b"definitely not an image").is_err());
        let png = encoded(&DynamicImage::ImageRgb8(sample()), ImageFormat::Png);
        assert!(decode_bytes(&png[..png.len() / 2]).is_err());
        assert!(decode_bytes(&[]).is_err());
    }

    #[test]
    fn decompression_bomb_header_is_refused_for_every_format() {
        // A PNG whose header claims 100,000 x 100,000 pixels.
        let png = encoded(
            &DynamicImage::ImageRgb8(RgbImage::new(1, 1)),
            ImageFormat::Png,
        );
        let mut bomb = png.clone();
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(decode_bytes(&bomb).is_err());
        // A BMP claiming 30,000 x 30,000.
        let mut bmp = encoded(
            &DynamicImage::ImageRgb8(RgbImage::new(1, 1)),
            ImageFormat::Bmp,
        );
        bmp[18..22].copy_from_slice(&30_000i32.to_le_bytes());
        bmp[22..26].copy_from_slice(&30_000i32.to_le_bytes());
        assert!(decode_bytes(&bmp).is_err());
    }

    /// A JPEG with an EXIF APP1 segment holding only the orientation tag.
    pub(crate) fn jpeg_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
        let jpeg = encoded(&DynamicImage::ImageRgb8(img.clone()), ImageFormat::Jpeg);
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08");
        tiff.extend_from_slice(&1u16.to_be_bytes());
        tiff.extend_from_slice(&0x0112u16.to_be_bytes());
        tiff.extend_from_slice(&3u16.to_be_bytes());
        tiff.extend_from_slice(&1u32.to_be_bytes());
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_be_bytes());
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend(tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend(app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn exif_orientation_turns_a_sideways_photo_upright() {
        // Stored rotated 90 degrees clockwise-to-view (orientation 6): 4 wide, 6 high.
        let upright = sample();
        let stored = image::imageops::rotate270(&upright);
        let got = decode_bytes(&jpeg_with_orientation(&stored, 6))
            .unwrap()
            .to_rgb8();
        assert_eq!((got.width(), got.height()), (6, 4));
        let stored8 = image::imageops::rotate90(&upright);
        let got8 = decode_bytes(&jpeg_with_orientation(&stored8, 8))
            .unwrap()
            .to_rgb8();
        assert_eq!((got8.width(), got8.height()), (6, 4));
        // The bright corner (x = 5, top) is back at the top right.
        let tr = got.get_pixel(5, 0).0[0] as i32;
        let bl = got.get_pixel(0, 3).0[0] as i32;
        assert!(tr > bl + 100, "{tr} {bl}");
    }
}
