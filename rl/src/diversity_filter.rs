//! Diversity filters (REINVENT 4's): each hit (a molecule scoring at least `min_score`) joins a
//! bucket; once a bucket holds `bucket_size` hits, further molecules that would join it score 0,
//! pushing the policy elsewhere. Two ways to form buckets:
//! - `murcko_scaffold` (`IdenticalMurckoScaffold`): one bucket per Bemis–Murcko scaffold; acyclic
//!   molecules share the empty scaffold.
//! - `compound_similarity` (the memory of Blaschke et al. 2020, "Memory-assisted reinforcement
//!   learning for diverse molecular de novo design"): a hit joins the bucket whose first member is
//!   most similar to it (Tanimoto of Morgan fingerprints) if that is at least `similarity`, else it
//!   opens a bucket. This also catches a policy that circles one chemotype through many slightly
//!   different scaffolds, which identical-scaffold buckets do not.

use std::collections::BTreeMap;

use chem::Fingerprint;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::DiversityFilterConfig;

/// Buckets filled so far (saved with the run's state, so a resumed run filters as before).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct DiversityFilter {
    /// Hits per scaffold (`murcko_scaffold`).
    pub buckets: BTreeMap<String, usize>,
    /// Buckets by similarity (`compound_similarity`), in the order they were opened.
    #[serde(default)]
    pub similarity_buckets: Vec<SimilarityBucket>,
}

/// A `compound_similarity` bucket: its first hit's fingerprint and how many hits it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SimilarityBucket {
    /// Fingerprint of the hit that opened the bucket.
    #[serde(serialize_with = "words_out", deserialize_with = "words_in")]
    pub first: Fingerprint,
    /// Hits so far.
    pub hits: usize,
}

fn words_out<S: Serializer>(fp: &Fingerprint, s: S) -> Result<S::Ok, S::Error> {
    fp.words().serialize(s)
}

fn words_in<'de, D: Deserializer<'de>>(d: D) -> Result<Fingerprint, D::Error> {
    let words = <[u64; 16]>::deserialize(d)?;
    Ok(Fingerprint::from_words(&words))
}

impl DiversityFilter {
    /// `murcko_scaffold`: `scores[i]` becomes 0 for a hit whose scaffold bucket is full; other
    /// hits are counted. `scaffolds[i]` is `None` for invalid molecules. Returns how many
    /// molecules were zeroed.
    pub fn apply_scaffolds(
        &mut self,
        cfg: &DiversityFilterConfig,
        scaffolds: &[Option<String>],
        scores: &mut [f64],
    ) -> usize {
        let mut zeroed = 0;
        for (scaf, s) in scaffolds.iter().zip(scores.iter_mut()) {
            let Some(scaf) = scaf else { continue };
            if *s < cfg.min_score {
                continue;
            }
            let n = self.buckets.entry(scaf.clone()).or_insert(0);
            if admit(n, cfg.bucket_size) {
                continue;
            }
            *s = 0.0;
            zeroed += 1;
        }
        zeroed
    }

    /// `compound_similarity`: as [`Self::apply_scaffolds`], with a hit's bucket the most similar
    /// open one at Tanimoto ≥ `cfg.similarity` (a new one if none is). `fps[i]` is `None` for
    /// invalid molecules. Hits of one batch are taken in order, so they can fill a bucket too.
    pub fn apply_similarity(
        &mut self,
        cfg: &DiversityFilterConfig,
        fps: &[Option<Fingerprint>],
        scores: &mut [f64],
    ) -> usize {
        let hits: Vec<usize> = (0..scores.len())
            .filter(|&i| fps[i].is_some() && scores[i] >= cfg.min_score)
            .collect();
        let queries: Vec<Fingerprint> = hits.iter().filter_map(|&i| fps[i]).collect();
        // The buckets of earlier steps (tens of thousands late in a run) in one tiled, vectorised
        // pass; those this batch opens are few and scanned per hit.
        let firsts: Vec<Fingerprint> = self.similarity_buckets.iter().map(|b| b.first).collect();
        let nearest_earlier = chem::nearest_tanimoto(&queries, &firsts);
        let n_earlier = firsts.len();
        let mut zeroed = 0;
        for ((&i, fp), earlier) in hits.iter().zip(&queries).zip(nearest_earlier) {
            let opened_now = self.similarity_buckets[n_earlier..]
                .iter()
                .enumerate()
                .map(|(j, b)| (n_earlier + j, b.first.tanimoto(fp)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            // The most similar bucket of all; on a tie the later one, as one scan would pick.
            let nearest = match (earlier, opened_now) {
                (Some(e), Some(n)) => Some(if n.1 >= e.1 { n } else { e }),
                (e, n) => e.or(n),
            };
            let Some((b, _)) = nearest.filter(|&(_, sim)| sim >= cfg.similarity) else {
                self.similarity_buckets
                    .push(SimilarityBucket { first: *fp, hits: 1 });
                continue;
            };
            if admit(&mut self.similarity_buckets[b].hits, cfg.bucket_size) {
                continue;
            }
            scores[i] = 0.0;
            zeroed += 1;
        }
        zeroed
    }
}

/// Counts a hit into a bucket holding `hits`; false when the bucket is already full.
fn admit(hits: &mut usize, bucket_size: usize) -> bool {
    if *hits >= bucket_size {
        return false;
    }
    *hits += 1;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The (bucket_size + 1)-th hit of a scaffold scores 0; low scores are not counted.
    #[test]
    fn full_bucket_zeroes() {
        let cfg = DiversityFilterConfig {
            enabled: true,
            bucket_size: 2,
            ..Default::default()
        };
        let mut f = DiversityFilter::default();
        let scaf: Vec<Option<String>> = ["c1ccccc1", "c1ccccc1", "c1ccccc1", "c1ccccc1", "", "C1CC1"]
            .iter()
            .map(|s| Some(s.to_string()))
            .collect();
        let mut s = vec![0.9, 0.3, 0.8, 0.7, 0.5, 0.1];
        assert_eq!(f.apply_scaffolds(&cfg, &scaf, &mut s), 1);
        assert_eq!(s, vec![0.9, 0.3, 0.8, 0.0, 0.5, 0.1]);
        let mut s2 = vec![0.9];
        f.apply_scaffolds(&cfg, &scaf[..1], &mut s2);
        assert_eq!(s2, vec![0.0]);
    }

    fn fp(smiles: &str) -> Option<Fingerprint> {
        chem::Molecule::parse(smiles).map(|m| m.morgan_fingerprint())
    }

    /// Near neighbours share a bucket whose size counts across batches; a dissimilar hit opens
    /// its own; low scores and invalid molecules neither count nor are zeroed; the state survives
    /// a JSON round trip (resume).
    #[test]
    fn similar_hits_share_a_bucket() {
        let cfg = DiversityFilterConfig {
            enabled: true,
            kind: crate::config::FilterKind::CompoundSimilarity,
            bucket_size: 2,
            similarity: 0.5,
            ..Default::default()
        };
        let a = "CC(=O)Nc1ccc(O)cc1"; // paracetamol
        let a_ethyl = "CCC(=O)Nc1ccc(O)cc1";
        let a_methoxy = "CC(=O)Nc1ccc(OC)cc1";
        let other = "CN1CCC[C@H]1c1cccnc1"; // nicotine
        let (fa, fe, fm, fo) = (
            fp(a).unwrap(),
            fp(a_ethyl).unwrap(),
            fp(a_methoxy).unwrap(),
            fp(other).unwrap(),
        );
        assert!(
            fa.tanimoto(&fe) >= 0.5 && fa.tanimoto(&fm) >= 0.5,
            "test molecules too far apart"
        );
        assert!(fa.tanimoto(&fo) < 0.5);

        let mut f = DiversityFilter::default();
        let fps = vec![Some(fa), Some(fe), None, Some(fo), Some(fm), Some(fm)];
        let mut s = vec![0.9, 0.8, 0.9, 0.7, 0.2, 0.6];
        assert_eq!(f.apply_similarity(&cfg, &fps, &mut s), 1);
        assert_eq!(s, vec![0.9, 0.8, 0.9, 0.7, 0.2, 0.0]);
        assert_eq!(f.similarity_buckets.len(), 2);
        assert_eq!(f.similarity_buckets[0].hits, 2);
        assert_eq!(f.similarity_buckets[1].hits, 1);

        let mut resumed: DiversityFilter = serde_json::from_str(&serde_json::to_string(&f).unwrap()).unwrap();
        assert_eq!(resumed, f);
        let mut s2 = vec![0.9, 0.9, 0.9];
        resumed.apply_similarity(&cfg, &[Some(fm), Some(fo), Some(fo)], &mut s2);
        assert_eq!(s2, vec![0.0, 0.9, 0.0]);
    }

    /// Batches of real molecules (the embedded corpus and near copies of each other) give the
    /// buckets and zeroed scores of the plain rule: each hit, in order, joins the most similar
    /// bucket opened before it (the later one on a tie) at or above `similarity`.
    #[test]
    fn matches_one_scan_per_hit() {
        let cfg = DiversityFilterConfig {
            enabled: true,
            kind: crate::config::FilterKind::CompoundSimilarity,
            bucket_size: 3,
            similarity: 0.4,
            min_score: 0.5,
        };
        let corpus = datasets::embedded_corpus();
        let fps: Vec<Option<Fingerprint>> = corpus[..60].iter().map(|s| fp(s)).collect();
        // Each batch repeats molecules so that buckets fill, with scores on both sides of min_score.
        let batches: Vec<(Vec<Option<Fingerprint>>, Vec<f64>)> = (0..4)
            .map(|b| {
                let idx: Vec<usize> = (0..40).map(|k| (k * 7 + b * 11) % 60).collect();
                let f = idx.iter().map(|&i| fps[i]).collect();
                let s = idx.iter().map(|&i| ((i * 13 + b) % 10) as f64 / 10.0).collect();
                (f, s)
            })
            .collect();
        let mut filter = DiversityFilter::default();
        let mut plain: Vec<SimilarityBucket> = Vec::new();
        let mut zeroed = 0;
        for (f, s) in &batches {
            let mut got = s.clone();
            zeroed += filter.apply_similarity(&cfg, f, &mut got);
            let mut want = s.clone();
            for (fp, s) in f.iter().zip(want.iter_mut()) {
                let Some(fp) = fp else { continue };
                if *s < cfg.min_score {
                    continue;
                }
                let nearest = plain
                    .iter()
                    .enumerate()
                    .map(|(i, b)| (i, b.first.tanimoto(fp)))
                    .filter(|&(_, sim)| sim >= cfg.similarity)
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                match nearest {
                    None => plain.push(SimilarityBucket { first: *fp, hits: 1 }),
                    Some((i, _)) if plain[i].hits < cfg.bucket_size => plain[i].hits += 1,
                    Some(_) => *s = 0.0,
                }
            }
            assert_eq!(got, want);
            assert_eq!(filter.similarity_buckets, plain);
        }
        assert!(zeroed > 0, "no score zeroed");
        assert!(plain.len() > 5, "too few buckets: {}", plain.len());
    }
}
