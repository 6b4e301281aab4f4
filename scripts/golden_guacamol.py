#!/usr/bin/env python3
"""Golden values for smirl's goal-directed objectives (issue 19), computed by the guacamol 0.5.5 package itself.

Run with Debian's python3-rdkit (RDKit 2022.09, the version chem/ links) and numpy:
    python3 scripts/golden_guacamol.py            # writes chem/tests/data/golden_guacamol.csv
The guacamol wheel is fetched with `pip download --no-deps guacamol==0.5.5` into a temporary folder. Its
scoring needs only RDKit and numpy; the modules its benchmark code imports for other purposes (tqdm, joblib,
fcd) are replaced by empty stand-ins, since none of them is used to score a molecule.

Inputs: the molecules of chem/tests/data/golden_public.csv (MOSES test molecules and edge cases, invalid
strings included), every task's target molecules, and analogues picked to land in the middle of the
modifiers (near-isomers, scaffold-keeping and scaffold-hopping variants, fluorinated analogues).
Columns: smiles, one per task id (-1 is guacamol's score for a molecule it cannot parse), then the descriptors
the objectives are built from.
"""
import csv
import os
import subprocess
import sys
import tempfile
import types
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "chem", "tests", "data", "golden_guacamol.csv")

for missing in ("tqdm", "joblib", "fcd"):
    try:
        __import__(missing)
    except ImportError:
        stub = types.ModuleType(missing)
        stub.tqdm = type("tqdm", (), {})
        stub.Parallel = stub.delayed = None
        sys.modules[missing] = stub

tmp = tempfile.mkdtemp()
subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "guacamol==0.5.5", "-d", tmp],
               check=True)
wheel = next(f for f in os.listdir(tmp) if f.endswith(".whl"))
zipfile.ZipFile(os.path.join(tmp, wheel)).extractall(tmp)
sys.path.insert(0, tmp)

import rdkit  # noqa: E402
from guacamol import standard_benchmarks as sb  # noqa: E402
from guacamol.utils import descriptors as d  # noqa: E402
from guacamol.utils.chemistry import smiles_to_rdkit_mol  # noqa: E402

TASKS = {
    "celecoxib_rediscovery": None, "troglitazone_rediscovery": None, "thiothixene_rediscovery": None,
    "aripiprazole_similarity": None, "albuterol_similarity": None, "mestranol_similarity": None,
    "isomers_c11h24": sb.isomers_c11h24(), "isomers_c9h10n2o2pf2cl": sb.isomers_c9h10n2o2pf2cl(),
    "isomers_c7h8n2o2": sb.isomers_c7h8n2o2(),
    "median1": sb.median_camphor_menthol(), "median2": sb.median_tadalafil_sildenafil(),
    "osimertinib_mpo": sb.hard_osimertinib(), "fexofenadine_mpo": sb.hard_fexofenadine(),
    "ranolazine_mpo": sb.ranolazine_mpo(), "perindopril_mpo": sb.perindopril_rings(),
    "amlodipine_mpo": sb.amlodipine_rings(), "sitagliptin_mpo": sb.sitagliptin_replacement(),
    "zaleplon_mpo": sb.zaleplon_with_other_formula(), "valsartan_smarts": sb.valsartan_smarts(),
    "deco_hop": sb.decoration_hop(), "scaffold_hop": sb.scaffold_hop(), "qed": sb.qed_benchmark(),
}
# The similarity tasks exactly as guacamol's goal_directed_suite_v2 builds them.
SIMILARITY = {
    "celecoxib_rediscovery": ("CC1=CC=C(C=C1)C1=CC(=NN1C1=CC=C(C=C1)S(N)(=O)=O)C(F)(F)F", "ECFP4", 1.0, True),
    "troglitazone_rediscovery": ("Cc1c(C)c2OC(C)(COc3ccc(CC4SC(=O)NC4=O)cc3)CCc2c(C)c1O", "ECFP4", 1.0, True),
    "thiothixene_rediscovery": ("CN(C)S(=O)(=O)c1ccc2Sc3ccccc3C(=CCCN4CCN(C)CC4)c2c1", "ECFP4", 1.0, True),
    "aripiprazole_similarity": ("Clc4cccc(N3CCN(CCCCOc2ccc1c(NC(=O)CC1)c2)CC3)c4Cl", "ECFP4", 0.75, False),
    "albuterol_similarity": ("CC(C)(C)NCC(O)c1ccc(O)c(CO)c1", "FCFP4", 0.75, False),
    "mestranol_similarity": ("COc1ccc2[C@H]3CC[C@@]4(C)[C@@H](CC[C@@]4(O)C#C)[C@@H]3CCc2c1", "AP", 0.75, False),
}
for task, (smiles, fp, threshold, rediscovery) in SIMILARITY.items():
    TASKS[task] = sb.similarity(smiles=smiles, name=task, fp_type=fp, threshold=threshold, rediscovery=rediscovery)

TARGETS = [s for s, *_ in SIMILARITY.values()] + [
    "CC1(C)C2CCC1(C)C(=O)C2", "CC(C)C1CCC(C)CC1O",
    "O=C1N(CC(N2C1CC3=C(C2C4=CC5=C(OCO5)C=C4)NC6=C3C=CC=C6)=O)C",
    "CCCC1=NN(C2=C1N=C(NC2=O)C3=C(C=CC(=C3)S(=O)(=O)N4CCN(CC4)C)OCC)C",
    "COc1cc(N(C)CCN(C)C)c(NC(=O)C=C)cc1Nc2nccc(n2)c3cn(C)c4ccccc34",
    "CC(C)(C(=O)O)c1ccc(cc1)C(O)CCCN2CCC(CC2)C(O)(c3ccccc3)c4ccccc4",
    "COc1ccccc1OCC(O)CN2CCN(CC(=O)Nc3c(C)cccc3C)CC2",
    "O=C(OCC)C(NC(C(=O)N1C(C(=O)O)CC2CCCCC12)C)CCC",
    r"Clc1ccccc1C2C(=C(/N/C(=C2/C(=O)OCC)COCCN)C)\C(=O)OC",
    "Fc1cc(c(F)cc1F)CC(N)CC(=O)N3Cc2nnc(n2CC3)C(F)(F)F",
    "O=C(C)N(CC)C1=CC=CC(C2=CC=NC3=C(C=NN23)C#N)=C1",
    "CCCCC(=O)N(Cc1ccc(-c2ccccc2-c2nn[nH]n2)cc1)C(C(C)C)C(=O)O",
    "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1S(=O)(=O)C(C)(C)C",
]
ANALOGUES = [
    # isomers and near-isomers
    "CCCCCCCCCCC", "CC(C)CCCCCCCC", "CC(C)(C)CC(C)(C)CCC", "CCCCCCCCCC", "CCCCCCCCCCCC", "CCCCCCCCCCO",
    "Nc1ccc([N+](=O)[O-])cc1C", "Cc1ccc(N)c([N+](=O)[O-])c1", "NC(=O)Nc1ccccc1O", "CNC(=O)c1ccccc1[N+](=O)[O-]",
    "O=C(O)c1ccc(N)c(N)c1", "Nc1ccc(C(N)=O)cc1O", "NC(=O)c1cccnc1", "Cc1ccccc1",
    "OC(=O)c1ccc(Cl)c(NC(F)(F)P)c1N", "CC(N)c1cc(Cl)c(OP(F)F)c(C(N)=O)c1", "NCC1=CC(Cl)=CC(=C1)C(=O)NOP(F)F",
    "CC(=O)Nc1ccc(OP(F)(F)Cl)cc1N", "Nc1ccc(C(=O)OCCl)cc1P(F)F",
    # scaffold kept / decorations changed (deco_hop) and decoration kept / scaffold changed (scaffold_hop)
    "CCCOc1cc2ncnc(Nc3ccc4ncsc4c3)c2cc1O", "COc1cc2ncnc(Nc3ccc(F)cc3)c2cc1OC",
    "COc1cc2ncnc(Nc3cccc(Cl)c3)c2cc1OCCCN1CCOCC1", "CCCOc1cc2ncnc(Nc3ccccc3)c2cc1S(C)(=O)=O",
    "CCCOc1ccc(Nc2ccc3ncsc3c2)cc1", "CCCOc1cc2c(cc1C)ncn2-c1ccc(Nc2ccc3ncsc3c2)cc1",
    "CCCOc1cc2cc(Nc3ccc4ncsc4c3)ncc2cc1S(=O)(=O)C(C)(C)C", "CCCOc1ccc2ncc(Nc3ccc4ncsc4c3)nc2c1",
    # MPO neighbourhoods: fluorinated, more polar, more aromatic rings
    "COc1ccccc1OCC(O)CN1CCN(CC(=O)Nc2c(C)cccc2F)CC1", "COc1cc(F)ccc1OCC(O)CN1CCN(CC(=O)Nc2c(C)cccc2C)CC1",
    "CC(C)(C(=O)O)c1ccc(C(O)CCCN2CCC(C(O)(c3ccccc3)c3ccccc3)CC2)cc1O",
    "CCOC(=O)C(CCc1ccccc1)NC(C)C(=O)N1CCCC1C(=O)O", "CCOC(=O)C(CCc1ccccc1)NC(C)C(=O)N1Cc2ccccc2CC1C(=O)O",
    "CCOC(=O)C1=C(COCCN)NC(C)=C(C(=O)OC)C1c1ccccc1Cl", "CCOC(=O)C1=C(C)NC(C)=C(C(=O)OC)C1c1cccc([N+](=O)[O-])c1",
    "CCN(C(C)=O)c1cccc(-c2ccnc3c(C#N)cnn23)c1", "CC(=O)N(C)c1cccc(-c2ccnc3c(C#N)cnn23)c1",
    "NC(CC(=O)N1CCn2c(nnc2C(F)(F)F)C1)Cc1cc(F)c(F)cc1F", "O=C(Cc1cc(F)c(F)cc1F)N1CCn2c(nnc2C(F)(F)F)C1",
    "CN(C=O)Cc1ccc(-c2ccccc2)cc1", "O=CN(C)Cc1ccc(-c2cc(C(F)(F)F)ccc2S(N)(=O)=O)cc1",
    "O=CN(CC)Cc1ccc(-c2cc(S(N)(=O)=O)ccc2F)cc1", "O=CN(CC)Cc1ccc(-c2cc(OC)ccc2S(N)(=O)=O)cc1",
    "O=CN(C)Cc1ccc(-c2cc(F)ccc2S(N)(=O)=O)cc1", "O=CN(CC(N)=O)Cc1ccc(-c2cc(CO)ccc2C(F)(F)F)cc1",
    "O=CN(CC(N)=O)Cc1ccc(-c2cc(C(F)(F)F)ccc2C#N)cc1", "CN(C=O)Cc1ccc(-c2ccccc2)cc1C(F)(F)F", "O=CN(C)Cc1ccc(-c2ccc(F)cc2)cc1",
    "C=CC(=O)Nc1cc(Nc2nccc(-c3cn(C)c4ccccc34)n2)c(OC)cc1N(C)CCN(C)C",
    "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1F", "CC(C)(C)NCC(O)c1ccc(O)c(O)c1",
    "CC12CCC3c4ccc(O)cc4CCC3C1CCC2(O)C#C", "CC1CCC(C(C)C)C(=O)C1", "CC1(C)C2CCC1(C)C(O)C2",
]
# The descriptors the objectives are built from, as guacamol.utils.descriptors computes them (empty when
# the SMILES is invalid): checked one by one so that a mismatch names its cause.
DESCRIPTORS = {
    "logp": d.logP, "tpsa": d.tpsa, "bertz": d.bertz, "mol_weight": d.mol_weight, "num_h_donors": d.num_H_donors,
    "num_rotatable_bonds": d.num_rotatable_bonds, "num_rings": d.num_rings,
    "num_aromatic_rings": d.num_aromatic_rings, "num_atoms": d.num_atoms, "num_h": d.AtomCounter("H"),
    "num_f": d.AtomCounter("F"),
}
seen, inputs = set(), []
with open(os.path.join(ROOT, "chem", "tests", "data", "golden_public.csv")) as f:
    rows = [r for r in csv.DictReader(line for line in f if not line.startswith("#"))]
for smiles in TARGETS + ANALOGUES + [r["smiles"] for r in rows]:
    if smiles not in seen:
        seen.add(smiles)
        inputs.append(smiles)

with open(OUT, "w", newline="") as f:
    f.write(f"# guacamol 0.5.5 objectives (goal_directed_suite_v2 + isomers_c7h8n2o2 + qed), RDKit {rdkit.__version__}; "
            f"-1 = guacamol's score for an unparsable molecule; written by scripts/golden_guacamol.py\n")
    writer = csv.writer(f, lineterminator="\n")
    writer.writerow(["smiles"] + list(TASKS) + list(DESCRIPTORS))
    for smiles in inputs:
        mol = smiles_to_rdkit_mol(smiles)
        described = ["" if mol is None else "%.10g" % f(mol) for f in DESCRIPTORS.values()]
        writer.writerow([smiles] + ["%.10g" % TASKS[t].objective.score(smiles) for t in TASKS] + described)
print(f"wrote {len(inputs)} molecules x {len(TASKS)} tasks to {OUT}")
