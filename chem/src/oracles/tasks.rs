//! The goal-directed tasks, each built exactly as guacamol 0.5.5 builds it
//! (`guacamol.standard_benchmarks` and `benchmark_suites.goal_directed_suite_v2`).

use super::modifier::Modifier::{self, Clipped, Gaussian, Identity, MaxGaussian, MinGaussian};
use super::objective::{Descriptor, Objective, Scored, TargetFingerprint};
use crate::count_fingerprint::CountFingerprintKind::{self, AtomPair, Ecfp4, Ecfp6, Fcfp4};
use crate::molecule::Molecule;
use crate::patterns::SmartsPattern;
use crate::{ChemError, Result};

fn target(smiles: &str) -> Result<Molecule> {
    Molecule::from_smiles(smiles)
}

fn similarity(smiles: &str, kind: CountFingerprintKind, modifier: Modifier) -> Result<Objective> {
    let fp = target(smiles)?.count_fingerprint(kind)?;
    Ok(Objective::Similarity(
        TargetFingerprint::Counts(kind, fp),
        modifier,
    ))
}

fn pharmacophore_similarity(smiles: &str, upper_x: f64) -> Result<Objective> {
    let bits = target(smiles)?.pharmacophore_bits()?;
    Ok(Objective::Similarity(
        TargetFingerprint::Pharmacophore(bits),
        Clipped { upper_x },
    ))
}

fn property(descriptor: Descriptor, modifier: Modifier) -> Objective {
    Objective::Property(descriptor, modifier)
}

fn smarts(pattern: &str, inverse: bool) -> Result<Objective> {
    Ok(Objective::Smarts {
        pattern: SmartsPattern::new(pattern)?,
        inverse,
    })
}

/// The atomic number of an element symbol in a molecular formula.
fn atomic_number(symbol: &str) -> Result<u32> {
    const ELEMENTS: [&str; 54] = [
        "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar",
        "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br",
        "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te",
        "I", "Xe",
    ];
    ELEMENTS
        .iter()
        .position(|&e| e == symbol)
        .map(|i| i as u32 + 1)
        .ok_or_else(|| ChemError::UnknownOracle(format!("element {symbol:?} in a molecular formula")))
}

/// `IsomerScoringFunction(formula)` with the geometric mean: one Gaussian (σ 1) per element count and
/// one (σ 2) on the total atom count, hydrogens included.
pub(crate) fn isomer(formula: &str) -> Result<Objective> {
    let mut parts = Vec::new();
    let mut total = 0u32;
    let bytes = formula.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_uppercase() {
            return Err(ChemError::UnknownOracle(format!("molecular formula {formula:?}")));
        }
        let start = i;
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_lowercase() {
            i += 1;
        }
        let symbol = &formula[start..i];
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let count: u32 = if digits_start == i {
            1
        } else {
            formula[digits_start..i].parse().unwrap()
        };
        total += count;
        parts.push(property(
            Descriptor::Element(atomic_number(symbol)?),
            Gaussian {
                mu: count as f64,
                sigma: 1.0,
            },
        ));
    }
    parts.push(property(
        Descriptor::Atoms,
        Gaussian {
            mu: total as f64,
            sigma: 2.0,
        },
    ));
    Ok(Objective::GeometricMean(parts))
}

/// A descriptor of a reference molecule (the targets of sitagliptin_mpo and valsartan_smarts).
fn descriptor_of(smiles: &str, descriptor: Descriptor) -> Result<f64> {
    let mol = target(smiles)?;
    Scored::new(&mol).descriptor(descriptor)
}

const CELECOXIB: &str = "CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F";
const TROGLITAZONE: &str = "Cc1c(C)c2OC(C)(COc3ccc(CC4SC(=O)NC4=O)cc3)CCc2c(C)c1O";
const THIOTHIXENE: &str = "CN(C)S(=O)(=O)c1ccc2Sc3ccccc3C(=CCCN4CCN(C)CC4)c2c1";
const ARIPIPRAZOLE: &str = "Clc4cccc(N3CCN(CCCCOc2ccc1c(NC(=O)CC1)c2)CC3)c4Cl";
const ALBUTEROL: &str = "CC(C)(C)NCC(O)c1ccc(O)c(CO)c1";
const MESTRANOL: &str = "COc1ccc2[C@H]3CC[C@@]4(C)[C@@H](CC[C@@]4(O)C#C)[C@@H]3CCc2c1";
const CAMPHOR: &str = "CC1(C)C2CCC1(C)C(=O)C2";
const MENTHOL: &str = "CC(C)C1CCC(C)CC1O";
const TADALAFIL: &str = "O=C1N(CC(N2C1CC3=C(C2C4=CC5=C(OCO5)C=C4)NC6=C3C=CC=C6)=O)C";
const SILDENAFIL: &str = "CCCC1=NN(C2=C1N=C(NC2=O)C3=C(C=CC(=C3)S(=O)(=O)N4CCN(CC4)C)OCC)C";
const OSIMERTINIB: &str = "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc2nccc(n2)c3cn(C)c4ccccc34";
const FEXOFENADINE: &str = "CC(C)(C(=O)O)c1ccc(cc1)C(O)CCCN2CCC(CC2)C(O)(c3ccccc3)c4ccccc4";
const RANOLAZINE: &str = "COc1ccccc1OCC(O)CN2CCN(CC(=O)Nc3c(C)cccc3C)CC2";
const PERINDOPRIL: &str = "O=C(OCC)C(NC(C(=O)N1C(C(=O)O)CC2CCCCC12)C)CCC";
const AMLODIPINE: &str = r"Clc1ccccc1C2C(=C(/N/C(=C2/C(=O)OCC)COCCN)C)\C(=O)OC";
const SITAGLIPTIN: &str = "Fc1cc(c(F)cc1F)CC(N)CC(=O)N3Cc2nnc(n2CC3)C(F)(F)F";
/// valsartan_smarts takes its property targets from sitagliptin written another way.
const SITAGLIPTIN_VALSARTAN_TASK: &str = "NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F";
const ZALEPLON: &str = "O=C(C)N(CC)C1=CC=CC(C2=CC=NC3=C(C=NN23)C#N)=C1";
const HOP_START: &str = "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C";
const HOP_SCAFFOLD: &str = "[#7]-c1n[c;h1]nc2[c;h1]c(-[#8])[c;h0][c;h1]c12";

/// Builds the scoring function of one task id (see [`super::ORACLE_IDS`]).
pub(crate) fn build(id: &str) -> Result<Objective> {
    use Descriptor::*;
    let geometric = Objective::GeometricMean;
    Ok(match id {
        "celecoxib_rediscovery" => similarity(CELECOXIB, Ecfp4, Clipped { upper_x: 1.0 })?,
        "troglitazone_rediscovery" => similarity(TROGLITAZONE, Ecfp4, Clipped { upper_x: 1.0 })?,
        "thiothixene_rediscovery" => similarity(THIOTHIXENE, Ecfp4, Clipped { upper_x: 1.0 })?,
        "aripiprazole_similarity" => similarity(ARIPIPRAZOLE, Ecfp4, Clipped { upper_x: 0.75 })?,
        "albuterol_similarity" => similarity(ALBUTEROL, Fcfp4, Clipped { upper_x: 0.75 })?,
        "mestranol_similarity" => similarity(MESTRANOL, AtomPair, Clipped { upper_x: 0.75 })?,
        "isomers_c11h24" => isomer("C11H24")?,
        "isomers_c9h10n2o2pf2cl" => isomer("C9H10N2O2PF2Cl")?,
        "isomers_c7h8n2o2" => isomer("C7H8N2O2")?,
        "median1" => geometric(vec![
            similarity(MENTHOL, Ecfp4, Identity)?,
            similarity(CAMPHOR, Ecfp4, Identity)?,
        ]),
        "median2" => geometric(vec![
            similarity(TADALAFIL, Ecfp6, Identity)?,
            similarity(SILDENAFIL, Ecfp6, Identity)?,
        ]),
        "osimertinib_mpo" => geometric(vec![
            similarity(OSIMERTINIB, Fcfp4, Clipped { upper_x: 0.8 })?,
            similarity(OSIMERTINIB, Ecfp6, MinGaussian { mu: 0.85, sigma: 0.1 })?,
            property(
                Tpsa,
                MaxGaussian {
                    mu: 100.0,
                    sigma: 10.0,
                },
            ),
            property(LogP, MinGaussian { mu: 1.0, sigma: 1.0 }),
        ]),
        "fexofenadine_mpo" => geometric(vec![
            similarity(FEXOFENADINE, AtomPair, Clipped { upper_x: 0.8 })?,
            property(
                Tpsa,
                MaxGaussian {
                    mu: 90.0,
                    sigma: 10.0,
                },
            ),
            property(LogP, MinGaussian { mu: 4.0, sigma: 1.0 }),
        ]),
        "ranolazine_mpo" => geometric(vec![
            similarity(RANOLAZINE, AtomPair, Clipped { upper_x: 0.7 })?,
            property(LogP, MaxGaussian { mu: 7.0, sigma: 1.0 }),
            property(Element(9), Gaussian { mu: 1.0, sigma: 1.0 }),
            property(
                Tpsa,
                MaxGaussian {
                    mu: 95.0,
                    sigma: 20.0,
                },
            ),
        ]),
        "perindopril_mpo" => geometric(vec![
            similarity(PERINDOPRIL, Ecfp4, Identity)?,
            property(AromaticRings, Gaussian { mu: 2.0, sigma: 0.5 }),
        ]),
        "amlodipine_mpo" => geometric(vec![
            similarity(AMLODIPINE, Ecfp4, Identity)?,
            property(Rings, Gaussian { mu: 3.0, sigma: 0.5 }),
        ]),
        "sitagliptin_mpo" => geometric(vec![
            similarity(SITAGLIPTIN, Ecfp4, Gaussian { mu: 0.0, sigma: 0.1 })?,
            property(
                LogP,
                Gaussian {
                    mu: descriptor_of(SITAGLIPTIN, LogP)?,
                    sigma: 0.2,
                },
            ),
            property(
                Tpsa,
                Gaussian {
                    mu: descriptor_of(SITAGLIPTIN, Tpsa)?,
                    sigma: 5.0,
                },
            ),
            isomer("C16H15F6N5O")?,
        ]),
        "zaleplon_mpo" => geometric(vec![
            similarity(ZALEPLON, Ecfp4, Identity)?,
            isomer("C19H17N3O2")?,
        ]),
        "valsartan_smarts" => geometric(vec![
            smarts("CN(C=O)Cc1ccc(c2ccccc2)cc1", false)?,
            property(
                LogP,
                Gaussian {
                    mu: descriptor_of(SITAGLIPTIN_VALSARTAN_TASK, LogP)?,
                    sigma: 0.2,
                },
            ),
            property(
                Tpsa,
                Gaussian {
                    mu: descriptor_of(SITAGLIPTIN_VALSARTAN_TASK, Tpsa)?,
                    sigma: 5.0,
                },
            ),
            property(
                Bertz,
                Gaussian {
                    mu: descriptor_of(SITAGLIPTIN_VALSARTAN_TASK, Bertz)?,
                    sigma: 30.0,
                },
            ),
        ]),
        "deco_hop" => Objective::ArithmeticMean(vec![
            pharmacophore_similarity(HOP_START, 0.85)?,
            smarts("CS([#6])(=O)=O", true)?,
            smarts("[#7]-c1ccc2ncsc2c1", true)?,
            smarts(HOP_SCAFFOLD, false)?,
        ]),
        "scaffold_hop" => Objective::ArithmeticMean(vec![
            pharmacophore_similarity(HOP_START, 0.75)?,
            smarts(
                "[#6]-[#6]-[#6]-[#8]-[#6]~[#6]~[#6]~[#6]~[#6]-[#7]-c1ccc2ncsc2c1",
                false,
            )?,
            smarts(HOP_SCAFFOLD, true)?,
        ]),
        "qed" => Objective::Qed,
        other => return Err(ChemError::UnknownOracle(other.to_string())),
    })
}
