#!/usr/bin/env bash
# The wheel away from the checkout: built (`python -m build --wheel`), installed into a fresh virtualenv in an empty
# temporary folder, and run from there: `plantwatch --help`, every file the commands read found inside the installed
# package, then `plantwatch stack up`, `plantwatch demo` and `plantwatch stack down`, with the stack's state folder
# in the temporary folder (the stack uses its fixed ports: nothing else may hold them).
#
#   scripts/wheel-smoke.sh              # all of it (CI, after the tests stopped their stack)
#   scripts/wheel-smoke.sh --no-stack   # build, install, --help and the resources only (a stack of yours may run)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
with_stack=yes
[[ "${1:-}" == "--no-stack" ]] && with_stack=no

work=$(mktemp -d "${TMPDIR:-/tmp}/plantwatch-wheel.XXXXXX")
run="$work/run"
mkdir -p "$run"
export PLANTWATCH_STATE_DIR="$work/state"
pw="$work/venv/bin/plantwatch"
stack_started=no
cleanup() {
    if [[ $stack_started == yes ]]; then
        (cd "$run" && "$pw" stack down) || echo "wheel smoke: stack down failed" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT

began=$SECONDS
echo "wheel smoke: building the wheel"
# From a copy of the checkout's files (tracked and untracked, not ignored ones): setuptools' build/ folder would
# otherwise stay in the checkout and carry files deleted since into the next wheel.
git -C "$root" ls-files -z --cached --others --exclude-standard | "$python" -c '
import shutil, sys
from pathlib import Path
root, src = Path(sys.argv[1]), Path(sys.argv[2])
for name in sys.stdin.read().split("\0"):
    if name and (root / name).is_file():  # not a file deleted in the working tree
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, src / name)
' "$root" "$work/src"
"$python" -m build --wheel --outdir "$work/dist" "$work/src" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
echo "wheel smoke: installing $(basename "$work"/dist/*.whl) into a fresh virtualenv"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q --no-compile "$work"/dist/*.whl  # no .pyc of every dependency: half a minute less

cd "$run"
"$pw" --help >/dev/null
# Every default the settings and the stack read: inside the installed package, none in the checkout.
"$work/venv/bin/python" - "$root" <<'PY'
import sys
from pathlib import Path

from plantwatch import access, warehouse
from plantwatch.expectations import suites
from plantwatch.resources import project_folder, workspace
from plantwatch.settings import get_settings
from plantwatch.stack import alertmanager, kafka

checkout = Path(sys.argv[1])
s = get_settings()
files = [
    s.producer.plant_file, s.producer.scenario_file, s.quality.spec_limits_csv, s.alerting.rules_file,
    s.alertmanager.config_file, s.transform.project_dir / "dbt_project.yml", s.transform.project_dir / "profiles.yml",
    Path(s.alerting.runbook_url.removeprefix("file://")), alertmanager.UI_DIR / "index.html",
    kafka.HERE / "kafka-pom.xml", access.ACCESS_FILE, *warehouse.SQL_DIR.glob("*.sql"), *suites.SQL_DIR.glob("*.sql"),
    *(project_folder("prometheus") / "rules").glob("*.yml"),
]
missing = [str(f) for f in files if not f.is_file()]
in_checkout = [str(f) for f in files if f.resolve().is_relative_to(checkout)]
models = list((s.transform.project_dir / "models").rglob("*.sql"))
assert not missing, f"not in the wheel: {missing}"
assert not in_checkout, f"read from the checkout: {in_checkout}"
assert models, "the dbt project has no models"
assert workspace() == Path.cwd(), f"the state folder and reports would go to {workspace()}"
print(f"wheel smoke: {len(files)} files and {len(models)} dbt models found in the installed package")
PY

if [[ $with_stack == yes ]]; then
    echo "wheel smoke: plantwatch stack up"
    stack_started=yes
    "$pw" stack up
    echo "wheel smoke: plantwatch demo"
    "$pw" demo
    ls reports/demo-*.png >/dev/null
fi
echo "wheel smoke: passed in $((SECONDS - began)) s"
