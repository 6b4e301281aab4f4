//! QED, the quantitative estimate of drug-likeness (Bickerton et al. 2012), computed exactly as
//! RDKit's Python `QED.qed`: eight properties mapped through asymmetric double sigmoids (ADS) and
//! combined as a weighted geometric mean.

use crate::error::{rdkit, Result};
use crate::ffi::bridge;
use crate::molecule::{Descriptors, Molecule};
use crate::patterns::SmartsPattern;
use crate::qed_data::{
    ACCEPTOR_SMARTS, ADS_PARAMETERS, ALIPHATIC_RINGS, LIPINSKI_HBA, STRICT_ROTATABLE_BOND,
    STRUCTURAL_ALERT_SMARTS, WEIGHT_MEAN,
};

/// The eight inputs of QED (`QED.properties`), computed on the molecule with hydrogens removed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QedProperties {
    /// Average molecular weight.
    pub mw: f64,
    /// Crippen logP.
    pub alogp: f64,
    /// H-bond acceptors by QED's own SMARTS (not Lipinski's count).
    pub hba: u32,
    /// Lipinski H-bond donors.
    pub hbd: u32,
    /// Topological polar surface area.
    pub psa: f64,
    /// Rotatable bonds, strict definition.
    pub rotb: u32,
    /// Aromatic rings: SSSR after deleting aliphatic ring atoms.
    pub arom: u32,
    /// Number of structural alerts that match.
    pub alerts: u32,
}

struct QedPatterns {
    acceptors: SmartsPattern,
    alerts: SmartsPattern,
    aliphatic_rings: SmartsPattern,
    rotatable: SmartsPattern,
    lipinski_hba: SmartsPattern,
}

impl QedPatterns {
    fn compile() -> QedPatterns {
        QedPatterns {
            acceptors: SmartsPattern::any_of(ACCEPTOR_SMARTS).expect("QED acceptor SMARTS"),
            alerts: SmartsPattern::any_of(STRUCTURAL_ALERT_SMARTS).expect("QED alert SMARTS"),
            aliphatic_rings: SmartsPattern::new(ALIPHATIC_RINGS).expect("QED aliphatic ring SMARTS"),
            rotatable: SmartsPattern::new(STRICT_ROTATABLE_BOND).expect("rotatable bond SMARTS"),
            lipinski_hba: SmartsPattern::new(LIPINSKI_HBA).expect("Lipinski HBA SMARTS"),
        }
    }
}

thread_local! {
    // One compiled copy per thread: RDKit serialises matching of a shared recursive (`$(...)`)
    // query with a mutex, so threads sharing one set would queue on each other.
    static PATTERNS: QedPatterns = QedPatterns::compile();
}

/// The ADS function of QED for one property.
fn ads(x: f64, p: &[f64; 7]) -> f64 {
    let [a, b, c, d, e, f, dmax] = *p;
    let exp1 = 1.0 + (-(x - c + d / 2.0) / e).exp();
    let exp2 = 1.0 + (-(x - c - d / 2.0) / f).exp();
    (a + b / exp1 * (1.0 - 1.0 / exp2)) / dmax
}

impl From<&bridge::QedInputs> for QedProperties {
    fn from(q: &bridge::QedInputs) -> Self {
        QedProperties {
            mw: q.mw,
            alogp: q.alogp,
            hba: q.hba,
            hbd: q.hbd,
            psa: q.psa,
            rotb: q.rotb,
            arom: q.arom,
            alerts: q.alerts,
        }
    }
}

impl QedProperties {
    /// The property values in QED's order (MW, ALOGP, HBA, HBD, PSA, ROTB, AROM, ALERTS).
    pub fn as_array(&self) -> [f64; 8] {
        [
            self.mw,
            self.alogp,
            self.hba as f64,
            self.hbd as f64,
            self.psa,
            self.rotb as f64,
            self.arom as f64,
            self.alerts as f64,
        ]
    }

    /// Weighted QED (`QED.qed` with `WEIGHT_MEAN`).
    pub fn qed(&self) -> f64 {
        let values = self.as_array();
        let mut t = 0.0;
        for i in 0..8 {
            t += WEIGHT_MEAN[i] * ads(values[i], &ADS_PARAMETERS[i]).ln();
        }
        (t / WEIGHT_MEAN.iter().sum::<f64>()).exp()
    }
}

impl Molecule {
    fn qed_inputs(&self) -> Result<bridge::QedInputs> {
        PATTERNS
            .with(|p| {
                self.with(|m| {
                    bridge::qed_inputs(
                        m,
                        p.acceptors.inner(),
                        p.alerts.inner(),
                        p.aliphatic_rings.inner(),
                        p.rotatable.inner(),
                        p.lipinski_hba.inner(),
                    )
                })
            })
            .map_err(rdkit("QED properties"))
    }

    /// The eight QED properties.
    pub fn qed_properties(&self) -> Result<QedProperties> {
        Ok(QedProperties::from(&self.qed_inputs()?))
    }

    /// QED's properties and the common descriptors in one pass: both are computed on the molecule
    /// with hydrogens removed, so MW, logP, TPSA, HBD and rotatable bonds (strict) are shared and
    /// only Lipinski's HBA is added.
    pub fn qed_properties_and_descriptors(&self) -> Result<(QedProperties, Descriptors)> {
        let q = self.qed_inputs()?;
        let d = Descriptors {
            mw: q.mw,
            logp: q.alogp,
            tpsa: q.psa,
            hbd: q.hbd,
            hba: q.lipinski_hba,
            rotb: q.rotb,
        };
        Ok((QedProperties::from(&q), d))
    }

    /// QED in (0, 1); its theoretical maximum is about 0.948.
    pub fn qed(&self) -> Result<f64> {
        Ok(self.qed_properties()?.qed())
    }
}

/// RDKit's own `calcNumRotatableBonds(Strict)` and `calcNumHBA`, to test our once-compiled copies.
#[doc(hidden)]
pub fn rdkit_reference_counts(mol: &Molecule) -> (u32, u32) {
    let rotb = mol.with(bridge::rdkit_strict_rotatable_bonds).unwrap();
    let hba = mol.with(bridge::rdkit_num_hba).unwrap();
    (rotb, hba)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ads_peaks_near_its_centre() {
        // The MW desirability is highest near 300 Da and falls away on both sides.
        let p = &ADS_PARAMETERS[0];
        assert!(ads(300.0, p) > ads(150.0, p));
        assert!(ads(300.0, p) > ads(600.0, p));
        assert!((ads(300.0, p) - 1.0).abs() < 0.05);
    }
}
