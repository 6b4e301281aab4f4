//! Scoring components: one file each, every one a [`Component`] that maps a batch of molecules
//! to one raw value per molecule (NaN where it failed or the molecule is invalid). The config
//! enum [`ComponentConfig`] (tagged by `type` in TOML) carries each one's parameters, weight and
//! transform, and builds it.

mod diversity;
mod novelty;
mod oracle;
mod property;
mod qed;
mod sas;
mod similarity;
mod substructure;
mod validity;

use std::collections::HashSet;
use std::path::Path;
use std::sync::Mutex;

use chem::{Fingerprint, Molecule};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use diversity::{Diversity, DiversityMode, DiversityParams};
pub use novelty::{Novelty, NoveltyParams};
pub use oracle::{OracleComponent, OracleParams};
pub use property::{Property, PropertyComponent, PropertyParams};
pub use qed::{Qed, QedParams};
pub use sas::{Sas, SasParams};
pub use similarity::{Similarity, SimilarityParams};
pub use substructure::{Substructure, SubstructureParams};
pub use validity::{Validity, ValidityParams};

use super::transforms::Transform;
use crate::{Error, Result};

/// A batch of SMILES parsed once by RDKit and shared by every component.
///
/// chem's `Molecule` is `Send` but not `Sync`, so each one sits behind its own `Mutex`: rayon
/// workers then map over molecules in parallel, each lock taken by one worker at a time.
pub struct MolBatch {
    /// The SMILES as generated.
    pub smiles: Vec<String>,
    /// RDKit canonical SMILES of the valid ones.
    pub canonical: Vec<Option<String>>,
    mols: Vec<Mutex<Option<Molecule>>>,
}

impl MolBatch {
    /// Parses every SMILES in parallel. `complete[i] == false` (a sample cut at `max_len`) marks
    /// molecule i invalid whatever RDKit says; pass `None` to trust RDKit alone.
    pub fn new(smiles: &[String], complete: Option<&[bool]>) -> Self {
        let mols: Vec<Option<Molecule>> = smiles
            .par_iter()
            .enumerate()
            .map(|(i, s)| {
                if complete.is_some_and(|c| !c[i]) {
                    None
                } else {
                    Molecule::parse(s)
                }
            })
            .collect();
        let canonical = mols
            .iter()
            .map(|m| m.as_ref().map(Molecule::canonical_smiles))
            .collect();
        Self {
            smiles: smiles.to_vec(),
            canonical,
            mols: mols.into_iter().map(Mutex::new).collect(),
        }
    }

    /// Molecules in the batch.
    pub fn len(&self) -> usize {
        self.smiles.len()
    }

    /// Whether the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.smiles.is_empty()
    }

    /// Whether molecule `i` parsed.
    pub fn is_valid(&self, i: usize) -> bool {
        self.canonical[i].is_some()
    }

    /// `f` of every valid molecule, in parallel; `None` for invalid ones.
    pub fn map<T: Send, F: Fn(&Molecule) -> T + Sync>(&self, f: F) -> Vec<Option<T>> {
        self.mols
            .par_iter()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map(&f))
            .collect()
    }

    /// `f` of every valid molecule as f64, NaN for invalid molecules and for `f`'s failures.
    pub fn map_f64<F: Fn(&Molecule) -> Option<f64> + Sync>(&self, f: F) -> Vec<f64> {
        self.map(f)
            .into_iter()
            .map(|v| v.flatten().unwrap_or(f64::NAN))
            .collect()
    }

    /// Morgan fingerprints of the valid molecules.
    pub fn fingerprints(&self) -> Vec<Option<Fingerprint>> {
        self.map(Molecule::morgan_fingerprint)
    }
}

/// A set of canonical SMILES (the molecules a run has already produced).
pub trait SeenSet: Sync {
    /// Whether `canonical` is in the set.
    fn contains(&self, canonical: &str) -> bool;
}

impl SeenSet for HashSet<String> {
    fn contains(&self, canonical: &str) -> bool {
        HashSet::contains(self, canonical)
    }
}

/// What a component may know about the run beyond the batch.
#[derive(Default, Clone, Copy)]
pub struct ScoringContext<'a> {
    /// Canonical SMILES sampled in earlier steps of the run.
    pub seen: Option<&'a dyn SeenSet>,
    /// Fingerprints of the run's memory (the top-scored molecules so far).
    pub memory: &'a [Fingerprint],
}

/// A scoring component: one raw value per molecule of the batch, NaN for failures and for
/// invalid molecules. Values are mapped to [0, 1] by the configured transform afterwards.
pub trait Component: Send + Sync {
    /// Raw values, `batch.len()` of them.
    fn score(&self, batch: &MolBatch, ctx: &ScoringContext) -> Vec<f64>;
}

/// One configured component (a `[[scoring.components]]` table, tagged by `type`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ComponentConfig {
    /// 1 for a valid molecule (invalid molecules get a total of 0 regardless).
    Validity(ValidityParams),
    /// 1 when the canonical SMILES is not in the training set.
    Novelty(NoveltyParams),
    /// 1 when not seen before in the batch or run (or 1 − max Tanimoto to the memory).
    Diversity(DiversityParams),
    /// QED (Bickerton 2012, as RDKit).
    Qed(QedParams),
    /// Synthetic accessibility as (10 − SA) / 9: 1 is easy, 0 is hard.
    Sas(SasParams),
    /// Max Tanimoto (Morgan r2, 1024 bits) to reference molecules.
    Similarity(SimilarityParams),
    /// 1 when any of the SMARTS matches.
    RequiredSmarts(SubstructureParams),
    /// 0 when any of the SMARTS matches.
    ForbiddenSmarts(SubstructureParams),
    /// A descriptor (MW, logP, TPSA, HBD, HBA, rotatable bonds) through a transform.
    Property(PropertyParams),
    /// A GuacaMol / PMO goal-directed objective (`task = "osimertinib_mpo"`), in [0, 1].
    Oracle(OracleParams),
}

/// Weight, display name and transform shared by every component's parameters.
pub(crate) trait Common {
    fn weight(&self) -> f64;
    fn name(&self) -> Option<&str>;
    fn transform(&self) -> &Transform;
}

/// Declares a component's parameter struct: the fields every component has (`weight`, `name`,
/// `transform`), then its own, with [`Common`] implemented.
macro_rules! component_params {
    (
        $(#[$meta:meta])*
        pub struct $params:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $params {
            /// Aggregation weight (default 1).
            #[serde(default = "crate::scoring::components::default_weight")]
            pub weight: f64,
            /// Column name in logs (default: the component's type).
            #[serde(default)]
            pub name: Option<String>,
            /// Transform of the raw value to [0, 1] (default: none).
            #[serde(default)]
            pub transform: crate::scoring::transforms::Transform,
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl crate::scoring::components::Common for $params {
            fn weight(&self) -> f64 {
                self.weight
            }
            fn name(&self) -> Option<&str> {
                self.name.as_deref()
            }
            fn transform(&self) -> &crate::scoring::transforms::Transform {
                &self.transform
            }
        }
    };
}
pub(crate) use component_params;

pub(crate) fn default_weight() -> f64 {
    1.0
}

impl ComponentConfig {
    fn common(&self) -> &dyn Common {
        match self {
            ComponentConfig::Validity(p) => p,
            ComponentConfig::Novelty(p) => p,
            ComponentConfig::Diversity(p) => p,
            ComponentConfig::Qed(p) => p,
            ComponentConfig::Sas(p) => p,
            ComponentConfig::Similarity(p) => p,
            ComponentConfig::RequiredSmarts(p) | ComponentConfig::ForbiddenSmarts(p) => p,
            ComponentConfig::Property(p) => p,
            ComponentConfig::Oracle(p) => p,
        }
    }

    /// The `type` tag.
    pub fn kind(&self) -> &'static str {
        match self {
            ComponentConfig::Validity(_) => "validity",
            ComponentConfig::Novelty(_) => "novelty",
            ComponentConfig::Diversity(_) => "diversity",
            ComponentConfig::Qed(_) => "qed",
            ComponentConfig::Sas(_) => "sas",
            ComponentConfig::Similarity(_) => "similarity",
            ComponentConfig::RequiredSmarts(_) => "required_smarts",
            ComponentConfig::ForbiddenSmarts(_) => "forbidden_smarts",
            ComponentConfig::Property(p) => p.property.name(),
            ComponentConfig::Oracle(p) => OracleComponent::static_id(&p.task).unwrap_or("oracle"),
        }
    }

    /// The column name in logs: the configured `name`, else the type (the property for
    /// `property` components, the task for `oracle` ones).
    pub fn name(&self) -> String {
        self.common()
            .name()
            .map_or_else(|| self.kind().to_string(), str::to_string)
    }

    /// The aggregation weight.
    pub fn weight(&self) -> f64 {
        self.common().weight()
    }

    /// The transform from raw value to [0, 1].
    pub fn transform(&self) -> &Transform {
        self.common().transform()
    }

    /// Checks the parameters; `field` is this component's config path, for the error.
    pub fn validate(&self, field: &str) -> Result<()> {
        let w = self.weight();
        if !(w.is_finite() && w >= 0.0) {
            return Err(Error::config(
                format!("{field}.weight"),
                "must be finite and >= 0",
            ));
        }
        self.transform().validate(&format!("{field}.transform"))?;
        match self {
            ComponentConfig::Similarity(p) if p.smiles.is_empty() => Err(Error::config(
                format!("{field}.smiles"),
                "needs at least one reference SMILES",
            )),
            ComponentConfig::RequiredSmarts(p) | ComponentConfig::ForbiddenSmarts(p)
                if p.smarts.is_empty() =>
            {
                Err(Error::config(
                    format!("{field}.smarts"),
                    "needs at least one SMARTS",
                ))
            }
            ComponentConfig::Property(p) if p.transform == Transform::None => Err(Error::config(
                format!("{field}.transform"),
                "a property needs a transform to [0, 1] (sigmoid, reverse_sigmoid, double_sigmoid or step)",
            )),
            // Cheap to build, so built here: a bad SMILES or SMARTS is reported before any work.
            ComponentConfig::Similarity(p) => Similarity::new(p, field).map(drop),
            ComponentConfig::RequiredSmarts(p) | ComponentConfig::ForbiddenSmarts(p) => {
                Substructure::new(p, true, field).map(drop)
            }
            ComponentConfig::Oracle(p) if OracleComponent::static_id(&p.task).is_none() => {
                OracleComponent::new(p, field).map(drop)
            }
            ComponentConfig::Novelty(NoveltyParams {
                training_set: Some(path),
                ..
            }) if path.is_absolute() && !path.exists() => Err(Error::config(
                format!("{field}.training_set"),
                format!("{}: no such file", path.display()),
            )),
            _ => Ok(()),
        }
    }

    /// Builds the component; relative paths resolve against `base_dir` (the config's folder)
    /// and reference molecules come from `refs`. `field` names this component in errors.
    pub fn build(
        &self,
        base_dir: &Path,
        field: &str,
        refs: &dyn crate::references::SmilesSource,
    ) -> Result<Box<dyn Component>> {
        Ok(match self {
            ComponentConfig::Validity(_) => Box::new(Validity),
            ComponentConfig::Novelty(p) => Box::new(Novelty::new(p, base_dir, refs)?),
            ComponentConfig::Diversity(p) => Box::new(Diversity { mode: p.mode }),
            ComponentConfig::Qed(_) => Box::new(Qed),
            ComponentConfig::Sas(_) => Box::new(Sas),
            ComponentConfig::Similarity(p) => Box::new(Similarity::new(p, field)?),
            ComponentConfig::RequiredSmarts(p) => Box::new(Substructure::new(p, true, field)?),
            ComponentConfig::ForbiddenSmarts(p) => Box::new(Substructure::new(p, false, field)?),
            ComponentConfig::Property(p) => Box::new(PropertyComponent { property: p.property }),
            ComponentConfig::Oracle(p) => Box::new(OracleComponent::new(p, field)?),
        })
    }
}
