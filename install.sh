#!/usr/bin/env bash
# Set up unsup on a Debian/Ubuntu machine with Python >= 3.10, into the current Python
# environment (make and activate a venv first if you want one):
#   - Debian packages: dataset-fashion-mnist (the official Fashion-MNIST files) and espeak-ng
#     (speech synthesis for the `speech` dataset), p7zip-full (PPMd, the text-compression
#     baseline of benchmarks/text_compression.py), chromium and chromium-driver (the headless
#     browser tests/report/test_browser.py opens `unsup report` pages in, through selenium);
#     skipped with a notice when apt-get is absent;
#   - PyTorch: the CPU build 2.13.0 unless torch is already installed (GPU users: install the
#     CUDA build of torch first, https://pytorch.org, and this script keeps it);
#   - unsup itself, editable, with the test tools.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}

if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! $SUDO apt-get install -y -qq dataset-fashion-mnist espeak-ng p7zip-full chromium chromium-driver >/dev/null; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist espeak-ng p7zip-full chromium chromium-driver >/dev/null
  fi
else
  echo "install.sh: no apt-get; install espeak-ng yourself and get Fashion-MNIST with --download" >&2
fi

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  # TORCH_INDEX=https://download.pytorch.org/whl/cpu picks the small CPU wheel on machines that
  # would otherwise download the CUDA one.
  "$PY" -m pip install -q "torch==2.13.0" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
fi
"$PY" -m pip install -q -e ".[dev]"
"$PY" -c "import unsup, torch; print(f'unsup {unsup.__version__} ready (torch {torch.__version__})')"
