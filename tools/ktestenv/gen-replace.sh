#!/bin/sh
# Regenerate the `replace` block of go.mod for the k8s.io/kubernetes staging modules.
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, k8s.io/apiserver, ...) at the
# placeholder version v0.0.0 and replaces them with ./staging/... paths, which do not exist
# for a module consumer. Every staging module is published as v0.<minor>.<patch> matching
# the v1.<minor>.<patch> release. This script reads the v0.0.0 requirements from the
# k8s.io/kubernetes go.mod (via the module proxy/cache) and writes one replace line each.
#
# usage: ./gen-replace.sh [v1.36.3]   (default: the k8s.io/kubernetes version in go.mod)
# then:  go mod tidy
set -eu
cd "$(dirname "$0")"

K8S_VERSION=${1:-$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v1\./ { print $2; exit }' go.mod)}
case "$K8S_VERSION" in
v1.*) ;;
*) echo "gen-replace.sh: cannot determine k8s.io/kubernetes version (got '$K8S_VERSION')" >&2; exit 1 ;;
esac
STAGING_VERSION="v0.${K8S_VERSION#v1.}"

GOMOD=$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" |
	sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
[ -f "$GOMOD" ] || { echo "gen-replace.sh: go.mod of k8s.io/kubernetes@$K8S_VERSION not found" >&2; exit 1; }

BLOCK=$(mktemp)
trap 'rm -f "$BLOCK" go.mod.tmp' EXIT
{
	echo "// BEGIN gen-replace.sh: generated for k8s.io/kubernetes $K8S_VERSION, do not edit"
	echo "replace ("
	awk -v v="$STAGING_VERSION" '
		/^require[[:space:]]*\(/ { inreq = 1; next }
		inreq && /^\)/ { inreq = 0; next }
		inreq && $2 == "v0.0.0" { printf "\t%s => %s %s\n", $1, $1, v }
	' "$GOMOD" | sort -u
	echo ")"
	echo "// END gen-replace.sh"
} >"$BLOCK"

# Drop the previous generated block, append the new one.
awk '
	/^\/\/ BEGIN gen-replace.sh/ { skip = 1; next }
	skip && /^\/\/ END gen-replace.sh/ { skip = 0; next }
	!skip { print }
' go.mod | sed -e :a -e '/^\n*$/{$d;N;ba' -e '}' >go.mod.tmp
{ cat go.mod.tmp; echo; cat "$BLOCK"; } >go.mod
GOFLAGS= go mod edit -fmt
echo "gen-replace.sh: $(grep -c '=>' "$BLOCK") replace lines for $K8S_VERSION -> $STAGING_VERSION" >&2
