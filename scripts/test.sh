#!/usr/bin/env bash
# Install what the tests need, then run the whole suite. Works on a fresh machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
python -m pip install --quiet --disable-pip-version-check -r requirements.txt
python -m ruff check vqvae tests
python -m pytest -q "$@"
