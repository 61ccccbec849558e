//! Summary statistics of repeated runs: mean, min, max and a 95 % confidence
//! interval of the mean (Student's t with n-1 degrees of freedom), so a design
//! review can tell a difference between patterns from run-to-run noise.

/// Two-sided 95 % quantiles of Student's t (t₀.₉₇₅) for 1..=30 degrees of
/// freedom, from the standard tables (4 decimals).
const T_975: [f64; 30] = [
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281, // 1-10
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860, // 11-20
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423, // 21-30
];

/// The normal quantile z₀.₉₇₅, used beyond 30 degrees of freedom (t₀.₉₇₅ at 31 is
/// 2.040 and falls towards it; the error is under 4 %).
const Z_975: f64 = 1.9600;

/// t₀.₉₇₅ for `df` degrees of freedom; `None` for 0 (one value has no spread).
pub fn t_975(df: usize) -> Option<f64> {
    match df {
        0 => None,
        1..=30 => Some(T_975[df - 1]),
        _ => Some(Z_975),
    }
}

/// Mean, extremes and the 95 % interval of the mean of `n` values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub n: usize,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// The interval's half-width: t₀.₉₇₅(n-1) × s / √n, with s the sample standard
    /// deviation; `None` with fewer than two values.
    pub half_width: Option<f64>,
}

impl Spread {
    /// `None` when there are no values.
    pub fn of(values: &[f64]) -> Option<Spread> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let half_width = t_975(n - 1).map(|t| {
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            t * (var / n as f64).sqrt()
        });
        Some(Spread {
            n,
            mean,
            min,
            max,
            half_width,
        })
    }

    /// The interval's bounds, `(mean - h, mean + h)`.
    pub fn interval(&self) -> Option<(f64, f64)> {
        self.half_width.map(|h| (self.mean - h, self.mean + h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn t_table_matches_published_values() {
        // Published t₀.₉₇₅ values (e.g. NIST/SEMATECH e-Handbook, table 1.3.6.7.2).
        for (df, t) in [
            (1, 12.706),
            (2, 4.303),
            (3, 3.182),
            (4, 2.776),
            (5, 2.571),
            (9, 2.262),
            (10, 2.228),
            (15, 2.131),
            (20, 2.086),
            (29, 2.045),
            (30, 2.042),
        ] {
            assert!(close(t_975(df).unwrap(), t, 0.0005), "df {df}");
        }
        assert_eq!(t_975(0), None);
        assert_eq!(t_975(31), Some(1.96));
        assert_eq!(t_975(1000), Some(1.96));
        // Decreasing towards the normal value.
        for df in 1..30 {
            assert!(t_975(df).unwrap() > t_975(df + 1).unwrap());
        }
        assert!(t_975(30).unwrap() > Z_975);
    }

    #[test]
    fn interval_of_five_values_by_hand() {
        // 10, 12, 14, 16, 18: mean 14, s² = 40/4 = 10, s/√5 = √2,
        // half-width = 2.7764 × 1.41421 = 3.9264.
        let s = Spread::of(&[10.0, 12.0, 14.0, 16.0, 18.0]).unwrap();
        assert_eq!((s.n, s.mean, s.min, s.max), (5, 14.0, 10.0, 18.0));
        assert!(close(s.half_width.unwrap(), 3.9264, 1e-4), "{s:?}");
        let (lo, hi) = s.interval().unwrap();
        assert!(close(lo, 10.0736, 1e-4) && close(hi, 17.9264, 1e-4));
    }

    #[test]
    fn interval_of_three_values_by_hand() {
        // 150, 147, 153: mean 150, s = 3, s/√3 = 1.73205, × 4.3027 = 7.4525.
        let s = Spread::of(&[150.0, 147.0, 153.0]).unwrap();
        assert!(close(s.half_width.unwrap(), 7.4525, 1e-4), "{s:?}");
    }

    #[test]
    fn large_samples_use_the_normal_value() {
        // 40 values alternating 0 and 2: mean 1, s² = 40/39, half = 1.96 × s/√40.
        let values: Vec<f64> = (0..40).map(|i| (i % 2 * 2) as f64).collect();
        let s = Spread::of(&values).unwrap();
        let expected = 1.96 * (40.0f64 / 39.0).sqrt() / 40.0f64.sqrt();
        assert!(close(s.half_width.unwrap(), expected, 1e-12));
    }

    #[test]
    fn edge_cases() {
        assert_eq!(Spread::of(&[]), None);
        let one = Spread::of(&[7.0]).unwrap();
        assert_eq!((one.mean, one.half_width), (7.0, None));
        assert_eq!(one.interval(), None);
        // Identical values: a zero-width interval, not NaN.
        let same = Spread::of(&[0.0, 0.0, 0.0]).unwrap();
        assert_eq!(same.half_width, Some(0.0));
    }
}
