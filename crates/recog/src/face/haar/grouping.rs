//! OpenCV's `groupRectangles`: merging overlapping detections.

/// OpenCV's `groupRectangles`: clusters of similar rectangles (eps) with more than
/// `min_neighbors` members are averaged; rectangles inside a stronger one are dropped.
pub fn group_rectangles(
    rects: &[[f32; 4]],
    min_neighbors: usize,
    eps: f32,
) -> Vec<([f32; 4], usize)> {
    let n = rects.len();
    let mut label: Vec<usize> = (0..n).collect();
    fn find(l: &mut [usize], i: usize) -> usize {
        let mut r = i;
        while l[r] != r {
            r = l[r];
        }
        let mut j = i;
        while l[j] != r {
            let next = l[j];
            l[j] = r;
            j = next;
        }
        r
    }
    let similar = |a: &[f32; 4], b: &[f32; 4]| {
        let delta = eps * (a[2].min(b[2]) + a[3].min(b[3])) * 0.5;
        (a[0] - b[0]).abs() <= delta
            && (a[1] - b[1]).abs() <= delta
            && (a[0] + a[2] - b[0] - b[2]).abs() <= delta
            && (a[1] + a[3] - b[1] - b[3]).abs() <= delta
    };
    for i in 0..n {
        for j in i + 1..n {
            if similar(&rects[i], &rects[j]) {
                let (a, b) = (find(&mut label, i), find(&mut label, j));
                if a != b {
                    label[a] = b;
                }
            }
        }
    }
    let mut sums: std::collections::BTreeMap<usize, ([f32; 4], usize)> = Default::default();
    for (i, rect) in rects.iter().enumerate() {
        let r = find(&mut label, i);
        let e = sums.entry(r).or_insert(([0.0; 4], 0));
        for (acc, v) in e.0.iter_mut().zip(rect) {
            *acc += v;
        }
        e.1 += 1;
    }
    let clusters: Vec<([f32; 4], usize)> = sums
        .into_values()
        .filter(|(_, c)| *c > min_neighbors)
        .map(|(s, c)| (s.map(|v| v / c as f32), c))
        .collect();
    // Drop a cluster that lies inside another one with at least as many members.
    clusters
        .iter()
        .enumerate()
        .filter(|(i, (r1, n1))| {
            !clusters.iter().enumerate().any(|(j, (r2, n2))| {
                if *i == j || *n2 < (*n1).max(3) {
                    return false;
                }
                let dx = r2[2] * 0.2;
                let dy = r2[3] * 0.2;
                r1[0] >= r2[0] - dx
                    && r1[1] >= r2[1] - dy
                    && r1[0] + r1[2] <= r2[0] + r2[2] + dx
                    && r1[1] + r1[3] <= r2[1] + r2[3] + dy
            })
        })
        .map(|(_, c)| *c)
        .collect()
}
