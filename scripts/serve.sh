#!/usr/bin/env bash
# usage: serve.sh DIR PORT — serve DIR on 127.0.0.1:PORT (see serve.py).
set -euo pipefail
exec python3 "$(dirname "$0")/serve.py" "$1" "$2"
