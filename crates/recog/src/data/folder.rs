//! Labelled image folders: `root/<class>/<image>` (JPEG, PNG, WebP, BMP, TIFF, GIF).
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::create_dir(dir.path().join("ada")).unwrap();
//! std::fs::write(dir.path().join("ada/1.jpg"), b"").unwrap();
//! let people = recog::data::folder::people(dir.path()).unwrap();
//! assert_eq!(people[0].0, "ada");
//! assert!(recog::data::folder::is_image("x.JPEG".as_ref()));
//! ```

use std::path::{Path, PathBuf};

use crate::data::{image_file, Dataset};
use crate::error::{Error, Result};

/// Whether a path names an image file by its extension, any case
/// ([`image_file::EXTENSIONS`]); decoding itself goes by content.
pub fn is_image(p: &Path) -> bool {
    image_file::has_image_extension(p)
}

/// Every image of every sub-folder of `root` (`<person>/<photo>`), in path order.
pub fn person_images(root: &Path) -> Result<Vec<PathBuf>> {
    Ok(people(root)?.into_iter().flat_map(|(_, f)| f).collect())
}

/// The sub-folders of `root` (one per person or class) with their image files, both sorted
/// by name. Files directly in `root` are not included.
pub fn people(root: &Path) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).map_err(|e| Error::io(root, e))? {
        let dir = e.map_err(|e| Error::io(root, e))?.path();
        if !dir.is_dir() {
            continue;
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .filter_map(|f| f.ok().map(|f| f.path()))
            .filter(|f| is_image(f))
            .collect();
        files.sort();
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        out.push((name, files));
    }
    out.sort();
    Ok(out)
}

/// Every image file under `root`, at any depth, sorted by path.
pub fn images_under(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(|e| Error::io(&dir, e))? {
            let p = e.map_err(|e| Error::io(&dir, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if is_image(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Reads every image under `root/<class>/`, classes sorted by name.
pub fn read_image_folder(root: &Path, height: usize, width: usize) -> Result<Dataset> {
    let rd = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    let mut classes: Vec<String> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(|s| s.to_string()))
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no class sub-folders (expected {}/<class>/<image>.png)",
            root.display(),
            root.display()
        )));
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (ci, c) in classes.iter().enumerate() {
        let dir = root.join(c);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| Error::io(&dir, e))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| is_image(p))
            .collect();
        files.sort();
        for f in files {
            pixels.extend(image_file::load_gray(&f, height, width)?);
            labels.push(ci as u32);
        }
    }
    if labels.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "{}: no PNG or JPEG images in the class folders",
            root.display()
        )));
    }
    Dataset::new(pixels, labels, height, width, classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_classes_and_inverts_dark_on_light() {
        let dir = tempfile::tempdir().unwrap();
        for (c, v) in [("a", 0u8), ("b", 255u8)] {
            std::fs::create_dir(dir.path().join(c)).unwrap();
            let mut img = image::GrayImage::from_pixel(10, 10, image::Luma([255 - v]));
            img.put_pixel(5, 5, image::Luma([v]));
            img.save(dir.path().join(c).join("x.png")).unwrap();
        }
        let d = read_image_folder(dir.path(), 28, 28).unwrap();
        assert_eq!(d.classes, vec!["a", "b"]);
        assert_eq!(d.len(), 2);
        // class a: white background, black dot -> inverted to black background
        assert!(d.image(0)[0] < 10);
        assert!(d.image(1)[0] < 10);
    }

    #[test]
    fn empty_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_image_folder(dir.path(), 28, 28).is_err());
    }
}
