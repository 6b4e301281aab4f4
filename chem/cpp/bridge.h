// smirl's own C++ bridge to RDKit, for the calls rdkit-sys 0.4 lacks.
// Every function may throw; the Rust side declares them `Result` so cxx turns exceptions into errors.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <DataStructs/ExplicitBitVect.h>
#include <GraphMol/MolChemicalFeatures/MolChemicalFeatureFactory.h>
#include <GraphMol/ROMol.h>

#include "rust/cxx.h"

namespace smirl {
using RDKit::ROMol;

struct QedInputs;
struct SaInputs;
struct MolGraph;
struct MolBlock;

// A pharmacophore feature factory built from an RDKit feature-definition (fdef) text.
struct FeatureFactory {
  std::unique_ptr<RDKit::MolChemicalFeatureFactory> factory;
};

// A compiled list of SMARTS queries, shared read-only between threads, with each query's pattern
// fingerprint: a query can only match a molecule whose pattern fingerprint has all the query's bits.
struct PatternSet {
  std::vector<std::unique_ptr<RDKit::ROMol>> queries;
  std::vector<std::unique_ptr<ExplicitBitVect>> screens;
};

void silence_rdkit_logs();

std::unique_ptr<PatternSet> pattern_set_new(const rust::Vec<rust::String> &smarts);
size_t pattern_set_len(const PatternSet &set);
bool pattern_set_any_match(const PatternSet &set, const std::shared_ptr<ROMol> &mol, bool add_hs, bool screen);
size_t pattern_set_count_matching(const PatternSet &set, const std::shared_ptr<ROMol> &mol, bool add_hs, bool screen);

uint32_t heavy_atom_count(const std::shared_ptr<ROMol> &mol);
uint32_t ring_count(const std::shared_ptr<ROMol> &mol);
rust::Vec<uint64_t> morgan_bits(const std::shared_ptr<ROMol> &mol, uint32_t radius, uint32_t n_bits);
QedInputs qed_inputs(const std::shared_ptr<ROMol> &mol, const PatternSet &acceptors,
                     const PatternSet &alerts, const PatternSet &aliphatic_rings,
                     const PatternSet &rotatable, const PatternSet &lipinski_hba);
uint32_t rdkit_strict_rotatable_bonds(const std::shared_ptr<ROMol> &mol);
uint32_t rdkit_num_hba(const std::shared_ptr<ROMol> &mol);
SaInputs sa_inputs(const std::shared_ptr<ROMol> &mol);
rust::String murcko_scaffold_smiles(const std::shared_ptr<ROMol> &mol);
rust::String randomized_smiles(const std::shared_ptr<ROMol> &mol, uint64_t seed);
uint32_t murcko_scaffold_rings(const std::shared_ptr<ROMol> &mol);
rust::String brics_fragments_smiles(const std::shared_ptr<ROMol> &mol);
bool moses_structure_ok(const std::shared_ptr<ROMol> &mol);
rust::Vec<uint64_t> morgan_counts(const std::shared_ptr<ROMol> &mol, uint32_t radius, bool use_features);
rust::Vec<uint64_t> atom_pair_counts(const std::shared_ptr<ROMol> &mol, uint32_t max_length);
uint32_t aromatic_ring_count(const std::shared_ptr<ROMol> &mol);
rust::Vec<uint32_t> element_counts_with_hs(const std::shared_ptr<ROMol> &mol);
MolGraph mol_graph(const std::shared_ptr<ROMol> &mol, bool bond_order_distances);
std::unique_ptr<FeatureFactory> feature_factory_new(rust::Str fdef);
rust::Vec<rust::String> feature_factory_families(const FeatureFactory &factory);
rust::Vec<uint32_t> feature_factory_features(const FeatureFactory &factory, const std::shared_ptr<ROMol> &mol);
MolBlock mol_block(const std::shared_ptr<ROMol> &mol, rust::Str name, bool three_d, uint32_t seed);
rust::String mol_to_svg(const std::shared_ptr<ROMol> &mol, uint32_t width, uint32_t height);
}  // namespace smirl
