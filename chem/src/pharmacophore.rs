//! The Gobbi–Poppinger 2D pharmacophore fingerprint (Biotech. Bioeng. 61, 47, 1998) exactly as RDKit's
//! Python `Generate.Gen2DFingerprint(mol, Gobbi_Pharm2D.factory)` builds it (GuacaMol's "PHCO", used by
//! the deco_hop and scaffold_hop tasks). RDKit finds the features (its C++ feature factory on the
//! Gobbi definitions); the bit layout — 2- and 3-point pharmacophores of 8 feature families over 7
//! topological distance bins, triangle-pruned — is RDKit's `SigFactory` and `Pharm2D.Utils`, ported.

use std::sync::OnceLock;

use cxx::UniquePtr;

use crate::ffi::bridge;
use crate::molecule::Molecule;

/// RDKit's `Gobbi_Pharm2D.fdef`, verbatim.
const GOBBI_FDEF: &str = r#"
DefineFeature Hydrophobic [$([C;H2,H1](!=*)[C;H2,H1][C;H2,H1][$([C;H1,H2,H3]);!$(C=*)]),$(C([C;H2,H3])([C;H2,H3])[C;H2,H3])]
  Family LH
  Weights 1.0
EndFeature
DefineFeature Donor [$([N;!H0;v3]),$([N;!H0;+1;v4]),$([O,S;H1;+0]),$([n;H1;+0])]
  Family HD
  Weights 1.0
EndFeature
DefineFeature Acceptor [$([O,S;H1;v2]-[!$(*=[O,N,P,S])]),$([O,S;H0;v2]),$([O,S;-]),$([N&v3;H1,H2]-[!$(*=[O,N,P,S])]),$([N;v3;H0]),$([n,o,s;+0]),F]
  Family HA
  Weights 1.0
EndFeature
DefineFeature AromaticAttachment [$([a;D3](@*)(@*)*)]
  Family AR
  Weights 1.0
EndFeature
DefineFeature AliphaticAttachment [$([A;D3](@*)(@*)*)]
  Family RR
  Weights 1.0
EndFeature
DefineFeature UnusualAtom [!#1;!#6;!#7;!#8;!#9;!#16;!#17;!#35;!#53]
  Family X
  Weights 1.0
EndFeature
DefineFeature BasicGroup [$([N;H2&+0][$([C,a]);!$([C,a](=O))]),$([N;H1&+0]([$([C,a]);!$([C,a](=O))])[$([C,a]);!$([C,a](=O))]),$([N;H0&+0]([C;!$(C(=O))])([C;!$(C(=O))])[C;!$(C(=O))]),$([N,n;X2;+0])]
  Family BG
  Weights 1.0
EndFeature
DefineFeature AcidicGroup [$([C,S](=[O,S,P])-[O;H1])]
  Family AG
  Weights 1.0
EndFeature
"#;

/// `Gobbi_Pharm2D.defaultBins`: [lower, upper) topological distances.
const BINS: [(u32, u32); 7] = [(2, 3), (3, 4), (4, 5), (5, 6), (6, 7), (7, 8), (8, 100)];
const MIN_POINTS: usize = 2;
const MAX_POINTS: usize = 3;

/// The feature factory and the signature layout, built once.
struct Gobbi {
    factory: UniquePtr<bridge::FeatureFactory>,
    /// Feature families sorted by name (SigFactory.GetFeatFamilies); index = position here.
    n_families: usize,
    /// Maps the factory's family index to its index in the sorted list.
    sorted_index: Vec<usize>,
    /// First bit of the 2-point and 3-point blocks.
    starts: [u32; MAX_POINTS + 1],
    /// Distance-bin scaffolds for 1 distance (2 points) and 3 distances (3 points), in RDKit's order.
    scaffolds_2: Vec<Vec<usize>>,
    scaffolds_3: Vec<Vec<usize>>,
}

/// `Utils.NumCombinations`: multisets of `slots` items from `items`.
fn num_combinations(items: usize, slots: usize) -> usize {
    binomial(items + slots - 1, slots)
}

fn binomial(n: usize, k: usize) -> usize {
    if k > n {
        return 0;
    }
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

/// `Utils.CountUpTo`: the rank of the non-decreasing index tuple `vs` among all such tuples.
fn count_up_to(items: usize, slots: usize, vs: &[usize], idx: usize, start_at: usize) -> usize {
    if idx >= slots {
        0
    } else if idx == slots - 1 {
        vs[idx] - start_at
    } else {
        let below: usize = (start_at..vs[idx])
            .map(|i| num_combinations(items - i, slots - idx - 1))
            .sum();
        below + count_up_to(items, slots, vs, idx + 1, vs[idx])
    }
}

/// `Utils.GetIndexCombinations`: non-decreasing index tuples in lexicographic order.
fn index_combinations(items: usize, slots: usize) -> Vec<Vec<usize>> {
    fn extend(items: usize, slots: usize, from: usize, prefix: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if prefix.len() == slots {
            out.push(prefix.clone());
            return;
        }
        for x in from..items {
            prefix.push(x);
            extend(items, slots, x, prefix, out);
            prefix.pop();
        }
    }
    let mut out = Vec::new();
    extend(items, slots, 0, &mut Vec::new(), &mut out);
    out
}

/// `Utils.BinsTriangleInequality` on bin bounds.
fn bins_triangle_ok(d1: (u32, u32), d2: (u32, u32), d3: (u32, u32)) -> bool {
    !(d1.1 + d2.1 < d3.0 || d2.1 + d3.1 < d1.0 || d3.1 + d1.1 < d2.0)
}

/// `Utils.GetPossibleScaffolds` for 2 and 3 points (triangle-pruned).
fn possible_scaffolds(points: usize) -> Vec<Vec<usize>> {
    let n = BINS.len();
    if points == 2 {
        return (0..n).map(|b| vec![b]).collect();
    }
    let mut out = Vec::new();
    for (a, &bin_a) in BINS.iter().enumerate() {
        for (b, &bin_b) in BINS.iter().enumerate() {
            for (c, &bin_c) in BINS.iter().enumerate() {
                if bins_triangle_ok(bin_a, bin_b, bin_c) {
                    out.push(vec![a, b, c]);
                }
            }
        }
    }
    out
}

/// `Utils.OrderTriangle`: a canonical order for 3-point pharmacophores with repeated features.
fn order_triangle(features: [usize; 3], dists: [u32; 3]) -> ([usize; 3], [u32; 3]) {
    let distinct = {
        let mut f = features.to_vec();
        f.sort_unstable();
        f.dedup();
        f.len()
    };
    if distinct == 3 {
        return (features, dists);
    }
    let sums = [dists[0] + dists[1], dists[0] + dists[2], dists[1] + dists[2]];
    let max = *sums.iter().max().unwrap();
    let (ireorder, dreorder): ([usize; 3], [usize; 3]) = if distinct == 1 {
        if sums[0] == max {
            if dists[0] > dists[1] {
                ([0, 1, 2], [0, 1, 2])
            } else {
                ([0, 2, 1], [1, 0, 2])
            }
        } else if sums[1] == max {
            if dists[0] > dists[2] {
                ([1, 0, 2], [0, 2, 1])
            } else {
                ([1, 2, 0], [2, 0, 1])
            }
        } else if dists[1] > dists[2] {
            ([2, 0, 1], [1, 2, 0])
        } else {
            ([2, 1, 0], [2, 1, 0])
        }
    } else if features[0] == features[1] {
        if dists[1] > dists[2] {
            ([0, 1, 2], [0, 1, 2])
        } else {
            ([1, 0, 2], [0, 2, 1])
        }
    } else if features[0] == features[2] {
        if dists[0] > dists[2] {
            ([0, 1, 2], [0, 1, 2])
        } else {
            ([2, 1, 0], [2, 1, 0])
        }
    } else if dists[0] > dists[1] {
        ([0, 1, 2], [0, 1, 2])
    } else {
        ([0, 2, 1], [1, 0, 2])
    };
    (ireorder.map(|i| features[i]), dreorder.map(|i| dists[i]))
}

/// The bin index of a distance (`FindBinIdx`'s per-distance step).
fn bin_of(d: u32) -> Option<usize> {
    BINS.iter().position(|&(lo, hi)| d >= lo && d < hi)
}

fn gobbi() -> &'static Gobbi {
    static GOBBI: OnceLock<Gobbi> = OnceLock::new();
    GOBBI.get_or_init(|| {
        crate::init();
        let factory =
            bridge::feature_factory_new(GOBBI_FDEF).expect("RDKit parses the Gobbi feature definitions");
        let families = bridge::feature_factory_families(&factory).expect("feature families");
        let mut sorted: Vec<&str> = families.iter().map(|s| s.as_str()).collect();
        sorted.sort_unstable();
        let sorted_index = families
            .iter()
            .map(|f| sorted.iter().position(|s| *s == f.as_str()).unwrap())
            .collect();
        let n_families = families.len();
        let scaffolds_2 = possible_scaffolds(2);
        let scaffolds_3 = possible_scaffolds(3);
        let mut starts = [0u32; MAX_POINTS + 1];
        let mut accum = 0;
        for (points, scaffolds) in [(2, &scaffolds_2), (3, &scaffolds_3)] {
            starts[points] = accum as u32;
            accum += num_combinations(n_families, points) * scaffolds.len();
        }
        Gobbi {
            factory,
            n_families,
            sorted_index,
            starts,
            scaffolds_2,
            scaffolds_3,
        }
    })
}

impl Gobbi {
    /// `SigFactory.GetBitIdx(features, dists, sortIndices=False)`.
    fn bit_index(&self, features: &[usize], dists: &[u32]) -> Option<u32> {
        let points = features.len();
        let (features, dists, scaffolds): (Vec<usize>, Vec<u32>, &Vec<Vec<usize>>) = if points == 3 {
            let (f, d) = order_triangle(
                [features[0], features[1], features[2]],
                [dists[0], dists[1], dists[2]],
            );
            (f.to_vec(), d.to_vec(), &self.scaffolds_3)
        } else {
            (features.to_vec(), dists.to_vec(), &self.scaffolds_2)
        };
        let offset = count_up_to(self.n_families, points, &features, 0, 0) * scaffolds.len();
        let bins: Vec<usize> = dists.iter().map(|&d| bin_of(d)).collect::<Option<_>>()?;
        let bin = scaffolds.iter().position(|s| *s == bins)?;
        Some(self.starts[points] + (offset + bin) as u32)
    }
}

/// Every distinct assignment of features to the pharmacophore's points (`Utils.GetUniqueCombinations`
/// followed by Gen2DFingerprint's projection): one feature per point, no feature used twice, each
/// assignment sorted by (point class, feature atoms) and kept once.
fn unique_combinations<'a>(choices: &[&'a [Vec<u32>]], classes: &[usize]) -> Vec<Vec<&'a Vec<u32>>> {
    // A hash set, where RDKit searches a list: the same combinations, without the quadratic cost
    // that makes RDKit's Python take minutes on a molecule with dozens of features.
    let mut out: std::collections::HashSet<Vec<(usize, &'a Vec<u32>)>> = Default::default();
    fn walk<'a>(
        choices: &[&'a [Vec<u32>]],
        classes: &[usize],
        at: usize,
        current: &mut Vec<(usize, &'a Vec<u32>)>,
        out: &mut std::collections::HashSet<Vec<(usize, &'a Vec<u32>)>>,
    ) {
        if at == choices.len() {
            let mut entry = current.clone();
            entry.sort();
            out.insert(entry);
            return;
        }
        for thing in choices[at] {
            if current.iter().any(|(_, t)| *t == thing) {
                continue;
            }
            current.push((classes[at], thing));
            walk(choices, classes, at + 1, current, out);
            current.pop();
        }
    }
    walk(choices, classes, 0, &mut Vec::new(), &mut out);
    out.into_iter()
        .map(|entry| entry.into_iter().map(|(_, t)| t).collect())
        .collect()
}

/// The set bits of a molecule's Gobbi 2D pharmacophore fingerprint, sorted.
pub(crate) fn gobbi_fingerprint(mol: &Molecule) -> crate::Result<Vec<u32>> {
    let g = gobbi();
    let packed = mol
        .with(|m| bridge::feature_factory_features(&g.factory, m))
        .map_err(crate::error::rdkit("pharmacophore features"))?;
    // Features per family (sorted family order), each a list of atom ids.
    let mut by_family: Vec<Vec<Vec<u32>>> = vec![Vec::new(); g.n_families];
    let mut i = 0;
    while i < packed.len() {
        let family = g.sorted_index[packed[i] as usize];
        let n_atoms = packed[i + 1] as usize;
        by_family[family].push(packed[i + 2..i + 2 + n_atoms].to_vec());
        i += 2 + n_atoms;
    }
    let graph = mol.graph(false)?;
    let n = graph.atomic_numbers.len();
    let distance = |a: u32, b: u32| graph.distances[a as usize * n + b as usize];
    let (min_d, max_d) = (BINS[0].0, BINS[BINS.len() - 1].1);

    let mut bits = Vec::new();
    for points in MIN_POINTS..=MAX_POINTS {
        let pairs: &[(usize, usize)] = if points == 2 {
            &[(0, 1)]
        } else {
            &[(0, 1), (0, 2), (1, 2)]
        };
        for perm in index_combinations(g.n_families, points) {
            let mut classes = vec![0usize; points];
            for k in 1..points {
                classes[k] = classes[k - 1] + usize::from(perm[k] != perm[k - 1]);
            }
            let choices: Vec<&[Vec<u32>]> = perm.iter().map(|&f| by_family[f].as_slice()).collect();
            'matches: for matched in unique_combinations(&choices, &classes) {
                // Generate._ShortestPathsMatch: the shortest distance between each pair of points.
                let mut dists = Vec::with_capacity(pairs.len());
                for &(p0, p1) in pairs {
                    let mut min_seen = max_d as f64;
                    for &a in matched[p0] {
                        for &b in matched[p1] {
                            min_seen = min_seen.min(distance(a, b));
                            if min_seen == 0.0 || min_seen < min_d as f64 {
                                continue 'matches;
                            }
                        }
                    }
                    let d = min_seen as u32;
                    if d == 0 || d < min_d || d >= max_d {
                        continue 'matches;
                    }
                    dists.push(d);
                }
                if let Some(bit) = g.bit_index(&perm, &dists) {
                    bits.push(bit);
                }
            }
        }
    }
    bits.sort_unstable();
    bits.dedup();
    Ok(bits)
}

/// RDKit's Tanimoto on sparse bit vectors: |A ∩ B| / |A ∪ B|, 1 when both are empty.
pub(crate) fn bits_tanimoto(a: &[u32], b: &[u32]) -> f64 {
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
    }
    let union = a.len() + b.len() - common;
    if union == 0 {
        1.0
    } else {
        common as f64 / union as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_size_matches_rdkit() {
        // RDKit: Gobbi_Pharm2D.factory.GetSigSize() == 39972 (36 × 7 two-point bits + 120 × 331 three-point).
        let g = gobbi();
        assert_eq!(g.n_families, 8);
        assert_eq!(g.scaffolds_2.len(), 7);
        let size = g.starts[3] as usize + num_combinations(8, 3) * g.scaffolds_3.len();
        assert_eq!(size, 39972);
    }

    #[test]
    fn count_up_to_ranks_index_tuples() {
        for slots in 2..=3 {
            for (rank, combo) in index_combinations(8, slots).iter().enumerate() {
                assert_eq!(count_up_to(8, slots, combo, 0, 0), rank);
            }
        }
    }
}
