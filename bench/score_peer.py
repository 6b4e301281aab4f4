#!/usr/bin/python3
"""RDKit-Python peer for `smirl bench score`.

Usage:
    /usr/bin/python3 bench/score_peer.py INPUT.smi [--intdiv-n N] [--json]
                                                   [--dump OUT.tsv]

INPUT.smi: one molecule per line; the SMILES is the first whitespace-separated
token (anything after it, e.g. a name, is ignored). Blank lines are skipped.

Phase 1 (timed): for every SMILES
    mol = Chem.MolFromSmiles(smi)
    if mol is not None:
        Chem.MolToSmiles(mol)                                  # canonical
        QED.qed(mol)
        sascorer.calculateScore(mol)                           # RDKit Contrib SA_Score
        AllChem.GetMorganFingerprintAsBitVect(mol, 2, nBits=1024)

Phase 2 (timed separately): IntDiv1 over the fingerprints of the first N valid
molecules (default: all valid) with MOSES semantics -- the mean Tanimoto
similarity over ALL N*N ordered pairs, self pairs included:
    IntDiv1 = 1 - (1/N^2) * sum_i sum_j T(fp_i, fp_j)
computed as N one-vs-all DataStructs.BulkTanimotoSimilarity calls (no
symmetry shortcut). --intdiv-n 0 skips phase 2.

Not timed: reading the input file, importing RDKit, loading the SA fragment
score table (fpscores.pkl.gz is loaded before the clock starts).

Must be run with an interpreter that can `import rdkit` (on this machine the
Debian python3-rdkit, i.e. /usr/bin/python3).
"""

import argparse
import json
import math
import os
import sys
import time


def _import_sascorer():
    """Import the Contrib SA_Score module (RDConfig.RDContribDir first,
    then the Debian rdkit-data location)."""
    candidates = []
    try:
        from rdkit import RDConfig

        candidates.append(os.path.join(RDConfig.RDContribDir, "SA_Score"))
    except Exception:
        pass
    candidates.append("/usr/share/RDKit/Contrib/SA_Score")
    for d in candidates:
        if os.path.isfile(os.path.join(d, "sascorer.py")) and d not in sys.path:
            sys.path.append(d)
    try:
        import sascorer  # noqa: E402
    except ImportError as e:
        sys.exit(
            "score_peer.py: cannot import sascorer (RDKit Contrib SA_Score); "
            "looked in: %s (%s)" % (", ".join(candidates), e)
        )
    return sascorer


def read_smiles(path):
    out = []
    with open(path, "r", encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if parts:
                out.append(parts[0])
    return out


def main():
    ap = argparse.ArgumentParser(
        description="RDKit-Python scoring peer (QED, SA, Morgan FP, IntDiv1)."
    )
    ap.add_argument("input", help="SMILES file, one molecule per line")
    ap.add_argument(
        "--intdiv-n",
        type=int,
        default=None,
        metavar="N",
        help="IntDiv1 over the first N valid molecules (default: all valid; 0 = skip)",
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument(
        "--dump",
        metavar="OUT.tsv",
        help="write per-molecule results (input, canonical, qed, sa, fp_popcount) "
        "as TSV for cross-checking; written after timing",
    )
    args = ap.parse_args()

    try:
        from rdkit import Chem, DataStructs, RDLogger, rdBase
        from rdkit.Chem import QED, AllChem
    except ImportError as e:
        sys.exit(
            "score_peer.py: cannot import rdkit with %s (%s); "
            "run it with /usr/bin/python3" % (sys.executable, e)
        )
    RDLogger.DisableLog("rdApp.*")  # invalid SMILES would spam stderr
    sascorer = _import_sascorer()
    sascorer.readFragmentScores("fpscores")  # load table outside the timing

    smiles = read_smiles(args.input)
    n = len(smiles)

    # ---------------- phase 1: per-molecule scoring ----------------
    mol_from_smiles = Chem.MolFromSmiles
    mol_to_smiles = Chem.MolToSmiles
    qed = QED.qed
    sa = sascorer.calculateScore
    morgan = AllChem.GetMorganFingerprintAsBitVect

    fps = []
    rows = [] if args.dump else None
    qed_sum = 0.0
    sa_sum = 0.0
    t0 = time.perf_counter()
    for smi in smiles:
        mol = mol_from_smiles(smi)
        if mol is None:
            if rows is not None:
                rows.append((smi, None, None, None, None))
            continue
        can = mol_to_smiles(mol)
        q = qed(mol)
        s = sa(mol)
        fp = morgan(mol, 2, nBits=1024)
        fps.append(fp)
        qed_sum += q
        sa_sum += s
        if rows is not None:
            rows.append((smi, can, q, s, fp.GetNumOnBits()))
    score_seconds = time.perf_counter() - t0
    valid = len(fps)
    mols_per_s = n / score_seconds if score_seconds > 0 else float("inf")

    # ---------------- phase 2: IntDiv1 ----------------
    m = valid if args.intdiv_n is None else max(0, min(args.intdiv_n, valid))
    intdiv_seconds = None
    intdiv1 = None
    if m > 0:
        sub = fps[:m]
        bulk = DataStructs.BulkTanimotoSimilarity
        t1 = time.perf_counter()
        total = 0.0
        for fp in sub:
            total += math.fsum(bulk(fp, sub))
        intdiv1 = 1.0 - total / (m * m)
        intdiv_seconds = time.perf_counter() - t1

    if rows is not None:
        with open(args.dump, "w", encoding="utf-8") as f:
            f.write("input\tcanonical\tqed\tsa\tfp_popcount\n")
            for smi, can, q, s, pc in rows:
                if can is None:
                    f.write("%s\t\t\t\t\n" % smi)
                else:
                    f.write("%s\t%s\t%.17g\t%.17g\t%d\n" % (smi, can, q, s, pc))

    result = {
        "n": n,
        "valid": valid,
        "score_seconds": score_seconds,
        "mols_per_s": mols_per_s,
        "intdiv_seconds": intdiv_seconds,
        "intdiv1": intdiv1,
        # extras (sanity checksums / provenance), not part of the core schema
        "intdiv_n": m,
        "qed_mean": qed_sum / valid if valid else None,
        "sa_mean": sa_sum / valid if valid else None,
        "rdkit_version": rdBase.rdkitVersion,
        "python_version": sys.version.split()[0],
    }

    if args.json:
        print(json.dumps(result))
    else:
        print("input:        %s" % args.input)
        print("rdkit:        %s (python %s)" % (result["rdkit_version"], result["python_version"]))
        print("molecules:    %d (valid %d, %.2f%%)" % (n, valid, 100.0 * valid / n if n else 0.0))
        print("score:        %.3f s  ->  %.1f mol/s" % (score_seconds, mols_per_s))
        if valid:
            print("  mean QED:   %.6f" % result["qed_mean"])
            print("  mean SA:    %.6f" % result["sa_mean"])
        if intdiv1 is None:
            print("intdiv1:      skipped")
        else:
            print(
                "intdiv1:      %.6f over %d mols (%d pairs) in %.3f s"
                % (intdiv1, m, m * m, intdiv_seconds)
            )


if __name__ == "__main__":
    main()
