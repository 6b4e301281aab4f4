//! GuacaMol's scoring-function tree (`guacamol.common_scoring_functions`, `guacamol.scoring_function`)
//! evaluated on one molecule: similarities, descriptors, formulas and SMARTS, each through a modifier,
//! combined by arithmetic or geometric means.

use std::cell::OnceCell;

use super::modifier::Modifier;
use crate::count_fingerprint::{CountFingerprint, CountFingerprintKind};
use crate::molecule::{Descriptors, Molecule};
use crate::patterns::SmartsPattern;
use crate::pharmacophore::bits_tanimoto;
use crate::Result;

/// A molecular property GuacaMol reads through `guacamol.utils.descriptors`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Descriptor {
    LogP,
    Tpsa,
    Bertz,
    Rings,
    AromaticRings,
    /// Atoms after `Chem.AddHs` (`num_atoms`).
    Atoms,
    /// Atoms of one element, hydrogens included when it is H (`AtomCounter`).
    Element(u32),
}

/// A similarity target's fingerprint.
pub(crate) enum TargetFingerprint {
    Counts(CountFingerprintKind, CountFingerprint),
    /// Gobbi 2D pharmacophore bits (GuacaMol's "PHCO").
    Pharmacophore(Vec<u32>),
}

/// One node of a scoring function.
pub(crate) enum Objective {
    /// Tanimoto similarity to a target molecule (`TanimotoScoringFunction`).
    Similarity(TargetFingerprint, Modifier),
    /// A descriptor through a modifier (`RdkitScoringFunction`).
    Property(Descriptor, Modifier),
    /// 1 when the SMARTS matches (0 when `inverse`), else the opposite (`SMARTSScoringFunction`).
    Smarts {
        pattern: SmartsPattern,
        inverse: bool,
    },
    /// QED (`Descriptors.qed`).
    Qed,
    ArithmeticMean(Vec<Objective>),
    GeometricMean(Vec<Objective>),
}

/// A molecule with the values several nodes share computed once.
pub(crate) struct Scored<'a> {
    pub(crate) mol: &'a Molecule,
    descriptors: OnceCell<Descriptors>,
    elements: OnceCell<Vec<u32>>,
}

impl<'a> Scored<'a> {
    pub(crate) fn new(mol: &'a Molecule) -> Self {
        Scored {
            mol,
            descriptors: OnceCell::new(),
            elements: OnceCell::new(),
        }
    }

    fn descriptors(&self) -> Result<&Descriptors> {
        if self.descriptors.get().is_none() {
            let _ = self.descriptors.set(self.mol.descriptors()?);
        }
        Ok(self.descriptors.get().unwrap())
    }

    fn elements(&self) -> Result<&[u32]> {
        if self.elements.get().is_none() {
            let _ = self.elements.set(self.mol.element_counts_with_hs()?);
        }
        Ok(self.elements.get().unwrap())
    }

    pub(crate) fn descriptor(&self, which: Descriptor) -> Result<f64> {
        Ok(match which {
            Descriptor::LogP => self.descriptors()?.logp,
            Descriptor::Tpsa => self.descriptors()?.tpsa,
            Descriptor::Bertz => self.mol.bertz_ct()?,
            Descriptor::Rings => self.mol.ring_count() as f64,
            Descriptor::AromaticRings => self.mol.aromatic_ring_count()? as f64,
            Descriptor::Atoms => self.elements()?.iter().sum::<u32>() as f64,
            Descriptor::Element(z) => self.elements()?.get(z as usize).copied().unwrap_or(0) as f64,
        })
    }
}

impl Objective {
    pub(crate) fn score(&self, m: &Scored) -> Result<f64> {
        Ok(match self {
            Objective::Similarity(target, modifier) => {
                let similarity = match target {
                    TargetFingerprint::Counts(kind, fp) => m.mol.count_fingerprint(*kind)?.tanimoto(fp),
                    TargetFingerprint::Pharmacophore(bits) => {
                        bits_tanimoto(&m.mol.pharmacophore_bits()?, bits)
                    }
                };
                modifier.apply(similarity)
            }
            Objective::Property(descriptor, modifier) => modifier.apply(m.descriptor(*descriptor)?),
            Objective::Smarts { pattern, inverse } => {
                let found = pattern.any_match(m.mol, false)?;
                if found != *inverse {
                    1.0
                } else {
                    0.0
                }
            }
            Objective::Qed => m.mol.qed()?,
            Objective::ArithmeticMean(parts) => {
                let mut sum = 0.0;
                for part in parts {
                    sum += part.score(m)?;
                }
                sum / parts.len() as f64
            }
            Objective::GeometricMean(parts) => {
                let mut product = 1.0;
                for part in parts {
                    product *= part.score(m)?;
                }
                product.powf(1.0 / parts.len() as f64)
            }
        })
    }
}
