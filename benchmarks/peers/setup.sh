#!/usr/bin/env bash
# Create the peer virtual environments OUTSIDE the repository and export unsup's data split.
#
#   benchmarks/peers/setup.sh            # core venv (normflows, zuko, pythae) + the data
#   benchmarks/peers/setup.sh vision     # also the vision venv (lightly; ~6 GB: torch 2.14.1 + torchvision)
#
# Environment:
#   UNSUP_PEERS_HOME        where the venvs go (default ~/.cache/unsup-peers)
#   UNSUP_PEERS_DATA        where the exported split goes (default $UNSUP_PEERS_HOME/data)
#   PYTHON                  the interpreter the venvs are made from (default python3, >= 3.10)
#   PYTORCH_GENERATIVE_SRC  a local checkout of github.com/EugenHotaj/pytorch-generative (not on PyPI):
#                           installed (--no-deps) into the vision venv, as it imports torchvision
# The peers are never dependencies of unsup: nothing here touches unsup's own environment except
# export_data.py, which runs beside unsup (the current python3 with unsup installed) and only reads.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PEERS="${UNSUP_PEERS_HOME:-$HOME/.cache/unsup-peers}"
PY="${PYTHON:-python3}"
WHAT="${1:-core}"

make_venv() {  # NAME REQUIREMENTS
    local venv="$PEERS/$1"
    [ -x "$venv/bin/python" ] || "$PY" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade pip
    "$venv/bin/python" -m pip install -r "$2"
}

mkdir -p "$PEERS"
make_venv core "$HERE/requirements-core.txt"
"$PEERS/core/bin/python" -m pip freeze > "$PEERS/core/freeze.txt"

if [ "$WHAT" = vision ] || [ "$WHAT" = all ]; then
    free_gb=$(df -Pk "$PEERS" | awk 'NR==2 {print int($4 / 1048576)}')
    if [ "$free_gb" -lt 10 ]; then
        echo "only ${free_gb} GB free under $PEERS; the vision venv needs about 7 GB" >&2
        exit 1
    fi
    make_venv vision "$HERE/requirements-vision.txt"
    V="$PEERS/vision/bin/python"
    # unsup itself, with its dependencies as pyproject.toml lists them (torch is already pinned)
    "$V" -m pip install -e "$ROOT" --no-deps
    mapfile -t deps < <("$V" - "$ROOT/pyproject.toml" <<'PYEOF'
import sys, tomllib
for d in tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]:
    if not d.replace(" ", "").startswith("torch>") and not d.startswith("torch "):
        print(d)
PYEOF
    )
    "$V" -m pip install "${deps[@]}" "torch==2.14.1"
    if [ -n "${PYTORCH_GENERATIVE_SRC:-}" ]; then
        "$V" -m pip install --no-deps "$PYTORCH_GENERATIVE_SRC"
    fi
    "$V" -m pip freeze > "$PEERS/vision/freeze.txt"
fi

"$PY" "$HERE/export_data.py"
echo "peer venvs in $PEERS:"
du -sh "$PEERS"/*/ 2>/dev/null || true
