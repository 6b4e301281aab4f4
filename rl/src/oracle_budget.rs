//! Sample efficiency as PMO measures it (Gao et al. 2022, "Sample efficiency matters"): a run
//! spends oracle calls, one per distinct valid molecule scored, and is judged by the mean of its
//! best k scores so far, as a curve over calls and as the area under that curve.

/// Where a run stands after some oracle calls (the `log.csv` columns of that name).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OracleProgress {
    /// Oracle calls spent (distinct valid molecules scored, capped at the budget).
    pub oracle_calls: usize,
    /// Best score so far.
    pub top1: f64,
    /// Mean of the best 10 (of all, while fewer).
    pub top10: f64,
    /// Mean of the best 100 (of all, while fewer).
    pub top100: f64,
}

impl OracleProgress {
    /// The progress after the calls whose scores are `totals` (any order).
    pub fn of(totals: &[f64]) -> Self {
        let best = best_first(totals, 100);
        Self {
            oracle_calls: totals.len(),
            top1: mean_of_first(&best, 1),
            top10: mean_of_first(&best, 10),
            top100: mean_of_first(&best, 100),
        }
    }
}

/// The `k` largest of `values`, largest first.
fn best_first(values: &[f64], k: usize) -> Vec<f64> {
    let mut v = values.to_vec();
    let by_score_desc = |a: &f64, b: &f64| b.total_cmp(a);
    if v.len() > k {
        v.select_nth_unstable_by(k - 1, by_score_desc);
        v.truncate(k);
    }
    v.sort_by(by_score_desc);
    v
}

/// Mean of the first `k` of `best` (of all of them while fewer; 0 when empty).
fn mean_of_first(best: &[f64], k: usize) -> f64 {
    let head = &best[..k.min(best.len())];
    if head.is_empty() {
        0.0
    } else {
        head.iter().sum::<f64>() / head.len() as f64
    }
}

/// PMO's early stop, as its REINVENT runner has it: once more than 1,000 calls are spent, a step
/// after which the best 100 scores are exactly those of the step before counts against `patience`,
/// any other resets it; the run has converged when `patience` such steps come in a row. (The best
/// 100 only change by a better molecule coming in, so their mean, summed in sorted order, changes
/// exactly when they do.) A resumed run rebuilds the count from its `log.csv`.
#[derive(Debug, Clone)]
pub struct Convergence {
    patience: usize,
    stalled: usize,
    last_top100: Option<f64>,
}

impl Convergence {
    /// Calls after which steps are compared.
    pub const AFTER_CALLS: usize = 1000;

    /// A counter that stops a run after `patience` stalled steps.
    pub fn new(patience: usize) -> Self {
        Self {
            patience,
            stalled: 0,
            last_top100: None,
        }
    }

    /// Takes one step's progress; whether the run has now converged.
    pub fn converged_after(&mut self, p: &OracleProgress) -> bool {
        if p.oracle_calls <= Self::AFTER_CALLS {
            return false;
        }
        let stalled = self.last_top100 == Some(p.top100);
        self.last_top100 = Some(p.top100);
        self.stalled = if stalled { self.stalled + 1 } else { 0 };
        self.stalled >= self.patience
    }
}

/// PMO's top-k AUC (`top_auc` in its `main/optimizer.py`): the top-k mean is taken after every
/// `freq` calls and at the last call, joined by trapezoids starting from 0 at call 0, and divided by
/// `budget`; a run that ended before its budget keeps its last value up to it. `totals` are the
/// scores in call order; calls past `budget` are not counted. In [0, 1] for scores in [0, 1].
pub fn top_k_auc(totals: &[f64], k: usize, budget: usize, freq: usize) -> f64 {
    assert!(k > 0 && budget > 0 && freq > 0, "k, budget and freq must be > 0");
    let calls = &totals[..totals.len().min(budget)];
    if calls.is_empty() {
        return 0.0;
    }
    let (mut area, mut prev, mut called) = (0.0, 0.0, 0);
    for idx in (freq..calls.len()).step_by(freq) {
        let now = mean_of_first(&best_first(&calls[..idx], k), k);
        area += freq as f64 * (now + prev) / 2.0;
        prev = now;
        called = idx;
    }
    let last = mean_of_first(&best_first(calls, k), k);
    area += (calls.len() - called) as f64 * (last + prev) / 2.0;
    area += (budget - calls.len()) as f64 * last;
    area / budget as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_the_running_top_k_mean() {
        let totals: Vec<f64> = (1..=200).map(|i| i as f64 / 200.0).collect();
        let p = OracleProgress::of(&totals);
        assert_eq!(p.oracle_calls, 200);
        assert_eq!(p.top1, 1.0);
        // The best 10 are 191..=200 over 200: mean 195.5 / 200.
        assert!((p.top10 - 195.5 / 200.0).abs() < 1e-12);
        assert!((p.top100 - 150.5 / 200.0).abs() < 1e-12);
        let few = OracleProgress::of(&[0.2, 0.6]);
        assert_eq!((few.top1, few.top10, few.top100), (0.6, 0.4, 0.4));
        assert_eq!(OracleProgress::of(&[]).top10, 0.0);
    }

    #[test]
    fn convergence_counts_stalled_steps_after_1000_calls() {
        let at = |calls, top100| OracleProgress {
            oracle_calls: calls,
            top1: 1.0,
            top10: 1.0,
            top100,
        };
        let mut c = Convergence::new(2);
        // Flat, but before 1,000 calls: not counted.
        assert!(!c.converged_after(&at(900, 0.5)));
        assert!(!c.converged_after(&at(1000, 0.5)));
        assert!(!c.converged_after(&at(1001, 0.5))); // first compared step
        assert!(!c.converged_after(&at(1100, 0.5))); // stalled once
        assert!(!c.converged_after(&at(1200, 0.5001))); // any rise resets
        assert!(!c.converged_after(&at(1300, 0.5001)));
        assert!(c.converged_after(&at(1400, 0.5001)));
    }

    #[test]
    fn constant_scores_lose_only_the_first_trapezoid() {
        // The curve rises from 0 at call 0 to c at call `freq`, then stays: area c·(B − freq/2).
        let c = 0.7;
        let auc = top_k_auc(&vec![c; 10_000], 10, 10_000, 100);
        assert!((auc - c * (1.0 - 50.0 / 10_000.0)).abs() < 1e-12, "{auc}");
    }

    #[test]
    fn an_early_finish_is_padded_and_calls_past_the_budget_are_ignored() {
        // One molecule scoring 1, then the run ended: the half-trapezoid to call 1, then 1 to B.
        assert!((top_k_auc(&[1.0], 1, 100, 10) - (0.5 + 99.0) / 100.0).abs() < 1e-12);
        // Calls beyond the budget (a step's last batch crossing it) do not count.
        let mut totals = vec![0.0; 100];
        totals.extend([1.0; 50]);
        assert_eq!(top_k_auc(&totals, 1, 100, 10), 0.0);
    }

    #[test]
    fn a_step_in_the_top_1_curve_by_hand() {
        // Budget 4, checkpoints every 2 calls: top-1 is 0.2 after 2 calls and 1 after 4.
        // Trapezoids: 2·(0.2 + 0)/2 + 2·(1 + 0.2)/2 = 1.4, over 4 calls.
        let auc = top_k_auc(&[0.1, 0.2, 1.0, 0.3], 1, 4, 2);
        assert!((auc - 1.4 / 4.0).abs() < 1e-12, "{auc}");
    }
}
