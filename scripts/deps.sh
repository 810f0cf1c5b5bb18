#!/usr/bin/env bash
# Install what the project needs from Debian's packages, only what is missing.
set -euo pipefail
PKGS=(pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev
      libswscale-dev libswresample-dev libavfilter-dev libavdevice-dev ffmpeg
      protobuf-compiler nats-server redis-server nodejs npm chromium curl python3 python3-pip)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come from elsewhere (e.g. a newer Node); don't fight it.
if command -v npm >/dev/null 2>&1; then
  missing=("${missing[@]/npm}"); missing=("${missing[@]/nodejs}")
fi
if command -v pip3 >/dev/null 2>&1 || python3 -m pip --version >/dev/null 2>&1; then
  missing=("${missing[@]/python3-pip}")
fi
read -r -a missing <<< "${missing[*]}"
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
else
  echo "deps: system packages present"
fi
command -v cargo >/dev/null || { echo "deps: cargo not found; install Rust (rustup) first" >&2; exit 1; }
python3 -c 'import yaml' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check pyyaml
# kn-sock compatibility test (tests/knsock/interop.py): kn-sock 0.3.0's own
# client with OpenCV (headless), numpy and requests (kn_sock/__init__ imports
# it) in a venv of their own. kn-sock goes in without its dependency list,
# which names pyaudio (the test stubs it) and the desktop OpenCV. Quick when
# present.
KNSOCK_VENV=${KNSOCK_VENV:-.cache/knsock-venv}
cd "$(dirname "$0")/.."
if ! "$KNSOCK_VENV/bin/python" -c 'import cv2, numpy, kn_sock.json_socket' 2>/dev/null; then
  echo "deps: creating $KNSOCK_VENV (kn-sock 0.3.0, opencv-python-headless, numpy)"
  python3 -m venv "$KNSOCK_VENV"
  "$KNSOCK_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    opencv-python-headless numpy requests
  "$KNSOCK_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-deps kn-sock==0.3.0
else
  echo "deps: $KNSOCK_VENV present"
fi
