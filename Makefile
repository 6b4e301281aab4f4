# smirl — the two commands the README opens with. Both install missing system packages first.
.PHONY: deps demo test notebooks bench fmt

deps:
	@bash scripts/deps.sh

# The main job end to end on the shipped prior and embedded data: sample, a short drug-likeness tune,
# sample the tuned agent, MOSES metrics before and after, HTML report (demo/report.html).
demo: deps
	cargo run --release -- demo

# Every crate's unit tests, the golden and fuzz tests, and the CLI end-to-end tests (release profile:
# one optimized build serves the tests and the demo).
test: deps
	cargo test --workspace --release
	# The hand-written kernels' narrower paths (the run above takes the widest this CPU has): the
	# library tests (the model's passes against candle and f64 references, ChemNet, fingerprints,
	# RL) once per path; --workspace keeps the features, so nothing is rebuilt.
	SMIRL_SIMD=avx2 cargo test --workspace --release --lib
	SMIRL_SIMD=portable cargo test --workspace --release --lib

# Execute the notebooks headless (installs their Python packages with pip first).
notebooks: deps
	cargo build --release
	python3 -m pip install --quiet --disable-pip-version-check nbformat nbclient ipykernel polars matplotlib
	python3 scripts/run_notebooks.py

# Scoring throughput against the RDKit-Python peer (needs Debian's python3-rdkit for the peer).
bench: deps
	cargo run --release -- bench score --peer

fmt:
	cargo fmt --all
