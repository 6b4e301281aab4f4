//! Goal-directed objectives ("oracles"): the GuacaMol v2 tasks and PMO's RDKit-computable ones, each
//! scored exactly as the guacamol 0.5.5 package scores it (checked against its own values in
//! chem/tests/guacamol.rs).

mod modifier;
mod objective;
mod tasks;

use crate::molecule::Molecule;
use crate::Result;

/// Every task id, GuacaMol's goal-directed suite v2 first, then PMO's extra tasks.
pub const ORACLE_IDS: [&str; 22] = [
    "celecoxib_rediscovery",
    "troglitazone_rediscovery",
    "thiothixene_rediscovery",
    "aripiprazole_similarity",
    "albuterol_similarity",
    "mestranol_similarity",
    "isomers_c11h24",
    "isomers_c9h10n2o2pf2cl",
    "median1",
    "median2",
    "osimertinib_mpo",
    "fexofenadine_mpo",
    "ranolazine_mpo",
    "perindopril_mpo",
    "amlodipine_mpo",
    "sitagliptin_mpo",
    "zaleplon_mpo",
    "valsartan_smarts",
    "deco_hop",
    "scaffold_hop",
    "isomers_c7h8n2o2",
    "qed",
];

/// PMO's 23 tasks (Gao et al. 2022) less the three that need trained classifiers (DRD2, GSK3β, JNK3).
pub const PMO_RDKIT_TASKS: [&str; 20] = [
    "albuterol_similarity",
    "amlodipine_mpo",
    "celecoxib_rediscovery",
    "deco_hop",
    "fexofenadine_mpo",
    "isomers_c7h8n2o2",
    "isomers_c9h10n2o2pf2cl",
    "median1",
    "median2",
    "mestranol_similarity",
    "osimertinib_mpo",
    "perindopril_mpo",
    "qed",
    "ranolazine_mpo",
    "scaffold_hop",
    "sitagliptin_mpo",
    "thiothixene_rediscovery",
    "troglitazone_rediscovery",
    "valsartan_smarts",
    "zaleplon_mpo",
];

/// A named set of tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OracleSuite {
    /// GuacaMol's goal-directed suite v2 (20 tasks).
    Guacamol,
    /// PMO's RDKit-computable tasks (20).
    Pmo,
}

impl OracleSuite {
    /// The suite's task ids.
    pub fn ids(self) -> &'static [&'static str] {
        match self {
            OracleSuite::Guacamol => &ORACLE_IDS[..20],
            OracleSuite::Pmo => &PMO_RDKIT_TASKS,
        }
    }
}

/// Task ids from a user's list: `guacamol`, `pmo`, `all`, or ids separated by commas (suites may be
/// mixed in); each id once, in the order given. An unknown id is an error that lists the valid ones.
pub fn oracle_ids(spec: &str) -> Result<Vec<&'static str>> {
    let mut out: Vec<&'static str> = Vec::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let ids: &[&'static str] = match item {
            "guacamol" => OracleSuite::Guacamol.ids(),
            "pmo" => OracleSuite::Pmo.ids(),
            "all" => &ORACLE_IDS,
            id => match ORACLE_IDS.iter().find(|&&known| known == id) {
                Some(known) => std::slice::from_ref(known),
                None => return Err(crate::ChemError::UnknownOracle(id.to_string())),
            },
        };
        for id in ids {
            if !out.contains(id) {
                out.push(id);
            }
        }
    }
    if out.is_empty() {
        return Err(crate::ChemError::UnknownOracle(spec.to_string()));
    }
    Ok(out)
}

/// One goal-directed objective, built once (targets parsed, fingerprints computed) and shared
/// read-only between threads.
pub struct Oracle {
    id: &'static str,
    objective: objective::Objective,
}

impl Oracle {
    /// The task with this id (see [`ORACLE_IDS`]).
    pub fn new(id: &str) -> Result<Oracle> {
        let id = *ORACLE_IDS
            .iter()
            .find(|&&known| known == id)
            .ok_or_else(|| crate::ChemError::UnknownOracle(id.to_string()))?;
        Ok(Oracle {
            id,
            objective: tasks::build(id)?,
        })
    }

    /// The task id.
    pub fn id(&self) -> &'static str {
        self.id
    }

    /// The objective's value for a valid molecule, in [0, 1].
    pub fn score(&self, mol: &Molecule) -> Result<f64> {
        self.objective.score(&objective::Scored::new(mol))
    }

    /// The value for a SMILES; `None` when RDKit cannot parse it (guacamol's score −1) or an RDKit
    /// call fails on it.
    pub fn score_smiles(&self, smiles: &str) -> Option<f64> {
        let mol = Molecule::parse(smiles)?;
        self.score(&mol).ok()
    }
}

/// Every oracle's value for every SMILES, in parallel: `out[i][k]` is oracle `k` on molecule `i`,
/// `None` where the SMILES is invalid. Each molecule is parsed once for all the oracles.
pub fn score_oracles(oracles: &[Oracle], smiles: &[&str]) -> Vec<Vec<Option<f64>>> {
    use rayon::prelude::*;
    smiles
        .par_iter()
        .map(|s| match Molecule::parse(s) {
            Some(mol) => oracles.iter().map(|o| o.score(&mol).ok()).collect(),
            None => vec![None; oracles.len()],
        })
        .collect()
}

impl std::fmt::Debug for Oracle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Oracle").field(&self.id).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suites_and_lists() {
        assert_eq!(oracle_ids("guacamol").unwrap().len(), 20);
        assert_eq!(oracle_ids("pmo").unwrap().len(), 20);
        assert_eq!(oracle_ids("all").unwrap().len(), 22);
        assert_eq!(oracle_ids("qed, median1,qed").unwrap(), vec!["qed", "median1"]);
        let err = oracle_ids("qed,drd2").unwrap_err().to_string();
        assert!(
            err.contains("drd2") && err.contains("celecoxib_rediscovery"),
            "{err}"
        );
        assert!(PMO_RDKIT_TASKS.iter().all(|id| ORACLE_IDS.contains(id)));
    }

    #[test]
    fn every_task_builds() {
        for id in ORACLE_IDS {
            let oracle = Oracle::new(id).unwrap();
            assert_eq!(oracle.id(), id);
        }
    }
}
