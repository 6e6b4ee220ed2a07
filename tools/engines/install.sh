#!/usr/bin/env bash
# `make engines`: every engine with a tools/engines/<name>/requirements.txt (Spark, Flink) gets
# a virtual environment of its own under $DICE_ENGINES_DIR (default: .engines/ in the project),
# never the console's: their pins (py4j, pandas, pyarrow, apache-beam) clash with ours.
# Idempotent: pip runs again only when the requirements file changed. Without Java the engines
# are skipped with a hint (their tests then skip, saying why).
set -euo pipefail
cd "$(dirname "$0")/../.."
dir=${DICE_ENGINES_DIR:-$PWD/.engines}
python=${PYTHON:-python3}
shopt -s nullglob
reqs=(tools/engines/*/requirements.txt)
((${#reqs[@]})) || exit 0
if ! command -v java >/dev/null 2>&1; then
  echo "engines: Java not found, skipping ${reqs[*]%/requirements.txt} (install a JRE 17, e.g. apt-get install openjdk-17-jre-headless)"
  exit 0
fi
for req in "${reqs[@]}"; do
  name=$(basename "$(dirname "$req")")
  venv="$dir/$name"
  stamp="$venv/.installed"
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sum" ]; then
    continue
  fi
  echo "engines: installing $name into $venv (the first time takes minutes)"
  test -x "$venv/bin/python" || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet -r "$req"
  echo "$sum" > "$stamp"
done
