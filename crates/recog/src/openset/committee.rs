//! The embedding a digit recognizer is fit on: one checkpoint, or a committee of checkpoints.
//!
//! A committee is several embedding networks trained alike with different seeds ("deep
//! ensembles": Lakshminarayanan, Pritzel and Blundell, "Simple and Scalable Predictive
//! Uncertainty Estimation using Deep Ensembles", NeurIPS 2017). Each image is embedded by every
//! member, and the members' embeddings are concatenated and scaled by `1/sqrt(M)`: unit-length
//! members give a unit-length committee embedding whose squared distance is the mean of the
//! members' squared distances. Every decision rule then works unchanged on it. (The rule
//! that combines scores is [`super::Method::Ensemble`]; "committee" names the networks.)
//!
//! A committee may also embed several [`Views`] of each image (test-time augmentation: the
//! image and its one-pixel shifts), concatenated the same way; one checkpoint with views is
//! a committee of one.
//!
//! A committee lives in a folder holding [`COMMITTEE_FILE`], which lists its members and the
//! SHA-256 of each one's weights, so a member trained again afterwards is refused. Every
//! command that takes a checkpoint folder for digits (`fit`, `predict`, `eval`, `eval-logo`)
//! takes a committee folder too.
//!
//! ```no_run
//! use recog::openset::committee::{CommitteeParams, DigitEmbedder};
//! let p = CommitteeParams::new(vec!["runs/a".into(), "runs/b".into()], "runs/ab".into());
//! let report = p.check()?.run()?;
//! let e = DigitEmbedder::load(&report.folder, &recog::default_device())?;
//! assert_eq!(e.dim, report.dim);
//! # Ok::<(), recog::Error>(())
//! ```

use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::unknowns::Generator;
use crate::data::{Dataset, UnknownSource};
use crate::nn::EmbeddingNet;
use crate::train::{CheckpointDir, TrainConfig};
use crate::{Device, Error, Progress, Result};

/// The file in a committee folder that lists the members.
pub const COMMITTEE_FILE: &str = "committee.json";

/// One member as [`COMMITTEE_FILE`] records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The member's checkpoint folder, relative to the committee folder when they share a
    /// root (so that the two can move together), else absolute.
    pub checkpoint: PathBuf,
    /// SHA-256 of its `model.bpk` when the committee was formed.
    pub sha256: String,
}

/// [`COMMITTEE_FILE`]'s content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeFile {
    /// Format version (1).
    pub version: u32,
    /// The members, in the order their embeddings are concatenated.
    pub members: Vec<Member>,
    /// The views of each image every member embeds (files written before views existed
    /// read as [`Views::One`]).
    #[serde(default)]
    pub views: Views,
}

/// Which views of an image are embedded: test-time augmentation, whose embeddings are
/// concatenated like members' (so the squared distance is the mean over views and members).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "kebab-case")]
pub enum Views {
    /// The image as given.
    #[default]
    One,
    /// The image and its four one-pixel shifts (left, right, up, down), the shifts the
    /// training's augmentation draws from.
    Shift1,
}

impl Views {
    /// The `(dx, dy)` pixel shift of each view, the identity first.
    pub fn shifts(self) -> &'static [(i32, i32)] {
        match self {
            Views::One => &[(0, 0)],
            Views::Shift1 => &[(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1)],
        }
    }
}

/// `data` with every image moved by `(dx, dy)` pixels, uncovered pixels background.
pub fn shifted(data: &Dataset, (dx, dy): (i32, i32)) -> Dataset {
    let (h, w) = (data.height, data.width);
    let mut pixels = vec![0u8; data.pixels.len()];
    if h > 0 && w > 0 {
        for (src, dst) in data.pixels.chunks(h * w).zip(pixels.chunks_mut(h * w)) {
            crate::train::augment::shift_image(src, dst, h, w, i64::from(dx), i64::from(dy));
        }
    }
    Dataset {
        pixels,
        labels: data.labels.clone(),
        height: h,
        width: w,
        classes: data.classes.clone(),
    }
}

/// An embedding from one checkpoint or a committee, with what fitting and evaluation need to
/// know about its training.
pub struct DigitEmbedder {
    nets: Vec<EmbeddingNet>,
    /// The views of each image every member embeds.
    pub views: Views,
    /// Embedding dimension (the sum of the members', times the number of views).
    pub dim: usize,
    /// Whether the embeddings are unit-length.
    pub normalized: bool,
    /// The first member's training seed (seeds the recognizer's head).
    pub seed: u64,
    /// Every outlier-exposure source any member's training used.
    pub unknown: Vec<UnknownSource>,
    /// Each member's `--limit` (`None`: it trained on every digit).
    pub train_limits: Vec<Option<usize>>,
    /// The file whose SHA-256 a recognizer records: the checkpoint's weights, or the
    /// committee file (which holds every member's).
    pub identity: PathBuf,
}

impl DigitEmbedder {
    /// Loads `folder`: a committee when it holds [`COMMITTEE_FILE`], else one checkpoint.
    pub fn load(folder: &Path, device: &Device) -> Result<Self> {
        let file = folder.join(COMMITTEE_FILE);
        if !file.exists() {
            let ck = CheckpointDir::new(folder);
            let (cfg, net) = ck.load_model(device)?;
            return Ok(Self::from_members(vec![(cfg, net)], Views::One, ck.model()));
        }
        let c: CommitteeFile = crate::train::read_json(&file)?;
        if c.members.is_empty() {
            return Err(Error::Checkpoint {
                path: file,
                problem: "the committee has no members".into(),
            });
        }
        let mut members = Vec::new();
        for m in &c.members {
            let dir = folder.join(&m.checkpoint);
            if dir.join(COMMITTEE_FILE).exists() {
                return Err(Error::Checkpoint {
                    path: file,
                    problem: format!("member {} is itself a committee", dir.display()),
                });
            }
            let ck = CheckpointDir::new(&dir);
            let (cfg, net) = ck.load_model(device)?;
            let sha = crate::digest::sha256_file(&ck.model())?;
            if sha != m.sha256 {
                return Err(Error::Checkpoint {
                    path: file,
                    problem: format!(
                        "member {} was trained again after the committee was formed (sha256 {}…, recorded {}…); form it again with `recog digits committee`",
                        dir.display(),
                        crate::digest::short(&sha),
                        crate::digest::short(&m.sha256)
                    ),
                });
            }
            members.push((cfg, net));
        }
        Ok(Self::from_members(members, c.views, file))
    }

    fn from_members(
        members: Vec<(TrainConfig, EmbeddingNet)>,
        views: Views,
        identity: PathBuf,
    ) -> Self {
        let mut unknown: Vec<UnknownSource> = Vec::new();
        for (cfg, _) in &members {
            for s in cfg.unknown.iter().flat_map(|u| &u.sources) {
                if !unknown.contains(s) {
                    unknown.push(s.clone());
                }
            }
        }
        Self {
            dim: members.iter().map(|(c, _)| c.net.dim).sum::<usize>() * views.shifts().len(),
            views,
            normalized: members.iter().all(|(c, _)| c.net.normalize),
            seed: members.first().map_or(0, |(c, _)| c.seed),
            unknown,
            train_limits: members.iter().map(|(c, _)| c.train_limit).collect(),
            identity,
            nets: members.into_iter().map(|(_, n)| n).collect(),
        }
    }

    /// The generators any member's outlier exposure used.
    pub fn seen_generators(&self) -> Vec<Generator> {
        self.unknown
            .iter()
            .filter_map(UnknownSource::generator)
            .collect()
    }

    /// Whether every member's training left out the last `calibration` of `n` training
    /// digits ([`super::tasks::calibration_unseen`]).
    pub fn calibration_unseen(&self, n: usize, calibration: usize) -> bool {
        self.train_limits
            .iter()
            .all(|&l| super::tasks::limit_leaves_out(l, n, calibration))
    }

    /// Embeds every image of `data`, `[n][dim]` row-major: for each view in turn, each
    /// member's embedding in member order, all scaled by `1/sqrt(views * members)`.
    pub fn embed_dataset(
        &self,
        data: &Dataset,
        batch: usize,
        device: &Device,
        progress: &dyn Progress,
    ) -> Vec<f32> {
        if let ([net], Views::One) = (self.nets.as_slice(), self.views) {
            return net.embed_dataset(data, batch, device, progress);
        }
        let mut parts = Vec::new();
        for &shift in self.views.shifts() {
            let moved;
            let view = if shift == (0, 0) {
                data
            } else {
                moved = shifted(data, shift);
                &moved
            };
            for net in &self.nets {
                parts.push(net.embed_dataset(view, batch, device, progress));
            }
        }
        concatenate(&parts, data.len())
    }
}

/// Row `i` of the result is row `i` of every part, in order, scaled by `1/sqrt(parts)`; each
/// part is `[n][d_j]`.
pub fn concatenate(parts: &[Vec<f32>], n: usize) -> Vec<f32> {
    let scale = 1.0 / (parts.len().max(1) as f32).sqrt();
    let dims: Vec<usize> = parts.iter().map(|p| p.len() / n.max(1)).collect();
    let mut out = Vec::with_capacity(n * dims.iter().sum::<usize>());
    for i in 0..n {
        for (p, &d) in parts.iter().zip(&dims) {
            out.extend(p[i * d..(i + 1) * d].iter().map(|v| v * scale));
        }
    }
    out
}

/// `path` relative to `base` when both are absolute and share a root, else `path`.
fn relative_to(path: &Path, base: &Path) -> PathBuf {
    let p: Vec<Component> = path.components().collect();
    let b: Vec<Component> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    if common == 0 {
        return path.to_path_buf();
    }
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c.as_os_str());
    }
    out
}

/// Forming a committee.
#[derive(Debug, Clone)]
pub struct CommitteeParams {
    /// The member checkpoint folders (`recog train --out`), two or more.
    pub members: Vec<PathBuf>,
    /// The committee folder to write [`COMMITTEE_FILE`] into.
    pub folder: PathBuf,
    /// The views of each image every member embeds.
    pub views: Views,
}

impl CommitteeParams {
    /// The members and the folder, each image embedded as given.
    pub fn new(members: Vec<PathBuf>, folder: PathBuf) -> Self {
        Self {
            members,
            folder,
            views: Views::One,
        }
    }

    /// At least two members (one is enough with more than one view), none repeated.
    pub fn check(self) -> Result<ValidCommitteeParams> {
        if self.members.is_empty() || (self.members.len() < 2 && self.views == Views::One) {
            return Err(Error::InvalidArgument(
                "a committee needs at least two checkpoints (--model a --model b), or one with --views".into(),
            ));
        }
        for (i, m) in self.members.iter().enumerate() {
            if self.members[..i].contains(m) {
                return Err(Error::InvalidArgument(format!(
                    "checkpoint {} is given twice",
                    m.display()
                )));
            }
        }
        Ok(ValidCommitteeParams(self))
    }
}

/// Checked [`CommitteeParams`].
#[derive(Debug, Clone)]
pub struct ValidCommitteeParams(CommitteeParams);

/// What forming a committee wrote.
#[derive(Debug, Clone, Serialize)]
pub struct CommitteeReport {
    /// The committee folder.
    pub folder: PathBuf,
    /// Its [`COMMITTEE_FILE`].
    pub file: PathBuf,
    /// The members as recorded.
    pub members: Vec<Member>,
    /// The views of each image every member embeds.
    pub views: Views,
    /// The committee embedding's dimension.
    pub dim: usize,
}

impl ValidCommitteeParams {
    /// Reads each member's configuration and hashes its weights (so a committee of missing
    /// checkpoints is refused now, not at fitting) and writes the committee file.
    pub fn run(&self) -> Result<CommitteeReport> {
        let p = &self.0;
        std::fs::create_dir_all(&p.folder).map_err(|e| Error::io(&p.folder, e))?;
        let base = std::fs::canonicalize(&p.folder).map_err(|e| Error::io(&p.folder, e))?;
        let mut members = Vec::new();
        let mut dim = 0usize;
        let mut size = None;
        for m in &p.members {
            if m.join(COMMITTEE_FILE).exists() {
                return Err(Error::InvalidArgument(format!(
                    "{} is a committee; give its members instead",
                    m.display()
                )));
            }
            let ck = CheckpointDir::new(m);
            let cfg = ck.read_config()?;
            let first = *size.get_or_insert(cfg.net.input_size);
            if first != cfg.net.input_size {
                return Err(Error::InvalidArgument(format!(
                    "{} takes {}-pixel images, the first member {first}-pixel ones",
                    m.display(),
                    cfg.net.input_size,
                )));
            }
            dim = cfg
                .net
                .dim
                .checked_mul(p.views.shifts().len())
                .and_then(|d| d.checked_add(dim))
                .ok_or_else(|| Error::InvalidArgument("the members' dimensions overflow".into()))?;
            let sha = crate::digest::sha256_file(&ck.model())?;
            let abs = std::fs::canonicalize(m).map_err(|e| Error::io(m, e))?;
            members.push(Member {
                checkpoint: relative_to(&abs, &base),
                sha256: sha,
            });
        }
        let file = p.folder.join(COMMITTEE_FILE);
        let c = CommitteeFile {
            version: 1,
            members: members.clone(),
            views: p.views,
        };
        let text = serde_json::to_string_pretty(&c).map_err(|e| Error::Json {
            path: file.clone(),
            source: e,
        })?;
        std::fs::write(&file, text).map_err(|e| Error::io(&file, e))?;
        Ok(CommitteeReport {
            folder: p.folder.clone(),
            file,
            members,
            views: p.views,
            dim,
        })
    }
}

impl std::fmt::Display for CommitteeReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "committee of {} checkpoint{}, {}-d embedding: {}",
            self.members.len(),
            if self.members.len() == 1 { "" } else { "s" },
            self.dim,
            self.file.display()
        )?;
        for m in &self.members {
            write!(
                f,
                "\n  {} (sha256 {}…)",
                m.checkpoint.display(),
                crate::digest::short(&m.sha256)
            )?;
        }
        let n = self.views.shifts().len();
        if n > 1 {
            write!(
                f,
                "\n  each image embedded in {n} views (itself and its one-pixel shifts)"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committee_rows_are_members_rows_scaled_to_unit_length() {
        // Two members, three images, unit-length 2-d embeddings.
        let a = vec![1.0, 0.0, 0.0, 1.0, 0.6, 0.8];
        let b = vec![0.0, 1.0, 1.0, 0.0, 0.8, 0.6];
        let c = concatenate(&[a, b], 3);
        assert_eq!(c.len(), 12);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert_eq!(&c[..4], &[s, 0.0, 0.0, s]);
        for row in c.chunks(4) {
            let n: f32 = row.iter().map(|v| v * v).sum();
            assert!((n - 1.0).abs() < 1e-6);
        }
        // Squared distance is the mean of the members' squared distances.
        let d2 =
            |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| (p - q) * (p - q)).sum::<f32>();
        let (r0, r1) = (&c[0..4], &c[4..8]);
        assert!((d2(r0, r1) - (2.0 + 2.0) / 2.0).abs() < 1e-6);
    }

    #[test]
    fn member_paths_are_kept_relative_to_the_committee() {
        let rel = relative_to(Path::new("/w/runs/a"), Path::new("/w/runs/ab"));
        assert_eq!(rel, PathBuf::from("../a"));
        assert_eq!(
            relative_to(Path::new("rel/a"), Path::new("/w")),
            PathBuf::from("rel/a")
        );
    }

    #[test]
    fn a_shifted_view_moves_the_ink_and_fills_with_background() {
        // One 3x3 image with ink in the centre column, rows 0..3 = 1..=9.
        let d = Dataset::new((1..=9).collect(), vec![0], 3, 3, vec!["0".into()]).unwrap();
        assert_eq!(shifted(&d, (0, 0)).pixels, d.pixels);
        assert_eq!(shifted(&d, (1, 0)).pixels, vec![0, 1, 2, 0, 4, 5, 0, 7, 8]);
        assert_eq!(shifted(&d, (-1, 0)).pixels, vec![2, 3, 0, 5, 6, 0, 8, 9, 0]);
        assert_eq!(shifted(&d, (0, 1)).pixels, vec![0, 0, 0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(shifted(&d, (0, -1)).pixels, vec![4, 5, 6, 7, 8, 9, 0, 0, 0]);
        assert_eq!(shifted(&d, (5, 0)).pixels, vec![0; 9]);
        assert_eq!(Views::Shift1.shifts().len(), 5);
        assert_eq!(Views::Shift1.shifts()[0], (0, 0));
    }

    #[test]
    fn a_committee_file_written_before_views_existed_reads_as_one_view() {
        let old = r#"{"version": 1, "members": [{"checkpoint": "../a", "sha256": "00"}]}"#;
        let c: CommitteeFile = serde_json::from_str(old).unwrap();
        assert_eq!(c.views, Views::One);
        let new = r#"{"version": 1, "members": [], "views": "shift1"}"#;
        let c: CommitteeFile = serde_json::from_str(new).unwrap();
        assert_eq!(c.views, Views::Shift1);
    }

    #[test]
    fn a_committee_needs_two_different_members() {
        let one = CommitteeParams::new(vec!["a".into()], "c".into());
        assert!(one.check().is_err());
        let none = CommitteeParams {
            views: Views::Shift1,
            ..CommitteeParams::new(vec![], "c".into())
        };
        assert!(none.check().is_err());
        let one_with_views = CommitteeParams {
            views: Views::Shift1,
            ..CommitteeParams::new(vec!["a".into()], "c".into())
        };
        assert!(one_with_views.check().is_ok());
        let twice = CommitteeParams::new(vec!["a".into(), "a".into()], "c".into());
        assert!(twice.check().is_err());
    }
}
