#!/usr/bin/env bash
# Builds the libfuse3 addon (npm ci runs this as the package's install script).
# When it cannot be built, says so in one line and exits 0: mounts then use fuse-native.
set -uo pipefail
cd "$(dirname "$0")"
# --if-stale: only when no addon is built yet, or its sources changed since (npm test's pretest;
# a git pull without npm ci would otherwise test the new JS against the old addon).
if [ "${1:-}" = --if-stale ] && [ -f build/Release/btmount_fuse.node ] \
  && [ -z "$(find src binding.gyp -newer build/Release/btmount_fuse.node -print -quit)" ]; then exit 0; fi

if ! pkg-config --exists 'fuse3 >= 3.12' 2>/dev/null; then
  echo "btmount: libfuse3-dev (>= 3.12) or pkg-config is missing; mounts will use fuse-native (libfuse 2, slower on cached reads)" >&2
  exit 0
fi
# npm puts its bundled node-gyp on PATH for scripts; outside npm, use the copy next to npm.
if command -v node-gyp >/dev/null; then
  gyp=(node-gyp)
else
  gyp=(node "$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js")
fi
nodedir=${npm_config_nodedir:-$(npm config get nodedir 2>/dev/null || true)}
args=(rebuild)
if [ -n "$nodedir" ] && [ "$nodedir" != undefined ] && [ "$nodedir" != null ]; then args+=("--nodedir=$nodedir"); fi
if ! "${gyp[@]}" "${args[@]}" >build.log 2>&1; then
  echo "btmount: could not build the native FUSE addon (see native/build.log); mounts will use fuse-native (libfuse 2, slower on cached reads)" >&2
fi
exit 0
