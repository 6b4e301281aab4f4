//! Rewards in three layers, after REINVENT 4: [`components`] (one raw value per molecule, NaN
//! for failures), [`transforms`] (raw → [0, 1]) and [`aggregate`] (weighted means, NaN masked).
//! [`Scorer`] runs them over a batch; invalid molecules always get a total of 0.

pub mod aggregate;
pub mod components;
pub mod transforms;

use std::path::Path;

use serde::{Deserialize, Serialize};

use aggregate::{aggregate, Aggregation};
use components::{Component, ComponentConfig, MolBatch, ScoringContext};

use crate::{Error, Result};

/// The `[scoring]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoringConfig {
    /// `arithmetic` (default) or `geometric` weighted mean.
    #[serde(default)]
    pub aggregation: Aggregation,
    /// The components (`[[scoring.components]]`), at least one.
    pub components: Vec<ComponentConfig>,
}

impl ScoringConfig {
    /// Checks every component; the error names the bad field (`scoring.components[i].…`).
    pub fn validate(&self) -> Result<()> {
        if self.components.is_empty() {
            return Err(Error::config(
                "scoring.components",
                "needs at least one component",
            ));
        }
        for (i, c) in self.components.iter().enumerate() {
            c.validate(&format!("scoring.components[{i}]"))?;
        }
        if self.components.iter().all(|c| c.weight() == 0.0) {
            return Err(Error::config("scoring.components", "all weights are 0"));
        }
        let names = self.names();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(Error::config(
                    format!("scoring.components[{i}].name"),
                    format!("duplicate component name {n:?}; set `name`"),
                ));
            }
        }
        Ok(())
    }

    /// Component names, in config order (log columns).
    pub fn names(&self) -> Vec<String> {
        self.components.iter().map(ComponentConfig::name).collect()
    }
}

/// Scores of one batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Aggregated reward per molecule in [0, 1]; 0 for invalid molecules.
    pub total: Vec<f64>,
    /// Transformed component values `[component][molecule]`, NaN where the component failed
    /// or the molecule is invalid.
    pub components: Vec<Vec<f64>>,
}

/// Built components, ready to score batches.
pub struct Scorer {
    names: Vec<String>,
    weights: Vec<f64>,
    configs: Vec<ComponentConfig>,
    aggregation: Aggregation,
    components: Vec<Box<dyn Component>>,
}

impl Scorer {
    /// Validates `cfg` and builds its components; relative paths resolve against `base_dir`,
    /// reference molecules (novelty's training set) come from `refs`.
    pub fn new(cfg: &ScoringConfig, base_dir: &Path, refs: &dyn crate::SmilesSource) -> Result<Self> {
        cfg.validate()?;
        let components = cfg
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| c.build(base_dir, &format!("scoring.components[{i}]"), refs))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            names: cfg.names(),
            weights: cfg.components.iter().map(ComponentConfig::weight).collect(),
            configs: cfg.components.clone(),
            aggregation: cfg.aggregation,
            components,
        })
    }

    /// Component names, in config order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Scores a batch: components → transforms → aggregation; invalid molecules (and those
    /// whose every component failed) get 0.
    pub fn score(&self, batch: &MolBatch, ctx: &ScoringContext) -> Result<Scores> {
        let mut columns = Vec::with_capacity(self.components.len());
        for ((comp, cfg), name) in self.components.iter().zip(&self.configs).zip(&self.names) {
            let raw = comp.score(batch, ctx);
            if raw.len() != batch.len() {
                return Err(Error::LengthMismatch {
                    name: name.clone(),
                    got: raw.len(),
                    expected: batch.len(),
                });
            }
            let mut col = cfg.transform().apply_all(&raw);
            for (i, v) in col.iter_mut().enumerate() {
                if !batch.is_valid(i) {
                    *v = f64::NAN;
                }
            }
            columns.push(col);
        }
        let total = aggregate(self.aggregation, &self.names, &columns, &self.weights)?
            .into_iter()
            .enumerate()
            .map(|(i, t)| if batch.is_valid(i) && !t.is_nan() { t } else { 0.0 })
            .collect();
        Ok(Scores {
            total,
            components: columns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn scorer(toml_text: &str) -> Scorer {
        let cfg: ScoringConfig = toml::from_str(toml_text).unwrap();
        Scorer::new(&cfg, Path::new("."), &crate::references::embedded_corpus()).unwrap()
    }

    fn batch(smiles: &[&str]) -> MolBatch {
        MolBatch::new(&smiles.iter().map(|s| s.to_string()).collect::<Vec<_>>(), None)
    }

    const CELECOXIB: &str = "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1";

    /// QED and SAS equal chem's values; invalid SMILES score 0 in total and NaN per component.
    #[test]
    fn qed_and_sas_match_chem() {
        let s = scorer("[[components]]\ntype = \"qed\"\n[[components]]\ntype = \"sas\"\nweight = 0");
        let b = batch(&["c1ccccc1O", CELECOXIB, "C1CC", "CC(=O)Nc1ccc(O)cc1"]);
        let out = s.score(&b, &ScoringContext::default()).unwrap();
        for (i, smi) in [(0, "c1ccccc1O"), (1, CELECOXIB), (3, "CC(=O)Nc1ccc(O)cc1")] {
            let m = chem::Molecule::parse(smi).unwrap();
            assert_eq!(out.components[0][i], m.qed().unwrap());
            assert_eq!(out.components[1][i], (10.0 - m.sa_score().unwrap()) / 9.0);
            assert_eq!(out.total[i], m.qed().unwrap()); // sas has weight 0
        }
        assert_eq!(out.total[2], 0.0);
        assert!(out.components[0][2].is_nan() && out.components[1][2].is_nan());
        assert_eq!(s.names(), ["qed", "sas"]);
    }

    /// A molecule is maximally similar to itself; SMARTS, novelty, diversity and property
    /// windows give their documented values.
    #[test]
    fn components_at_known_values() {
        let text = format!(
            r#"
[[components]]
type = "similarity"
smiles = ["{CELECOXIB}", "CCO"]
[[components]]
type = "required_smarts"
smarts = ["S(=O)(=O)N"]
[[components]]
type = "forbidden_smarts"
smarts = ["[Cl,Br,I]", "C(F)(F)F"]
[[components]]
type = "property"
property = "hbd"
transform = {{ type = "step", low = 0, high = 1 }}
[[components]]
type = "diversity"
[[components]]
type = "novelty"
"#
        );
        let s = scorer(&text);
        let b = batch(&["CCO", CELECOXIB, "OCC", "Clc1ccccc1", "NCCO"]);
        let seen: HashSet<String> = ["NCCO".to_string()].into();
        let ctx = ScoringContext {
            seen: Some(&seen),
            memory: &[],
        };
        let out = s.score(&b, &ctx).unwrap();
        assert_eq!(out.components[0][0], 1.0);
        assert_eq!(out.components[0][1], 1.0);
        assert!(out.components[0][3] < 0.5);
        assert_eq!(out.components[1], vec![0.0, 1.0, 0.0, 0.0, 0.0]);
        assert_eq!(out.components[2], vec![1.0, 0.0, 1.0, 0.0, 1.0]);
        // HBD: ethanol 1, celecoxib 1 (NH2 counts once), chlorobenzene 0, ethanolamine 2.
        assert_eq!(out.components[3], vec![1.0, 1.0, 1.0, 1.0, 0.0]);
        // "OCC" duplicates "CCO" (same canonical form); "NCCO" was seen in an earlier step.
        assert_eq!(out.components[4], vec![1.0, 1.0, 0.0, 1.0, 0.0]);
        // Novelty against the embedded MOSES corpus: small fragments are not in MOSES.
        assert!(out.components[5].iter().all(|&v| v == 1.0));
        let train = chem::Molecule::parse(&datasets::embedded_corpus()[0])
            .unwrap()
            .canonical_smiles();
        let nb = MolBatch::new(&[train], None);
        let nov = s.score(&nb, &ctx).unwrap();
        assert_eq!(nov.components[5], vec![0.0]);
    }

    /// Tanimoto-mode diversity is 1 − max similarity to the memory (1 with an empty memory).
    #[test]
    fn tanimoto_diversity_against_memory() {
        let s = scorer("[[components]]\ntype = \"diversity\"\nmode = \"tanimoto\"");
        let b = batch(&["CCO", "c1ccccc1", "C1C"]);
        let out = s.score(&b, &ScoringContext::default()).unwrap();
        assert_eq!(out.components[0][..2], [1.0, 1.0]);
        let memory = [chem::Molecule::parse("CCO").unwrap().morgan_fingerprint()];
        let ctx = ScoringContext {
            seen: None,
            memory: &memory,
        };
        let out = s.score(&b, &ctx).unwrap();
        assert_eq!(out.components[0][0], 0.0);
        assert_eq!(out.components[0][1], 1.0);
        assert!(out.components[0][2].is_nan());
    }

    /// An oracle component is chem's objective: a rediscovery target scores 1 on itself (Tanimoto
    /// of identical fingerprints), PMO's `qed` task is QED, an invalid molecule is NaN, the log
    /// column is the task id, and an unknown task is an error naming the field.
    #[test]
    fn oracle_components_score_their_task() {
        let s = scorer("[[components]]\ntype = \"oracle\"\ntask = \"celecoxib_rediscovery\"\n[[components]]\ntype = \"oracle\"\ntask = \"qed\"\nweight = 0");
        let b = batch(&[CELECOXIB, "CC(=O)Nc1ccc(O)cc1", "C1CC"]);
        let out = s.score(&b, &ScoringContext::default()).unwrap();
        assert_eq!(out.components[0][0], 1.0);
        assert!(out.components[0][1] > 0.0 && out.components[0][1] < 0.3);
        let paracetamol = chem::Molecule::parse("CC(=O)Nc1ccc(O)cc1").unwrap();
        assert!((out.components[1][1] - paracetamol.qed().unwrap()).abs() < 1e-12);
        assert!(out.components[0][2].is_nan() && out.components[1][2].is_nan());
        assert_eq!(s.names(), ["celecoxib_rediscovery", "qed"]);
        let bad: ScoringConfig =
            toml::from_str("[[components]]\ntype = \"oracle\"\ntask = \"drd2\"").unwrap();
        let err = bad.validate().unwrap_err().to_string();
        assert!(
            err.contains("components[0].task") && err.contains("osimertinib_mpo"),
            "{err}"
        );
    }

    /// Config errors name the field; unknown keys are refused.
    #[test]
    fn config_errors_name_the_field() {
        let bad: ScoringConfig = toml::from_str("[[components]]\ntype = \"qed\"\nweight = -1").unwrap();
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .contains("components[0].weight"));
        assert!(toml::from_str::<ScoringConfig>("[[components]]\ntype = \"qed\"\nwieght = 1").is_err());
        let prop: ScoringConfig = toml::from_str(
            "[[components]]\ntype = \"property\"\nproperty = \"mw\"\ntransform = { type = \"none\" }",
        )
        .unwrap();
        assert!(prop
            .validate()
            .unwrap_err()
            .to_string()
            .contains("components[0].transform"));
        let smarts: ScoringConfig =
            toml::from_str("[[components]]\ntype = \"forbidden_smarts\"\nsmarts = [\"C(\"]").unwrap();
        let err = Scorer::new(&smarts, Path::new("."), &crate::references::embedded_corpus())
            .err()
            .unwrap();
        assert!(err.to_string().contains("smarts[0]"), "{err}");
    }
}
