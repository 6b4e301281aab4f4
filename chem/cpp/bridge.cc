#include "chem/cpp/bridge.h"
#include "chem/src/ffi.rs.h"

#include <random>
#include <set>
#include <string>

#include <DataStructs/BitOps.h>
#include <DataStructs/ExplicitBitVect.h>
#include <DataStructs/SparseIntVect.h>
#include <GraphMol/ChemTransforms/ChemTransforms.h>
#include <GraphMol/ChemTransforms/MolFragmenter.h>
#include <GraphMol/Chirality.h>
#include <GraphMol/Depictor/RDDepictor.h>
#include <GraphMol/DistGeomHelpers/Embedder.h>
#include <GraphMol/FileParsers/FileParsers.h>
#include <GraphMol/ForceFieldHelpers/MMFF/MMFF.h>
#include <GraphMol/Descriptors/Crippen.h>
#include <GraphMol/Descriptors/Lipinski.h>
#include <GraphMol/Descriptors/MolDescriptors.h>
#include <GraphMol/Descriptors/MolSurf.h>
#include <GraphMol/Fingerprints/AtomPairs.h>
#include <GraphMol/Fingerprints/FingerprintUtil.h>
#include <GraphMol/Fingerprints/Fingerprints.h>
#include <GraphMol/MolChemicalFeatures/MolChemicalFeature.h>
#include <GraphMol/Fingerprints/MorganFingerprints.h>
#include <GraphMol/GraphMol.h>
#include <GraphMol/MolDraw2D/MolDraw2DSVG.h>
#include <GraphMol/MolDraw2D/MolDraw2DUtils.h>
#include <GraphMol/MolOps.h>
#include <GraphMol/RingInfo.h>
#include <GraphMol/SmilesParse/SmartsWrite.h>
#include <GraphMol/SmilesParse/SmilesParse.h>
#include <GraphMol/SmilesParse/SmilesWrite.h>
#include <GraphMol/Substruct/SubstructMatch.h>
#include <RDGeneral/RDLog.h>

namespace smirl {
using namespace RDKit;

void silence_rdkit_logs() {
  // RDKit prints parse and sanitization problems to stderr; invalid SMILES are data to us.
  RDLog::InitLogs();
  boost::logging::disable_logs("rdApp.*");
}

// Pattern fingerprints are 2048 bits, RDKit's default (as SubstructLibrary uses them).
static const unsigned int SCREEN_BITS = 2048;

static bool could_match(const PatternSet &set, size_t i, const ExplicitBitVect *target) {
  return target == nullptr || AllProbeBitsMatch(*set.screens[i], *target);
}

std::unique_ptr<PatternSet> pattern_set_new(const rust::Vec<rust::String> &smarts) {
  auto set = std::make_unique<PatternSet>();
  for (const auto &s : smarts) {
    std::string text(s);
    std::unique_ptr<ROMol> query(SmartsToMol(text));
    if (!query) {
      throw std::invalid_argument("invalid SMARTS: " + text);
    }
    set->screens.emplace_back(PatternFingerprintMol(*query, SCREEN_BITS));
    set->queries.push_back(std::move(query));
  }
  return set;
}

size_t pattern_set_len(const PatternSet &set) { return set.queries.size(); }

static size_t count_matching(const PatternSet &set, const ROMol &mol, bool screen) {
  std::unique_ptr<ExplicitBitVect> target;
  if (screen) target.reset(PatternFingerprintMol(mol, SCREEN_BITS));
  size_t n = 0;
  MatchVectType match;
  for (size_t i = 0; i < set.queries.size(); ++i) {
    if (could_match(set, i, target.get()) && SubstructMatch(mol, *set.queries[i], match)) {
      ++n;
    }
  }
  return n;
}

bool pattern_set_any_match(const PatternSet &set, const std::shared_ptr<ROMol> &mol, bool add_hs, bool screen) {
  std::unique_ptr<ROMol> with_hs;
  const ROMol *target = mol.get();
  if (add_hs) {
    with_hs.reset(MolOps::addHs(*mol));
    target = with_hs.get();
  }
  std::unique_ptr<ExplicitBitVect> target_fp;
  if (screen) target_fp.reset(PatternFingerprintMol(*target, SCREEN_BITS));
  MatchVectType match;
  for (size_t i = 0; i < set.queries.size(); ++i) {
    if (could_match(set, i, target_fp.get()) && SubstructMatch(*target, *set.queries[i], match)) {
      return true;
    }
  }
  return false;
}

size_t pattern_set_count_matching(const PatternSet &set, const std::shared_ptr<ROMol> &mol, bool add_hs, bool screen) {
  if (add_hs) {
    std::unique_ptr<ROMol> with_hs(MolOps::addHs(*mol));
    return count_matching(set, *with_hs, screen);
  }
  return count_matching(set, *mol, screen);
}

uint32_t heavy_atom_count(const std::shared_ptr<ROMol> &mol) { return mol->getNumHeavyAtoms(); }

uint32_t ring_count(const std::shared_ptr<ROMol> &mol) {
  // SSSR ring count, as Chem.GetSSSR / rdMolDescriptors.CalcNumRings.
  return RDKit::Descriptors::calcNumRings(*mol);
}

rust::Vec<uint64_t> morgan_bits(const std::shared_ptr<ROMol> &mol, uint32_t radius, uint32_t n_bits) {
  std::unique_ptr<ExplicitBitVect> fp(MorganFingerprints::getFingerprintAsBitVect(*mol, radius, n_bits));
  rust::Vec<uint64_t> words;
  const size_t n_words = (n_bits + 63) / 64;
  words.reserve(n_words);
  for (size_t w = 0; w < n_words; ++w) {
    words.push_back(0);
  }
  for (uint32_t bit = 0; bit < n_bits; ++bit) {
    if (fp->getBit(bit)) {
      words[bit / 64] |= (uint64_t{1} << (bit % 64));
    }
  }
  return words;
}

// RDKit's SMARTS-count descriptors: unique matches, at most 1000 (SubstructMatch's defaults).
static uint32_t count_unique_matches(const ROMol &query, const ROMol &mol) {
  std::vector<MatchVectType> matches;
  return SubstructMatch(mol, query, matches);
}

uint32_t rdkit_strict_rotatable_bonds(const std::shared_ptr<ROMol> &mol) {
  return RDKit::Descriptors::calcNumRotatableBonds(*mol, RDKit::Descriptors::Strict);
}

uint32_t rdkit_num_hba(const std::shared_ptr<ROMol> &mol) { return RDKit::Descriptors::calcNumHBA(*mol); }

QedInputs qed_inputs(const std::shared_ptr<ROMol> &mol_in, const PatternSet &acceptors,
                     const PatternSet &alerts, const PatternSet &aliphatic_rings,
                     const PatternSet &rotatable, const PatternSet &lipinski_hba) {
  // QED.properties works on Chem.RemoveHs(mol).
  std::unique_ptr<ROMol> mol(MolOps::removeHs(*mol_in));
  QedInputs out;
  out.mw = RDKit::Descriptors::calcAMW(*mol, false);
  out.alogp = RDKit::Descriptors::calcClogP(*mol);
  // Sum of (unique) matches over the acceptor patterns.
  uint32_t hba = 0;
  for (const auto &query : acceptors.queries) {
    std::vector<MatchVectType> matches;
    hba += SubstructMatch(*mol, *query, matches);
  }
  out.hba = hba;
  out.hbd = RDKit::Descriptors::calcNumHBD(*mol);
  out.psa = RDKit::Descriptors::calcTPSA(*mol);
  // RDKit's calcNumRotatableBonds(Strict) copies its recursive SMARTS query on every call (for
  // thread safety); the same query compiled once per thread (`rotatable`) gives the same count.
  out.rotb = count_unique_matches(*rotatable.queries.at(0), *mol);
  // Aromatic rings: SSSR of the molecule after deleting aliphatic ring atoms (QED's own count).
  std::unique_ptr<ROMol> stripped(deleteSubstructs(*mol, *aliphatic_rings.queries.at(0)));
  VECT_INT_VECT rings;
  out.arom = MolOps::findSSSR(*stripped, rings);
  out.alerts = count_matching(alerts, *mol, false);
  out.lipinski_hba = count_unique_matches(*lipinski_hba.queries.at(0), *mol);
  return out;
}

SaInputs sa_inputs(const std::shared_ptr<ROMol> &mol) {
  SaInputs out;
  std::unique_ptr<SparseIntVect<std::uint32_t>> fp(MorganFingerprints::getFingerprint(*mol, 2));
  for (const auto &kv : fp->getNonzeroElements()) {
    out.fragment_ids.push_back(kv.first);
    out.fragment_counts.push_back(static_cast<uint32_t>(kv.second));
  }
  out.n_atoms = mol->getNumAtoms();
  // Chem.FindMolChiralCenters(m, includeUnassigned=True), legacy perception, on a copy.
  RWMol copy(*mol);
  MolOps::assignStereochemistry(copy, false, true, true);
  uint32_t n_chiral = 0;
  for (const auto atom : copy.atoms()) {
    if (atom->hasProp(common_properties::_CIPCode) ||
        atom->hasProp(common_properties::_ChiralityPossible)) {
      ++n_chiral;
    }
  }
  out.n_chiral_centers = n_chiral;
  out.n_spiro = RDKit::Descriptors::calcNumSpiroAtoms(*mol);
  out.n_bridgeheads = RDKit::Descriptors::calcNumBridgeheadAtoms(*mol);
  uint32_t n_macro = 0;
  for (const auto &ring : mol->getRingInfo()->atomRings()) {
    if (ring.size() > 8) {
      ++n_macro;
    }
  }
  out.n_macrocycles = n_macro;
  return out;
}

static std::unique_ptr<ROMol> murcko_scaffold(const ROMol &mol) {
  // MurckoScaffold.GetScaffoldForMol.
  std::unique_ptr<ROMol> res(MurckoDecompose(mol));
  res->clearComputedProps();
  res->updatePropertyCache();
  MolOps::symmetrizeSSSR(*res);
  return res;
}

rust::String murcko_scaffold_smiles(const std::shared_ptr<ROMol> &mol) {
  return MolToSmiles(*murcko_scaffold(*mol));
}

rust::String randomized_smiles(const std::shared_ptr<ROMol> &mol, uint64_t seed) {
  // REINVENT's randomize_smiles: number the atoms in a random order, then write a non-canonical
  // SMILES, which starts at atom 0 and walks in index order. A local generator and our own
  // Fisher-Yates (not RDKit's global generator, not std::shuffle) keep it thread-safe and the
  // same on every standard library.
  const unsigned n = mol->getNumAtoms();
  std::vector<unsigned> order(n);
  for (unsigned i = 0; i < n; ++i) order[i] = i;
  std::mt19937_64 gen(seed);
  for (unsigned i = n; i > 1; --i) std::swap(order[i - 1], order[gen() % i]);
  std::unique_ptr<ROMol> renumbered(MolOps::renumberAtoms(*mol, order));
  return MolToSmiles(*renumbered, true, false, -1, false);
}

uint32_t murcko_scaffold_rings(const std::shared_ptr<ROMol> &mol) {
  return murcko_scaffold(*mol)->getRingInfo()->numRings();
}

rust::String brics_fragments_smiles(const std::shared_ptr<ROMol> &mol) {
  std::unique_ptr<ROMol> frags(MolFragmenter::fragmentOnBRICSBonds(*mol));
  return MolToSmiles(*frags);
}

bool moses_structure_ok(const std::shared_ptr<ROMol> &mol) {
  // molsets 0.3.1 mol_passes_filters, all but the SMARTS part (done with a PatternSet on the H-added mol).
  for (const auto &ring : mol->getRingInfo()->atomRings()) {
    if (ring.size() >= 8) return false;
  }
  static const std::set<std::string> allowed = {"C", "N", "S", "O", "F", "Cl", "Br", "H"};
  for (const auto atom : mol->atoms()) {
    if (atom->getFormalCharge() != 0) return false;
    if (allowed.find(atom->getSymbol()) == allowed.end()) return false;
  }
  std::string smiles = MolToSmiles(*mol, false);
  if (smiles.empty()) return false;
  try {
    std::unique_ptr<ROMol> again(SmilesToMol(smiles));
    return again != nullptr;
  } catch (const std::exception &) {
    return false;
  }
}

rust::String mol_to_svg(const std::shared_ptr<ROMol> &mol, uint32_t width, uint32_t height) {
  RWMol copy(*mol);
  RDDepict::compute2DCoords(copy);
  MolDraw2DSVG drawer(width, height);
  MolDraw2DUtils::prepareAndDrawMolecule(drawer, copy);
  drawer.finishDrawing();
  return drawer.getDrawingText();
}

MolBlock mol_block(const std::shared_ptr<ROMol> &mol, rust::Str name, bool three_d, uint32_t seed) {
  RWMol copy(*mol);
  MolBlock out;
  if (three_d) {
    // AllChem.AddHs + EmbedMolecule(ETKDGv3, randomSeed) + MMFFOptimizeMolecule, RDKit's recipe;
    // random starting coordinates are RDKit's advice when the eigenvalue start fails.
    MolOps::addHs(copy);
    DGeomHelpers::EmbedParameters params = DGeomHelpers::ETKDGv3;
    params.randomSeed = static_cast<int>(seed & 0x7fffffff);
    if (DGeomHelpers::EmbedMolecule(copy, params) < 0) {
      params.useRandomCoords = true;
      if (DGeomHelpers::EmbedMolecule(copy, params) < 0) {
        throw std::runtime_error("ETKDG found no 3D embedding");
      }
      out.note = "embedded from random coordinates";
    }
    // The embedder switches RDKit's logs back on (seen on 2022.09): parse errors of other threads
    // then reach stderr. Invalid SMILES are data to us, so they go quiet again.
    boost::logging::disable_logs("rdApp.*");
    auto mmff = MMFF::MMFFOptimizeMolecule(copy, 2000);
    if (mmff.first < 0) {
      out.note = "no MMFF94 parameters: ETKDG geometry not minimised";
    } else if (mmff.first > 0) {
      out.note = "MMFF94 minimisation stopped at 2000 iterations";
    }
  } else {
    RDDepict::compute2DCoords(copy);
  }
  copy.setProp(common_properties::_Name, std::string(name));
  out.text = MolToMolBlock(copy, true, -1, true, false);
  return out;
}

// Sparse count vectors travel as (key << 32 | count), sorted by key.
template <typename Key>
static rust::Vec<uint64_t> pack_counts(const SparseIntVect<Key> &fp) {
  rust::Vec<uint64_t> out;
  for (const auto &kv : fp.getNonzeroElements()) {
    out.push_back((static_cast<uint64_t>(static_cast<uint32_t>(kv.first)) << 32) |
                  static_cast<uint32_t>(kv.second));
  }
  return out;
}

rust::Vec<uint64_t> morgan_counts(const std::shared_ptr<ROMol> &mol, uint32_t radius, bool use_features) {
  // AllChem.GetMorganFingerprint(mol, radius, useFeatures=...): counts, bond types, no chirality.
  std::unique_ptr<SparseIntVect<std::uint32_t>> fp;
  if (use_features) {
    std::vector<std::uint32_t> invariants(mol->getNumAtoms());
    MorganFingerprints::getFeatureInvariants(*mol, invariants);
    fp.reset(MorganFingerprints::getFingerprint(*mol, radius, &invariants));
  } else {
    fp.reset(MorganFingerprints::getFingerprint(*mol, radius));
  }
  return pack_counts(*fp);
}

rust::Vec<uint64_t> atom_pair_counts(const std::shared_ptr<ROMol> &mol, uint32_t max_length) {
  // AllChem.GetAtomPairFingerprint(mol, maxLength=...), minLength 1.
  std::unique_ptr<SparseIntVect<std::int32_t>> fp(AtomPairs::getAtomPairFingerprint(*mol, 1, max_length));
  return pack_counts(*fp);
}

uint32_t aromatic_ring_count(const std::shared_ptr<ROMol> &mol) {
  return RDKit::Descriptors::calcNumAromaticRings(*mol);
}

rust::Vec<uint32_t> element_counts_with_hs(const std::shared_ptr<ROMol> &mol) {
  // Atoms per atomic number on Chem.AddHs(mol): implicit hydrogens become atoms.
  std::unique_ptr<ROMol> with_hs(MolOps::addHs(*mol));
  rust::Vec<uint32_t> counts;
  for (const auto atom : with_hs->atoms()) {
    const size_t z = atom->getAtomicNum();
    while (counts.size() <= z) {
      counts.push_back(0);
    }
    counts[z] += 1;
  }
  return counts;
}

MolGraph mol_graph(const std::shared_ptr<ROMol> &mol, bool bond_order_distances) {
  MolGraph out;
  const size_t n = mol->getNumAtoms();
  for (const auto atom : mol->atoms()) {
    out.atomic_numbers.push_back(atom->getAtomicNum());
  }
  for (const auto bond : mol->bonds()) {
    out.bond_atoms.push_back(bond->getBeginAtomIdx());
    out.bond_atoms.push_back(bond->getEndAtomIdx());
    // The numeric value of the BondType enum (SINGLE 1, DOUBLE 2, TRIPLE 3 ...), 1.5 when aromatic,
    // as GraphDescriptors.BertzCT reads bond orders.
    out.bond_orders.push_back(bond->getIsAromatic() ? 1.5 : static_cast<double>(bond->getBondType()));
  }
  // Chem.GetDistanceMatrix(mol, useBO=..., useAtomWts=0, force=1) on a copy, so that the cached
  // matrix does not stay on the molecule.
  ROMol copy(*mol);
  const double *dist = MolOps::getDistanceMat(copy, bond_order_distances, false, true,
                                              bond_order_distances ? "Balaban" : nullptr);
  out.distances.reserve(n * n);
  for (size_t i = 0; i < n * n; ++i) {
    out.distances.push_back(dist[i]);
  }
  return out;
}

std::unique_ptr<FeatureFactory> feature_factory_new(rust::Str fdef) {
  auto out = std::make_unique<FeatureFactory>();
  out->factory.reset(buildFeatureFactory(std::string(fdef)));
  return out;
}

rust::Vec<rust::String> feature_factory_families(const FeatureFactory &factory) {
  // Each definition's family, in definition order, once (as Python's GetFeatureFamilies).
  rust::Vec<rust::String> out;
  std::set<std::string> seen;
  for (auto it = factory.factory->beginFeatureDefs(); it != factory.factory->endFeatureDefs(); ++it) {
    const std::string &family = (*it)->getFamily();
    if (seen.insert(family).second) {
      out.push_back(rust::String(family));
    }
  }
  return out;
}

rust::Vec<uint32_t> feature_factory_features(const FeatureFactory &factory, const std::shared_ptr<ROMol> &mol) {
  // Every feature as [family index, atom count, atom ids...], families indexed as
  // feature_factory_families lists them and searched one at a time, as SigFactory.GetMolFeats does.
  rust::Vec<rust::String> families = feature_factory_families(factory);
  rust::Vec<uint32_t> out;
  for (uint32_t family = 0; family < families.size(); ++family) {
    const std::string name(families[family]);
    for (const auto &feature : factory.factory->getFeaturesForMol(*mol, name.c_str())) {
      out.push_back(family);
      out.push_back(feature->getAtoms().size());
      for (const auto atom : feature->getAtoms()) {
        out.push_back(atom->getIdx());
      }
    }
  }
  return out;
}
}  // namespace smirl
