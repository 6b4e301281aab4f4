/*!
Chemistry for smirl on real RDKit (Debian's 2022.09, through `rdkit-sys` and a small own `cxx`
bridge). This is the only crate that touches RDKit; no RDKit type leaves it.

# Brief overview
- [`Molecule`]: parse + sanitize (RDKit decides validity), canonical SMILES, heavy atoms, rings,
  descriptors, Murcko scaffold, BRICS fragments, SMARTS matching ([`SmartsPattern`]), depiction,
  SD records with 2D or ETKDG/MMFF 3D coordinates ([`sdf_record`]).
- [`Fingerprint`]: Morgan radius 2, 1024 bits as packed `u64` words; Tanimoto by popcount, bulk
  one-vs-many and all-pairs [`internal_diversity`] in parallel.
- QED ([`QedProperties`], `Molecule::qed`) exactly as RDKit's Python `QED.qed`; SA score
  (`Molecule::sa_score`) exactly as RDKit Contrib's `sascorer.py`; MOSES filters.
- [`score_batch`]: everything `smirl score` reports per molecule; [`set_metrics`]: the MOSES table.

```no_run
let mol = chem::Molecule::from_smiles("c1ccccc1O").unwrap();
println!("{} QED {:.3} SA {:.3}", mol.canonical_smiles(), mol.qed().unwrap(), mol.sa_score().unwrap());
```
*/

mod baselines;
mod bertz;
mod count_fingerprint;
mod error;
mod ffi;
mod filters;
mod fingerprint;
mod metrics;
mod molecule;
mod oracles;
mod patterns;
mod pharmacophore;
mod qed;
mod qed_data;
mod sa;
mod scoring;
mod sdf;

pub use baselines::{PublishedBaseline, PUBLISHED_BASELINES};
pub use count_fingerprint::{CountFingerprint, CountFingerprintKind};
pub use error::{ChemError, Result};
pub use filters::moses_filter_smarts;
pub use fingerprint::{bulk_tanimoto, internal_diversity, max_tanimoto, nearest_tanimoto, Fingerprint};
pub use metrics::{
    cosine_similarity, novelty, set_metrics, unique_at_k, wasserstein_1, PropertyColumns, PropertyDistances,
    ReferenceSet, SetMetrics, SimilarityToReference,
};
pub use molecule::{randomize_smiles, Descriptors, Molecule, MAX_SMILES_LEN};
pub use oracles::{oracle_ids, score_oracles, Oracle, OracleSuite, ORACLE_IDS, PMO_RDKIT_TASKS};
pub use patterns::SmartsPattern;
pub use qed::{rdkit_reference_counts, QedProperties};
pub use scoring::{canonicalize_batch, score_batch, score_molecule, score_smiles, MoleculeProps};
pub use sdf::{sd_tag_name, sdf_record, Coordinates, SdfRecord};

/// Silences RDKit's logging once per process: invalid SMILES are data, not stderr noise.
pub(crate) fn init() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = ffi::bridge::silence_rdkit_logs();
    });
}
