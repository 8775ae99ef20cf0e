//! DTW and the median filter.

use super::*;

// ---- DTW

/// Cost 0 on the cells of `path`, 1 elsewhere.
fn cost_with_path(n: usize, m: usize, path: &[(usize, usize)]) -> Vec<f32> {
    let mut c = vec![1.0f32; n * m];
    for &(i, j) in path {
        c[i * m + j] = 0.0;
    }
    c
}

#[test]
fn dtw_follows_the_diagonal() {
    let path: Vec<(usize, usize)> = (0..4).map(|k| (k, k)).collect();
    let (rows, cols) = dtw(&cost_with_path(4, 4, &path), 4, 4);
    assert_eq!(rows, vec![0, 1, 2, 3]);
    assert_eq!(cols, vec![0, 1, 2, 3]);
}

#[test]
fn dtw_stays_on_a_row_and_on_a_column() {
    // Row 1 holds columns 1..=4 (a long token); column 5 holds rows 2 and 3 (two tokens
    // at one frame).
    let path = [(0, 0), (1, 1), (1, 2), (1, 3), (1, 4), (2, 5), (3, 5), (3, 6)];
    let (rows, cols) = dtw(&cost_with_path(4, 7, &path), 4, 7);
    let got: Vec<(usize, usize)> = rows.into_iter().zip(cols).collect();
    assert_eq!(got, path.to_vec());
}

#[test]
fn dtw_ties_go_right_unless_strictly_cheaper() {
    // Uniform costs: from (1,1) on, the diagonal and the move right tie; ties go right, so
    // the path takes the diagonal first and then runs along the last row.
    let (rows, cols) = dtw(&[1.0; 2 * 4], 2, 4);
    assert_eq!(rows, vec![0, 1, 1, 1]);
    assert_eq!(cols, vec![0, 1, 2, 3]);
    // Whisper's quirk: when the diagonal and the move down tie (c0 == c1 < c2), the move
    // right is taken although it is costlier. [[0, 0], [1, 5]]: at the corner c0 = 0,
    // c1 = 0, c2 = 1 -> right, so the path is (0,0) (1,0) (1,1), total 6 instead of 5.
    let (rows, cols) = dtw(&[0.0, 0.0, 1.0, 5.0], 2, 2);
    assert_eq!(rows, vec![0, 1, 1]);
    assert_eq!(cols, vec![0, 0, 1]);
}

#[test]
fn dtw_single_row_and_single_column() {
    let (rows, cols) = dtw(&[3.0, 1.0, 2.0], 1, 3);
    assert_eq!((rows, cols), (vec![0, 0, 0], vec![0, 1, 2]));
    let (rows, cols) = dtw(&[3.0, 1.0, 2.0], 3, 1);
    assert_eq!((rows, cols), (vec![0, 1, 2], vec![0, 0, 0]));
}

/// Whisper's dtw_cpu + backtrace, written out literally (f64 cost, i64 indices) to compare
/// with on random matrices.
fn whisper_dtw(x: &[f32], n: usize, m: usize) -> Vec<(i64, i64)> {
    let mut cost = vec![vec![f32::INFINITY; m + 1]; n + 1];
    let mut trace = vec![vec![-1i32; m + 1]; n + 1];
    cost[0][0] = 0.0;
    for j in 1..=m {
        for i in 1..=n {
            let (c0, c1, c2) = (cost[i - 1][j - 1], cost[i - 1][j], cost[i][j - 1]);
            let (c, t) = if c0 < c1 && c0 < c2 {
                (c0, 0)
            } else if c1 < c0 && c1 < c2 {
                (c1, 1)
            } else {
                (c2, 2)
            };
            cost[i][j] = x[(i - 1) * m + j - 1] + c;
            trace[i][j] = t;
        }
    }
    trace[0].iter_mut().for_each(|t| *t = 2);
    trace.iter_mut().for_each(|r| r[0] = 1);
    let (mut i, mut j) = (n as i64, m as i64);
    let mut out = Vec::new();
    while i > 0 || j > 0 {
        out.push((i - 1, j - 1));
        match trace[i as usize][j as usize] {
            0 => {
                i -= 1;
                j -= 1
            }
            1 => i -= 1,
            _ => j -= 1,
        }
    }
    out.reverse();
    out
}

#[test]
fn dtw_matches_a_literal_port_on_random_matrices() {
    let mut rng = 0x9E3779B97F4A7C15u64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng >> 40) as f32 / (1u64 << 24) as f32
    };
    for (n, m) in [(1, 1), (3, 9), (9, 3), (12, 40), (30, 200)] {
        // quantized values make ties common
        let x: Vec<f32> = (0..n * m).map(|_| (next() * 4.0).floor()).collect();
        let (rows, cols) = dtw(&x, n, m);
        let want = whisper_dtw(&x, n, m);
        let got: Vec<(i64, i64)> = rows.iter().zip(&cols).map(|(r, c)| (*r as i64, *c as i64)).collect();
        assert_eq!(got, want, "{n}x{m}");
        // monotonic, starts at (0,0), ends at the corner, steps of at most one
        assert_eq!(got[0], (0, 0));
        assert_eq!(*got.last().unwrap(), (n as i64 - 1, m as i64 - 1));
        for w in got.windows(2) {
            let (di, dj) = (w[1].0 - w[0].0, w[1].1 - w[0].1);
            assert!((di, dj) == (1, 1) || (di, dj) == (1, 0) || (di, dj) == (0, 1));
        }
    }
}

// ---- median filter

pub(super) fn naive_median(row: &[f32], width: usize) -> Vec<f32> {
    let r = width / 2;
    let n = row.len();
    // explicit reflect padding, then sorted windows
    let mut padded: Vec<f32> = (1..=r).rev().map(|k| row[k]).collect();
    padded.extend_from_slice(row);
    padded.extend((1..=r).map(|k| row[n - 1 - k]));
    (0..n)
        .map(|j| {
            let mut w = padded[j..j + width].to_vec();
            w.sort_by(f32::total_cmp);
            w[r]
        })
        .collect()
}

#[test]
fn median_filter_matches_a_naive_reflect_padded_filter() {
    let mut seed = 7u32;
    for len in [4usize, 5, 7, 8, 31] {
        let rows: Vec<f32> = (0..3 * len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                ((seed >> 16) % 100) as f32 / 10.0
            })
            .collect();
        let mut got = rows.clone();
        median_filter(&mut got, len, 7);
        let want: Vec<f32> = rows.chunks(len).flat_map(|r| naive_median(r, 7)).collect();
        assert_eq!(got, want, "rows of {len}");
    }
}

#[test]
fn median_filter_edges_reflect_without_repeating_the_edge() {
    // [9, 0, 0, 0, 0, 0]: reflect padding gives 0 0 0 | 9 0 0 0 0 0 | ..., never a second 9.
    let mut row = vec![9.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    median_filter(&mut row, 6, 3);
    assert_eq!(row, vec![0.0; 6]);
    // [1, 5, 2, 8]: width 3 at j=0 sees (5, 1, 5) -> 5; at the end (2, 8, 2) -> 2.
    let mut row = vec![1.0, 5.0, 2.0, 8.0];
    median_filter(&mut row, 4, 3);
    assert_eq!(row, vec![5.0, 2.0, 5.0, 2.0]);
    // Rows no longer than width / 2 are left alone (Whisper returns them unchanged).
    let mut short = vec![3.0, 1.0, 2.0];
    median_filter(&mut short, 3, 7);
    assert_eq!(short, vec![3.0, 1.0, 2.0]);
}
