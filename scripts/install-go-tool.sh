#!/usr/bin/env bash
# Builds one pinned Go tool into a project-local folder:
#   install-go-tool.sh BIN_DIR NAME MODULE VERSION [PACKAGE]
# `go install module@version` also reads the module's version list to check
# for deprecation, and the module proxy refuses that list for some modules
# (regal). Building from a throwaway module that requires the exact version
# needs only that version, and go.sum pins its checksums all the same.
set -euo pipefail
bin_dir=$1 name=$2 module=$3 version=$4 package=${5:-$3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$bin_dir"
cd "$work"
cat > go.mod <<MOD
module gatehouse.local/tools

go 1.24

require $module $version
MOD
printf '//go:build tools\n\npackage tools\n\nimport _ "%s"\n' "$package" > tools.go
echo "installing $name $version into $bin_dir" >&2
GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 || GOFLAGS=-mod=mod go mod tidy
go build -trimpath -o "$bin_dir/$name" "$package"
