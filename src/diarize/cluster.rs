//! Speakers from window embeddings: spectral clustering on cosine similarity (Ng, Jordan & Weiss
//! 2001, with the row pruning of Wang et al. 2018 "Speaker diarization with LSTM" that GE2E
//! embeddings were made for).
//!
//! 1. Affinity: cosine similarity of every pair of windows; each row keeps its
//!    [`KEEP_FRACTION`] most similar entries (others 0), symmetrised, negatives cut to 0.
//! 2. Normalised Laplacian `I − D^-½ A D^-½`, its eigenvalues by cyclic Jacobi.
//! 3. The speaker count `k` is the largest gap between consecutive smallest eigenvalues
//!    ("eigengap") within the bounds asked for, or exactly `num_speakers`.
//! 4. k-means (farthest-point start, deterministic) on the rows of the `k` first eigenvectors.
//! 5. Clusters whose centroids are nearly the same voice ([`MERGE_SIMILARITY`]) are merged: the
//!    eigengap alone cannot say "one speaker", and over-splits a voice whose windows vary.
//!
//! Measured on constructed conversations of real speakers (bench/diarize.py), thresholding
//! agglomerative clustering merged similar voices that this keeps apart. Beyond [`MAX_POINTS`]
//! windows an even subsample is clustered and the rest join the nearest cluster centroid, so
//! the cost stays bounded (Jacobi is cubic) however long the audio.

/// Share of each affinity row kept (the rest pruned to 0).
pub const KEEP_FRACTION: f32 = 0.2;
/// At most this many windows are clustered directly.
pub const MAX_POINTS: usize = 300;
/// Speakers found at most when no bound is given.
pub const DEFAULT_MAX_SPEAKERS: usize = 8;
/// With this few windows there is one speaker (nothing to compare).
const MIN_POINTS: usize = 4;
/// Clusters whose centroids are this similar (cosine) are one voice split in two, and merged
/// (while the count stays ≥ the minimum asked for). Measured with this encoder on the benchmark's
/// real speakers: two halves of one speaker's windows 0.97–0.998, two speakers 0.47–0.84.
pub const MERGE_SIMILARITY: f32 = 0.93;
/// Below this many windows (about 19 s of speech) clusters are small and their centroids noisy:
/// one speaker's 11–14 s split into clusters 0.77–0.89 apart (Kennedy, vk5qi), so they merge at
/// [`SHORT_MERGE_SIMILARITY`] instead.
pub const SHORT_POINTS: usize = 24;
pub const SHORT_MERGE_SIMILARITY: f32 = 0.75;

/// Bounds on the speaker count (`num_speakers` sets both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpeakerCount {
    pub min: usize,
    pub max: usize,
}

impl Default for SpeakerCount {
    fn default() -> Self {
        SpeakerCount { min: 1, max: DEFAULT_MAX_SPEAKERS }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One label per embedding (0-based, in no particular order). Embeddings are L2-normalised.
pub fn cluster(embeddings: &[&[f32]], count: SpeakerCount) -> Vec<usize> {
    let n = embeddings.len();
    if n == 0 {
        return Vec::new();
    }
    if n > MAX_POINTS {
        let picked: Vec<&[f32]> = (0..MAX_POINTS).map(|i| embeddings[i * n / MAX_POINTS]).collect();
        let labels = cluster(&picked, count);
        let k = labels.iter().max().map_or(0, |m| m + 1);
        let centroids: Vec<Vec<f32>> = (0..k)
            .map(|c| {
                let mut sum = vec![0.0; picked[0].len()];
                for (p, _) in picked.iter().zip(&labels).filter(|(_, &l)| l == c) {
                    sum.iter_mut().zip(p.iter()).for_each(|(s, v)| *s += v);
                }
                sum
            })
            .collect();
        return embeddings
            .iter()
            .map(|e| (0..k).max_by(|&a, &b| dot(e, &centroids[a]).total_cmp(&dot(e, &centroids[b]))).unwrap_or(0))
            .collect();
    }
    let max_k = count.max.min(n).max(1);
    if max_k == 1 || (n < MIN_POINTS && count.min <= 1) {
        return vec![0; n];
    }
    let affinity = pruned_affinity(embeddings);
    let laplacian = normalised_laplacian(&affinity, n);
    let (values, vectors) = jacobi_eigen(laplacian, n);
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let k = choose_k(&order.iter().map(|&i| values[i]).collect::<Vec<_>>(), count.min.min(max_k), max_k);
    if k == 1 {
        return vec![0; n];
    }
    // Rows of the k first eigenvectors, each normalised.
    let points: Vec<Vec<f64>> = (0..n)
        .map(|r| {
            let row: Vec<f64> = order[..k].iter().map(|&c| vectors[r * n + c]).collect();
            let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-12);
            row.iter().map(|v| v / norm).collect()
        })
        .collect();
    let threshold = if n < SHORT_POINTS { SHORT_MERGE_SIMILARITY } else { MERGE_SIMILARITY };
    merge_similar(embeddings, kmeans(&points, k), count.min, threshold)
}

/// Merges the two most similar clusters while their centroids reach `threshold` and
/// more than `min` remain; labels come back as `0..k'`.
fn merge_similar(e: &[&[f32]], mut labels: Vec<usize>, min: usize, threshold: f32) -> Vec<usize> {
    loop {
        let mut ids: Vec<usize> = labels.clone();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() <= min.max(1) {
            break;
        }
        let centroid = |c: usize| {
            let mut sum = vec![0.0f32; e[0].len()];
            for (x, _) in e.iter().zip(&labels).filter(|(_, &l)| l == c) {
                sum.iter_mut().zip(x.iter()).for_each(|(s, v)| *s += v);
            }
            let n = sum.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            sum.iter().map(|v| v / n).collect::<Vec<f32>>()
        };
        let cs: Vec<Vec<f32>> = ids.iter().map(|&c| centroid(c)).collect();
        let mut best = (f32::MIN, 0, 0);
        for i in 0..ids.len() {
            for j in i + 1..ids.len() {
                let sim = dot(&cs[i], &cs[j]);
                if sim > best.0 {
                    best = (sim, ids[i], ids[j]);
                }
            }
        }
        if best.0 < threshold {
            break;
        }
        labels.iter_mut().filter(|l| **l == best.2).for_each(|l| *l = best.1);
    }
    let mut ids: Vec<usize> = labels.clone();
    ids.sort_unstable();
    ids.dedup();
    labels.iter().map(|l| ids.binary_search(l).unwrap_or(0)).collect()
}

fn pruned_affinity(e: &[&[f32]]) -> Vec<f64> {
    let n = e.len();
    let keep = ((KEEP_FRACTION * n as f32).ceil() as usize).clamp(2, n);
    let mut a = vec![0.0f64; n * n];
    for i in 0..n {
        let row: Vec<f64> = (0..n).map(|j| dot(e[i], e[j]) as f64).collect();
        let mut sorted = row.clone();
        sorted.sort_by(|x, y| y.total_cmp(x));
        let cut = sorted[keep - 1];
        for j in 0..n {
            a[i * n + j] = if row[j] >= cut { row[j].max(0.0) } else { 0.0 };
        }
    }
    let mut s = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            s[i * n + j] = if i == j { 0.0 } else { (a[i * n + j] + a[j * n + i]) / 2.0 };
        }
    }
    s
}

fn normalised_laplacian(a: &[f64], n: usize) -> Vec<f64> {
    let d: Vec<f64> = (0..n).map(|i| 1.0 / a[i * n..(i + 1) * n].iter().sum::<f64>().max(1e-12).sqrt()).collect();
    let mut l = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..n {
            l[i * n + j] = (i == j) as u8 as f64 - d[i] * a[i * n + j] * d[j];
        }
    }
    l
}

/// The count with the largest gap after it among the smallest eigenvalues (looked for up to
/// [`DEFAULT_MAX_SPEAKERS`] or `max`), clamped into `min..=max`: with three voices and
/// `max_speakers=2` the gaps at 1 and 2 are both near zero, and 2 is the answer.
pub fn choose_k(sorted_values: &[f64], min: usize, max: usize) -> usize {
    let last = sorted_values.len().saturating_sub(1);
    let (min, max) = (min.clamp(1, last.max(1)), max.clamp(1, last.max(1)));
    if min >= max {
        return max;
    }
    let gap = |k: usize| sorted_values[k] - sorted_values[k - 1];
    let best = (1..=max.max(DEFAULT_MAX_SPEAKERS).min(last)).max_by(|&a, &b| gap(a).total_cmp(&gap(b))).unwrap_or(min);
    best.clamp(min, max)
}

/// Eigenvalues and eigenvectors (columns, row-major `[n, n]`) of a symmetric matrix.
pub fn jacobi_eigen(mut a: Vec<f64>, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    for _sweep in 0..30 {
        let off: f64 = (0..n).flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j))).map(|(i, j)| a[i * n + j].powi(2)).sum();
        if off < 1e-18 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() < 1e-15 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

fn dist2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

/// k-means from a farthest-point start (point 0, then each next the farthest from those chosen).
pub fn kmeans(points: &[Vec<f64>], k: usize) -> Vec<usize> {
    let mut centres = vec![points[0].clone()];
    while centres.len() < k {
        let far = (0..points.len())
            .max_by(|&a, &b| {
                let d = |i: usize| centres.iter().map(|c| dist2(&points[i], c)).fold(f64::INFINITY, f64::min);
                d(a).total_cmp(&d(b))
            })
            .unwrap_or(0);
        centres.push(points[far].clone());
    }
    let mut labels = vec![0; points.len()];
    for _ in 0..100 {
        let new: Vec<usize> = points
            .iter()
            .map(|p| (0..k).min_by(|&a, &b| dist2(p, &centres[a]).total_cmp(&dist2(p, &centres[b]))).unwrap_or(0))
            .collect();
        let changed = new != labels;
        labels = new;
        for (c, centre) in centres.iter_mut().enumerate() {
            let members: Vec<&Vec<f64>> = points.iter().zip(&labels).filter(|(_, &l)| l == c).map(|(p, _)| p).collect();
            if !members.is_empty() {
                for (d, x) in centre.iter_mut().enumerate() {
                    *x = members.iter().map(|m| m[d]).sum::<f64>() / members.len() as f64;
                }
            }
        }
        if !changed {
            break;
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `per` noisy copies of each of `k` orthogonal-ish voices, interleaved (as turns alternate).
    fn voices(k: usize, per: usize, noise: f32) -> Vec<Vec<f32>> {
        let mut seed = 7u32;
        let mut rnd = move || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        };
        let base: Vec<Vec<f32>> = (0..k).map(|_| (0..64).map(|_| rnd()).collect()).collect();
        (0..k * per)
            .map(|i| {
                let v: Vec<f32> = base[i % k].iter().map(|x| x + noise * rnd()).collect();
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                v.iter().map(|x| x / n).collect()
            })
            .collect()
    }

    fn run(e: &[Vec<f32>], count: SpeakerCount) -> Vec<usize> {
        cluster(&e.iter().map(Vec::as_slice).collect::<Vec<_>>(), count)
    }

    #[test]
    fn finds_the_number_of_voices() {
        for k in 1..=4 {
            let e = voices(k, 12, 0.3);
            let labels = run(&e, SpeakerCount::default());
            let distinct = labels.iter().collect::<std::collections::BTreeSet<_>>().len();
            assert_eq!(distinct, k, "{labels:?}");
            // Same voice, same label.
            for i in 0..e.len() {
                assert_eq!(labels[i], labels[i % k], "{labels:?}");
            }
        }
    }

    #[test]
    fn bounds_and_exact_counts_are_obeyed() {
        let e = voices(3, 10, 0.3);
        let n = |c| run(&e, c).iter().collect::<std::collections::BTreeSet<_>>().len();
        assert_eq!(n(SpeakerCount { min: 1, max: 2 }), 2);
        assert_eq!(n(SpeakerCount { min: 4, max: 4 }), 4);
        assert_eq!(n(SpeakerCount { min: 1, max: 1 }), 1);
    }

    #[test]
    fn long_inputs_are_subsampled_and_still_labelled() {
        let e = voices(2, 400, 0.3);
        let labels = run(&e, SpeakerCount::default());
        assert_eq!(labels.len(), 800);
        assert!((0..800).all(|i| labels[i] == labels[i % 2]) && labels[0] != labels[1]);
    }

    #[test]
    fn jacobi_diagonalises() {
        let a = vec![2.0, 1.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 5.0];
        let (mut vals, _) = jacobi_eigen(a, 3);
        vals.sort_by(f64::total_cmp);
        for (g, w) in vals.iter().zip([1.0, 3.0, 5.0]) {
            assert!((g - w).abs() < 1e-9, "{vals:?}");
        }
    }
}
