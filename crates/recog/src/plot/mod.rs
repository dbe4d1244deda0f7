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
pub use lines::{line_chart, operating_points, operating_points_in_view};
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

    /// The D = 2 `eval-logo` plot (2026-12-06) showed one stray point and no line: every
    /// rule's points lay outside the view cut near the goal. Near the goal the cut stays, so
    /// that one collapsed rule does not flatten the others.
    #[test]
    fn an_operating_point_view_far_from_the_goal_keeps_every_point() {
        let rule = |label: &str, points: Vec<(f64, f64)>| Series {
            label: label.into(),
            points,
        };
        let far = vec![
            rule("both", vec![(87.8, 94.9), (88.2, 94.7), (90.5, 92.6)]),
            rule("energy", vec![(44.5, 97.7), (65.8, 97.3), (77.7, 96.6)]),
        ];
        let kept = operating_points_in_view(&far, (95.0, 99.0));
        assert_eq!(kept, far);
        let near = vec![
            rule("distance", vec![(93.7, 99.0), (95.3, 98.8), (96.0, 98.6)]),
            rule("knn", vec![(0.0, 99.2), (93.3, 98.9), (95.3, 98.4)]),
        ];
        let kept = operating_points_in_view(&near, (95.0, 99.0));
        assert_eq!(kept[0], near[0]);
        assert_eq!(kept[1].points, vec![(93.3, 98.9), (95.3, 98.4)]);
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
