//! Face tracks across frames and identity votes over them, so a label does not flicker when
//! one frame's embedding lands on the wrong side of the threshold.
//!
//! Detections are matched to tracks greedily by box overlap (IoU), highest first, as in
//! SORT's association step without the motion model: at webcam frame rates a face moves
//! little between frames. As in DeepSORT, appearance gates the match: a detection whose
//! embedding is farther than `verification_distance` from the track's last one is another person (a cut,
//! or someone stepping in front) and starts a new track instead of inheriting the old votes.
//!
//! ```
//! use recog::face::FaceBox;
//! use recog::video::track::{Detection, Tracker, TrackerConfig};
//! let face = FaceBox { x0: 0.0, y0: 0.0, x1: 10.0, y1: 10.0, score: 1.0, keypoints: vec![], landmarks: vec![] };
//! let mut t = Tracker::new(TrackerConfig::default());
//! let det = |name: Option<&str>| Detection { face: face.clone(), answer: name.map(String::from), embedding: vec![] };
//! t.update(&[det(Some("ada"))]);
//! t.update(&[det(Some("ada"))]);
//! // One odd frame does not change the track's vote.
//! let out = t.update(&[det(None)]);
//! assert_eq!(out[0].label.as_deref(), Some("ada"));
//! assert_eq!(out[0].track, 1);
//! ```

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::face::FaceBox;

/// Tracker settings.
#[derive(Debug, Clone, Copy)]
pub struct TrackerConfig {
    /// Answers remembered per track for the vote.
    pub window: usize,
    /// Minimum IoU between a track's last box and a detection to continue the track.
    pub min_iou: f32,
    /// Frames a track survives without a detection.
    pub max_missed: usize,
    /// Largest Euclidean distance between a track's last embedding and a detection's for
    /// them to be the same face (`None`: boxes only).
    pub verification_distance: Option<f32>,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            window: 15,
            min_iou: 0.3,
            max_missed: 10,
            verification_distance: Some(crate::face::DLIB_VERIFICATION_DISTANCE),
        }
    }
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    face: FaceBox,
    embedding: Vec<f32>,
    votes: VecDeque<Option<String>>,
    missed: usize,
}

/// One face of a frame, as the tracker sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The box.
    pub face: FaceBox,
    /// This frame's answer (`None`: unknown).
    pub answer: Option<String>,
    /// The face's embedding (empty: no appearance gating for it).
    pub embedding: Vec<f32>,
}

/// A detection's place in a track and the track's voted identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    /// Track number, stable while the face stays in view.
    pub track: u64,
    /// The most frequent answer over the track's recent frames (`None`: unknown).
    pub label: Option<String>,
    /// How many of the remembered answers agree with `label`.
    pub agree: usize,
    /// How many answers are remembered.
    pub votes: usize,
}

/// Tracks faces over a video.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    cfg: TrackerConfig,
    tracks: Vec<Track>,
    next: u64,
}

impl Tracker {
    /// A tracker with these settings.
    pub fn new(cfg: TrackerConfig) -> Self {
        Self {
            cfg: TrackerConfig {
                window: cfg.window.max(1),
                ..cfg
            },
            tracks: Vec::new(),
            next: 1,
        }
    }

    /// Live tracks.
    pub fn len(&self) -> usize {
        self.tracks.len()
    }

    /// Whether no track is live.
    pub fn is_empty(&self) -> bool {
        self.tracks.is_empty()
    }

    /// Feeds one frame's detections with their per-frame answers; returns, in the same order,
    /// each detection's track and voted label.
    pub fn update(&mut self, dets: &[Detection]) -> Vec<Tracked> {
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (d, det) in dets.iter().enumerate() {
            for (t, tr) in self.tracks.iter().enumerate() {
                let iou = tr.face.iou(&det.face);
                let same_look = match self.cfg.verification_distance {
                    Some(j) if !tr.embedding.is_empty() && !det.embedding.is_empty() => {
                        crate::metric::distance::euclidean(&tr.embedding, &det.embedding) <= j
                    }
                    _ => true,
                };
                if iou >= self.cfg.min_iou && same_look {
                    pairs.push((iou, d, t));
                }
            }
        }
        pairs.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut det_track: Vec<Option<usize>> = vec![None; dets.len()];
        let mut used = vec![false; self.tracks.len()];
        for (_, d, t) in pairs {
            if det_track[d].is_none() && !used[t] {
                det_track[d] = Some(t);
                used[t] = true;
            }
        }
        for (t, tr) in self.tracks.iter_mut().enumerate() {
            if !used[t] {
                tr.missed += 1;
            }
        }
        let mut slots = Vec::with_capacity(dets.len());
        for (d, det) in dets.iter().enumerate() {
            let t = match det_track[d] {
                Some(t) => t,
                None => {
                    self.tracks.push(Track {
                        id: self.next,
                        face: det.face.clone(),
                        embedding: Vec::new(),
                        votes: VecDeque::new(),
                        missed: 0,
                    });
                    self.next += 1;
                    self.tracks.len() - 1
                }
            };
            let tr = &mut self.tracks[t];
            tr.face = det.face.clone();
            tr.embedding = det.embedding.clone();
            tr.missed = 0;
            tr.votes.push_back(det.answer.clone());
            while tr.votes.len() > self.cfg.window {
                tr.votes.pop_front();
            }
            slots.push(t);
        }
        let out = slots.iter().map(|&t| vote(&self.tracks[t])).collect();
        let max_missed = self.cfg.max_missed;
        self.tracks.retain(|t| t.missed <= max_missed);
        out
    }
}

/// Majority over the remembered answers; a tie goes to the answer seen most recently.
fn vote(t: &Track) -> Tracked {
    let mut best: Option<(&Option<String>, usize, usize)> = None;
    for (i, v) in t.votes.iter().enumerate() {
        let n = t.votes.iter().filter(|w| *w == v).count();
        if best.is_none_or(|(_, bn, bi)| n > bn || (n == bn && i > bi)) {
            best = Some((v, n, i));
        }
    }
    let (label, agree) = best.map_or((None, 0), |(v, n, _)| (v.clone(), n));
    Tracked {
        track: t.id,
        label,
        agree,
        votes: t.votes.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(x: f32) -> FaceBox {
        FaceBox {
            x0: x,
            y0: 0.0,
            x1: x + 10.0,
            y1: 10.0,
            score: 1.0,
            keypoints: vec![],
            landmarks: vec![],
        }
    }

    fn s(n: &str) -> Option<String> {
        Some(n.to_string())
    }

    fn d(x: f32, answer: Option<String>) -> Detection {
        Detection {
            face: b(x),
            answer,
            embedding: vec![],
        }
    }

    #[test]
    fn a_single_wrong_frame_does_not_flip_the_label() {
        let mut t = Tracker::new(TrackerConfig {
            window: 5,
            ..Default::default()
        });
        for _ in 0..3 {
            assert_eq!(t.update(&[d(0.0, s("ann"))])[0].label, s("ann"));
        }
        // One frame says bob, the next unknown: the track stays ann (3 of 5 votes).
        let r = t.update(&[d(1.0, s("bob"))]);
        assert_eq!(
            (r[0].label.clone(), r[0].agree, r[0].votes),
            (s("ann"), 3, 4)
        );
        let r = t.update(&[d(2.0, None)]);
        assert_eq!((r[0].track, r[0].label.clone()), (1, s("ann")));
        // Once bob holds the majority of the window, the label follows.
        t.update(&[d(2.0, s("bob"))]);
        let r = t.update(&[d(2.0, s("bob"))]);
        assert_eq!(r[0].label, s("bob"));
    }

    #[test]
    fn two_faces_keep_their_tracks_and_lost_tracks_end() {
        let mut t = Tracker::new(TrackerConfig {
            max_missed: 1,
            ..Default::default()
        });
        let r = t.update(&[d(0.0, s("a")), d(100.0, s("b"))]);
        assert_eq!((r[0].track, r[1].track), (1, 2));
        // Listed in the other order and moved a little: same tracks.
        let r = t.update(&[d(101.0, s("b")), d(1.0, s("a"))]);
        assert_eq!((r[0].track, r[1].track), (2, 1));
        t.update(&[]);
        assert_eq!(t.len(), 2);
        t.update(&[]);
        assert!(t.is_empty());
        // A face appearing after that starts a new track.
        assert_eq!(t.update(&[d(0.0, s("a"))])[0].track, 3);
    }

    /// A cut to another person in the same place: the box overlaps, the embedding jumps by
    /// 1.0 > 0.6, so a new track starts and the old votes do not carry over.
    #[test]
    fn an_appearance_jump_starts_a_new_track() {
        let mut t = Tracker::new(TrackerConfig::default());
        let e = |v: f32, a: &str| Detection {
            face: b(0.0),
            answer: s(a),
            embedding: vec![v, 0.0],
        };
        for _ in 0..5 {
            t.update(&[e(0.0, "ann")]);
        }
        let r = t.update(&[e(0.1, "bob")]);
        assert_eq!((r[0].track, r[0].label.clone()), (1, s("ann")));
        let r = t.update(&[e(1.1, "bob")]);
        assert_eq!((r[0].track, r[0].label.clone()), (2, s("bob")));
    }
}
