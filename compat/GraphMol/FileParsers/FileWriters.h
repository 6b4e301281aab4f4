// Compatibility shim: rdkit-sys 0.4.12 includes <GraphMol/FileParsers/FileWriters.h>,
// which RDKit 2022.09 (Debian's librdkit-dev) does not have; there the writers live in FileParsers.h.
#pragma once
#include <GraphMol/FileParsers/FileParsers.h>
