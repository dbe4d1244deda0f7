//! Plots: loss curves, embedding scatters and the digit "sprite" map, histograms, confusion
//! matrices, cluster scatters and picture maps, as PNG or SVG (chosen by the file extension),
//! one file per chart over a shared [`frame`]. Text uses the DejaVu Sans font compiled into
//! the binary.
//!
//! ```
//! use recog::plot::{line_chart, Series};
//! let dir = tempfile::tempdir().unwrap();
//! let s = [Series { label: "train".into(), points: vec![(1.0, 0.5), (2.0, 0.3)] }];
//! line_chart(&dir.path().join("loss.svg"), "Triplet loss", "epoch", "loss", &s).unwrap();
//! ```

pub mod checkpoint;
mod cluster;
mod confusion;
pub mod frame;
mod histogram;
mod lines;
mod picture_map;
mod scatter;
mod sprite;

pub use cluster::cluster_scatter;
pub use confusion::confusion_matrix;
pub use frame::{class_color, Series};
pub use histogram::histogram;
pub use lines::{line_chart, operating_points};
pub use picture_map::picture_map;
pub use scatter::scatter;
pub use sprite::sprite;

#[cfg(test)]
mod tests {
    use super::frame::base64;
    use super::*;

    #[test]
    fn base64_golden() {
        assert_eq!(base64(b"Man"), "TWFu");
        assert_eq!(base64(b"Ma"), "TWE=");
        assert_eq!(base64(b"M"), "TQ==");
    }

    #[test]
    fn plots_write_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        let s = vec![Series {
            label: "train".into(),
            points: vec![(1.0, 0.5), (2.0, 0.3)],
        }];
        for ext in ["png", "svg"] {
            let p = dir.path().join(format!("loss.{ext}"));
            line_chart(&p, "loss", "epoch", "loss", &s).unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 1000);
            let p = dir.path().join(format!("scatter.{ext}"));
            scatter(
                &p,
                "emb",
                &[0.0, 0.0, 1.0, 1.0],
                &[0, 1],
                &["a".into(), "b".into()],
            )
            .unwrap();
            assert!(std::fs::metadata(&p).unwrap().len() > 1000);
            let img = vec![255u8; 4];
            let p = dir.path().join(format!("sprite.{ext}"));
            sprite(&p, &[0.0, 0.0, 1.0, 1.0], &[&img, &img], &[0, 1], 2, 2, 64).unwrap();
            assert!(p.exists());
        }
        assert!(line_chart(&dir.path().join("x.gif"), "", "", "", &s).is_err());
    }
}
