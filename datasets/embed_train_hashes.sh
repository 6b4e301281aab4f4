#!/usr/bin/env bash
# Writes datasets/corpus/moses_train_canonical.hashes.gz, the hashed set of MOSES train's RDKit
# canonical SMILES that the binary embeds as novelty's default training set. Run it again only
# when RDKit's canonical SMILES change (another RDKit release): the file is committed.
#   datasets/embed_train_hashes.sh        (fetches MOSES with datasets/fetch_moses.sh if needed)
set -euo pipefail
cd "$(dirname "$0")/.."
smirl=${SMIRL:-target/release/smirl}
[ -f data/moses/train.csv.gz ] || datasets/fetch_moses.sh data/moses
[ -x "$smirl" ] || cargo build --release
"$smirl" data hash-set data/moses/train.csv.gz --out datasets/corpus/moses_train_canonical.hashes.gz
