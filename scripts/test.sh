#!/usr/bin/env bash
# Install what the tests need (Python packages, Debian's chromium for the browser tests), then run the whole suite.
# Works on a fresh machine with no internet but the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
export GRADIO_ANALYTICS_ENABLED=False HF_HUB_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export GRADIO_TEMP_DIR="${GRADIO_TEMP_DIR:-$PWD/.gradio}"
# Debian's packages the tests use: chromium for the browser tests, Fashion-MNIST's IDX files,
# the emoji font and Unicode's list of emoji with their groups, espeak-ng for the spoken digits
if [ ! -x /usr/bin/chromium ] || [ ! -d /usr/share/datasets/fashion-mnist ] \
    || [ ! -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || [ ! -f /usr/share/unicode/emoji/emoji-test.txt ] \
    || ! command -v espeak-ng > /dev/null; then
    if [ "$(id -u)" -eq 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" update -q
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -q --no-install-recommends \
        chromium chromium-driver dataset-fashion-mnist fonts-noto-color-emoji unicode-data espeak-ng
fi
python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt  # requirements.txt and the test tools
python -m ruff check vqvae pages tests app.py scripts
python -m pytest -q "$@"
