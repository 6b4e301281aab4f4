//! Experience replay (REINVENT's "inception", RLEM): the top-k scored molecules of the run,
//! a few replayed per step with log-probs recomputed under the current policy.

use serde::{Deserialize, Serialize};

/// One remembered molecule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// The SMILES as sampled (tokenisable by the model's vocabulary).
    pub smiles: String,
    /// Canonical SMILES (the dedup key).
    pub canonical: String,
    /// Reward it got (after the diversity filter).
    pub score: f64,
}

/// The top `capacity` molecules by score, distinct by canonical SMILES, best first.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReplayMemory {
    /// Most molecules kept.
    pub capacity: usize,
    /// The molecules, best first.
    pub entries: Vec<MemoryEntry>,
}

impl ReplayMemory {
    /// An empty memory.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            entries: Vec::new(),
        }
    }

    /// Adds molecules with a positive score; keeps the best `capacity` (the higher score wins a
    /// duplicate).
    pub fn add(&mut self, items: impl IntoIterator<Item = MemoryEntry>) {
        if self.capacity == 0 {
            return;
        }
        for e in items {
            if e.score.is_nan() || e.score <= 0.0 {
                continue;
            }
            match self.entries.iter_mut().find(|x| x.canonical == e.canonical) {
                Some(x) if x.score < e.score => *x = e,
                Some(_) => {}
                None => self.entries.push(e),
            }
        }
        self.entries.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then_with(|| a.canonical.cmp(&b.canonical))
        });
        self.entries.truncate(self.capacity);
    }

    /// `n` distinct entries drawn at random with `rng` (all of them when fewer).
    pub fn sample(&self, n: usize, rng: &mut model::rng::Rng) -> Vec<MemoryEntry> {
        let mut idx: Vec<usize> = (0..self.entries.len()).collect();
        rng.shuffle(&mut idx);
        idx.into_iter().take(n).map(|i| self.entries[i].clone()).collect()
    }

    /// `n` distinct entries drawn one after another, each with probability proportional to its
    /// score among those not yet drawn (REINVENT's prioritised replay; numpy's `choice` with
    /// `p` and no replacement draws the same way). All of them when fewer.
    pub fn sample_by_score(&self, n: usize, rng: &mut model::rng::Rng) -> Vec<MemoryEntry> {
        let mut left: Vec<usize> = (0..self.entries.len()).collect();
        let mut out = Vec::with_capacity(n.min(left.len()));
        while out.len() < n && !left.is_empty() {
            let total: f64 = left.iter().map(|&i| self.entries[i].score).sum();
            let mut u = rng.next_f64() * total;
            // The last one catches rounding at the top of the range.
            let mut pick = left.len() - 1;
            for (k, &i) in left.iter().enumerate() {
                u -= self.entries[i].score;
                if u < 0.0 {
                    pick = k;
                    break;
                }
            }
            out.push(self.entries[left.remove(pick)].clone());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(c: &str, score: f64) -> MemoryEntry {
        MemoryEntry {
            smiles: c.into(),
            canonical: c.into(),
            score,
        }
    }

    /// Keeps the top k, deduplicated, zero scores dropped; sampling is distinct.
    #[test]
    fn keeps_top_k() {
        let mut m = ReplayMemory::new(2);
        m.add([e("A", 0.5), e("B", 0.9), e("C", 0.0), e("A", 0.7), e("D", 0.6)]);
        assert_eq!(m.entries, vec![e("B", 0.9), e("A", 0.7)]);
        let s = m.sample(5, &mut model::rng::Rng::new(1));
        assert_eq!(s.len(), 2);
        assert_ne!(s[0].canonical, s[1].canonical);
    }

    /// Drawn by score: a first draw lands on each entry in proportion to its score, a second
    /// in proportion among the rest (checked against the exact probabilities), all distinct.
    #[test]
    fn samples_in_proportion_to_score() {
        let mut m = ReplayMemory::new(3);
        m.add([e("A", 0.6), e("B", 0.3), e("C", 0.1)]);
        let mut rng = model::rng::Rng::new(7);
        let trials = 20_000;
        let mut firsts = [0usize; 3];
        let (mut after_a, mut b_after_a) = (0usize, 0usize);
        for _ in 0..trials {
            let s = m.sample_by_score(2, &mut rng);
            assert_eq!(s.len(), 2);
            assert_ne!(s[0].canonical, s[1].canonical);
            firsts[["A", "B", "C"].iter().position(|c| *c == s[0].canonical).unwrap()] += 1;
            if s[0].canonical == "A" {
                after_a += 1;
                b_after_a += usize::from(s[1].canonical == "B");
            }
        }
        // Within five standard errors of a binomial proportion.
        let close = |count: usize, of: usize, p: f64| {
            let se = (p * (1.0 - p) / of as f64).sqrt();
            (count as f64 / of as f64 - p).abs() < 5.0 * se
        };
        for (&count, p) in firsts.iter().zip([0.6, 0.3, 0.1]) {
            assert!(close(count, trials, p), "{firsts:?}");
        }
        assert!(close(b_after_a, after_a, 0.75), "{b_after_a} of {after_a}");
        assert_eq!(m.sample_by_score(5, &mut rng).len(), 3);
    }
}
