#!/usr/bin/env bash
# Installs what a fresh Debian machine with only the Rust toolchain lacks to build and test smirl:
# a C++ compiler, Debian's RDKit 2022.09 (headers, libraries, SA fragment table; its Python module
# reads exported SD files back in a test), Chromium (the report test renders HTML headless), and
# python3-venv + procps (the Ray driver test installs Ray into its own venv and finds a worker by pgrep).
# Skips apt when everything is already there.
set -euo pipefail

packages=(g++ librdkit-dev libboost-dev libboost-serialization-dev rdkit-data python3-rdkit python3-venv procps chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all present (${packages[*]})"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    sudo=()
elif command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
else
    echo "deps: missing ${missing[*]}, and not root and no sudo: install them with apt-get" >&2
    exit 1
fi
echo "deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
