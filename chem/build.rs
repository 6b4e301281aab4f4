//! Builds smirl's own cxx bridge to RDKit and links the RDKit libraries it uses beyond rdkit-sys's.
fn main() {
    cxx_build::bridge("src/ffi.rs")
        .file("cpp/bridge.cc")
        .include("/usr/include/rdkit")
        .include("/usr/local/include/rdkit")
        .flag("-std=c++17")
        .flag("-w")
        .compile("smirl_chem_bridge");
    for lib in [
        "ChemTransforms",
        "Descriptors",
        "Fingerprints",
        "MolChemicalFeatures",
        "ChemicalFeatures",
        "Depictor",
        "DistGeomHelpers",
        "DistGeometry",
        "ForceFieldHelpers",
        "ForceField",
        "FileParsers",
        "MolDraw2D",
        "SubstructMatch",
        "SmilesParse",
        "GraphMol",
        "DataStructs",
        "RDGeneral",
    ] {
        println!("cargo:rustc-link-lib=dylib=RDKit{lib}");
    }
    println!("cargo:rerun-if-changed=src/ffi.rs");
    println!("cargo:rerun-if-changed=cpp/bridge.h");
    println!("cargo:rerun-if-changed=cpp/bridge.cc");
    // The SA fragment table is embedded in the binary; Debian's rdkit-data provides it.
    let fpscores = std::env::var("SMIRL_FPSCORES")
        .unwrap_or_else(|_| "/usr/share/RDKit/Contrib/SA_Score/fpscores.pkl.gz".to_string());
    if !std::path::Path::new(&fpscores).is_file() {
        panic!(
            "SA fragment scores not found at {fpscores}: install Debian's rdkit-data \
             (`make deps`) or set SMIRL_FPSCORES to a fpscores.pkl.gz"
        );
    }
    println!("cargo:rustc-env=SMIRL_FPSCORES_PATH={fpscores}");
    println!("cargo:rerun-if-env-changed=SMIRL_FPSCORES");
}
