//! Property windows: a descriptor (MW, logP, TPSA, HBD, HBA, rotatable bonds, as RDKit computes
//! them for QED, hydrogens removed) mapped to [0, 1] by a transform (`double_sigmoid` or `step`
//! for a window, `sigmoid`/`reverse_sigmoid` for a bound).

use serde::{Deserialize, Serialize};

use super::{Component, MolBatch, ScoringContext};

/// Which descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Property {
    /// Average molecular weight (Descriptors.MolWt).
    Mw,
    /// Crippen logP.
    Logp,
    /// Topological polar surface area.
    Tpsa,
    /// Lipinski H-bond donors.
    Hbd,
    /// Lipinski H-bond acceptors.
    Hba,
    /// Rotatable bonds (RDKit strict).
    RotatableBonds,
}

impl Property {
    /// Snake-case name, the default log column.
    pub fn name(&self) -> &'static str {
        match self {
            Property::Mw => "mw",
            Property::Logp => "logp",
            Property::Tpsa => "tpsa",
            Property::Hbd => "hbd",
            Property::Hba => "hba",
            Property::RotatableBonds => "rotatable_bonds",
        }
    }

    /// The descriptor's value.
    pub fn of(&self, d: &chem::Descriptors) -> f64 {
        match self {
            Property::Mw => d.mw,
            Property::Logp => d.logp,
            Property::Tpsa => d.tpsa,
            Property::Hbd => d.hbd as f64,
            Property::Hba => d.hba as f64,
            Property::RotatableBonds => d.rotb as f64,
        }
    }
}

super::component_params! {
    /// Parameters of the `property` component.
    pub struct PropertyParams {
        /// Which descriptor.
        pub property: Property,
    }
}

/// The property component (raw descriptor; the scorer applies the transform).
pub struct PropertyComponent {
    /// Which descriptor.
    pub property: Property,
}

impl Component for PropertyComponent {
    fn score(&self, batch: &MolBatch, _ctx: &ScoringContext) -> Vec<f64> {
        batch.map_f64(|m| {
            m.qed_properties_and_descriptors()
                .ok()
                .map(|(_, d)| self.property.of(&d))
        })
    }
}
