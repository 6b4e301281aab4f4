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
}
