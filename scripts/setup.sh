#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, virtualenv, latbench.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
command -v adb >/dev/null 2>&1 || need+=(adb)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get install -y "${need[@]}" || { $SUDO apt-get update -q && $SUDO apt-get install -y "${need[@]}"; }
fi
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# the console script is checked too: an old install may point at a module that has moved
if ! .venv/bin/python -c "import latbench, tensorflow, ai_edge_litert, pytest" 2>/dev/null \
   || ! .venv/bin/latbench --version >/dev/null 2>&1 || ! [ -x .venv/bin/ruff ]; then
  # a full disk fails deep inside pip with a traceback: say it first, in one line
  free_mb=$(df -Pm . | awk 'NR==2 {print $4}')
  venv_mb=$(du -sm .venv 2>/dev/null | cut -f1) || venv_mb=0
  need_mb=$(( 2560 - ${venv_mb:-0} ))  # a full virtualenv is 2.4 GiB
  if [ "${free_mb:-0}" -lt "$need_mb" ]; then
    echo "setup: the virtualenv needs about $need_mb MiB more on the disk of $(pwd); $free_mb MiB free" >&2
    exit 2
  fi
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[test]"
fi
