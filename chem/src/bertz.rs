//! Bertz's complexity index (S. H. Bertz, J. Am. Chem. Soc. 103, 3599, 1981) exactly as RDKit's Python
//! `GraphDescriptors.BertzCT` computes it (RDKit has no C++ version): GuacaMol's valsartan_smarts task
//! scores it.

use std::collections::HashMap;

use crate::ffi::bridge::MolGraph;

/// Shannon entropy in bits of the distribution proportional to `counts` (`ML.InfoTheory.InfoEntropy`).
fn info_entropy(counts: &[f64]) -> f64 {
    let total: f64 = counts.iter().sum();
    if total == 0.0 {
        return 0.0;
    }
    counts
        .iter()
        .map(|&c| c / total)
        .filter(|&p| p > 0.0)
        .map(|p| -p * p.log2())
        .sum()
}

/// BertzCT with the default cutoff (100) from the molecule's graph, whose `distances` must be the
/// bond-order-weighted ("Balaban") distance matrix, as BertzCT's symmetry classes use.
pub(crate) fn bertz_ct(graph: &MolGraph) -> f64 {
    const CUTOFF: usize = 100;
    let n = graph.atomic_numbers.len();
    if n < 2 {
        return 0.0;
    }
    // Neighbour lists (sorted, distinct) and the bond order of each atom pair.
    let mut neighbours: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut order: HashMap<(usize, usize), f64> = HashMap::new();
    for (bond, pair) in graph.bond_atoms.chunks_exact(2).enumerate() {
        let (a, b) = (pair[0] as usize, pair[1] as usize);
        order.insert((a.min(b), a.max(b)), graph.bond_orders[bond]);
        if !neighbours[a].contains(&b) {
            neighbours[a].push(b);
        }
        if !neighbours[b].contains(&a) {
            neighbours[b].push(a);
        }
    }
    for list in &mut neighbours {
        list.sort_unstable();
    }
    let bond_order = |a: usize, b: usize| order[&(a.min(b), a.max(b))];

    // Symmetry classes: atoms whose sorted distance rows agree to 4 decimals (the first CUTOFF entries).
    let mut keys: Vec<Vec<String>> = Vec::new();
    let mut class = vec![0usize; n];
    for (i, class_of_i) in class.iter_mut().enumerate() {
        let mut row: Vec<f64> = graph.distances[i * n..(i + 1) * n].to_vec();
        row.sort_by(f64::total_cmp);
        let key: Vec<String> = row.iter().take(CUTOFF).map(|d| format!("{d:.4}")).collect();
        *class_of_i = match keys.iter().position(|k| *k == key) {
            Some(idx) => idx + 1,
            None => {
                keys.push(key);
                keys.len()
            }
        };
    }

    let mut atom_types: HashMap<u32, f64> = HashMap::new();
    // Connection keys: (class, class) for multiple bonds, (class, hinge class, class) for bond pairs.
    let mut connections: HashMap<(usize, usize, usize), f64> = HashMap::new();
    for atom in 0..n {
        *atom_types.entry(graph.atomic_numbers[atom]).or_default() += 1.0;
        let hinge = class[atom];
        let list = &neighbours[atom];
        for (i, &ni) in list.iter().enumerate() {
            let ci = class[ni];
            let order_i = bond_order(atom, ni);
            if order_i > 1.0 && ni > atom {
                let key = (ci.min(hinge), ci.max(hinge), 0);
                *connections.entry(key).or_default() += order_i * (order_i - 1.0) / 2.0;
            }
            for &nj in &list[i + 1..] {
                let cj = class[nj];
                let key = (ci.min(cj), hinge, ci.max(cj) + 1);
                *connections.entry(key).or_default() += order_i * bond_order(atom, nj);
            }
        }
    }
    let connection_counts: Vec<f64> = if connections.is_empty() {
        vec![1.0]
    } else {
        connections.values().copied().collect()
    };
    let total: f64 = connection_counts.iter().sum();
    let connection_ie = total * (info_entropy(&connection_counts) + total.log2());
    let type_counts: Vec<f64> = atom_types.values().copied().collect();
    let atom_type_ie = n as f64 * info_entropy(&type_counts);
    atom_type_ie + connection_ie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_closed_form() {
        assert_eq!(info_entropy(&[1.0, 1.0]), 1.0);
        assert!((info_entropy(&[1.0, 1.0, 2.0]) - 1.5).abs() < 1e-12);
        assert_eq!(info_entropy(&[3.0]), 0.0);
    }
}
