#!/usr/bin/env bash
# gen.sh regenerates the Go code of every .proto file of mastertrust:
#
#   proto/*.proto           -> proto/pb/*.pb.go, *_grain.pb.go  (Go package
#                              github.com/acme/mastertrust/proto/pb, name pb;
#                              the files' own go_package is overridden)
#   cluster/**/*.proto      -> next to the .proto, per its go_package (the test
#                              grain of package cluster)
#
# The generated code is committed, so a normal build needs none of these
# tools. Run it from anywhere: `proto/gen.sh` or `go generate ./proto/pb`.
#
# Tools, checked below (versions pinned to go.mod so that generated code and
# runtime agree):
#   protoc                Debian: apt-get install -y protobuf-compiler (3.21.12)
#   protoc-gen-go         go install google.golang.org/protobuf/cmd/protoc-gen-go@<go.mod's google.golang.org/protobuf>
#   protoc-gen-go-grain   go install github.com/asynkron/protoactor-go/protobuf/protoc-gen-go-grain@<go.mod's protoactor-go>
#
# The grain generator of this protoactor build has two bugs worked around here:
#   - a .proto with enums but no service gets a *_grain.pb.go holding only
#     unused imports (does not compile): such files are dropped;
#   - every file with a service declares the same package-level func
#     `respond`, so two service files in one Go package do not compile: each
#     file's copy is renamed respond<File>.
#
# It also has no option to generate only the calling side of a service, and
# proto/pb needs nothing else: the actors build their grain kinds and props
# themselves (actors/grain.go, actors/pot.go) and call grains through the
# generated clients or cluster.Request. So the *_grain.pb.go files of
# proto/pb keep only their clients (GetXGrainClient, XGrainClient and its
# methods); the server halves (the X interface, XFactory, GetXKind, NewXKind,
# XActor, respond) are removed, with the imports only they used. The cluster's
# test grain keeps its whole file: its tests host it with NewCounterKind.
set -euo pipefail

module=github.com/acme/mastertrust
pb_import="$module/proto/pb"
# protoc older than 3.15 rejects proto3 `optional`; the version pinned for
# reproducible headers is Debian bookworm's.
protoc_min_minor=15
protoc_pinned=3.21.12

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

die() {
	echo "proto/gen.sh: $*" >&2
	exit 1
}

command -v go >/dev/null || die "go is not on PATH"
# go install puts the plugins here; protoc finds plugins through PATH.
gobin="$(go env GOBIN)"
[[ -n "$gobin" ]] || gobin="$(go env GOPATH)/bin"
export PATH="$PATH:$gobin"

want_protobuf="$(go list -m -f '{{.Version}}' google.golang.org/protobuf)"
want_protoactor="$(go list -m -f '{{.Version}}' github.com/asynkron/protoactor-go)"

missing=0
install_hint() {
	missing=1
	echo "proto/gen.sh: $1" >&2
	echo "  install with: $2" >&2
}

if ! command -v protoc >/dev/null; then
	install_hint "protoc not found" "apt-get update && apt-get install -y protobuf-compiler   (or https://github.com/protocolbuffers/protobuf/releases)"
else
	protoc_version="$(protoc --version | awk '{print $2}')"
	IFS=. read -r p_major p_minor _ <<<"$protoc_version"
	if [[ "$p_major" -lt 3 || ("$p_major" -eq 3 && "$p_minor" -lt "$protoc_min_minor") ]]; then
		install_hint "protoc $protoc_version is older than 3.$protoc_min_minor" "apt-get install -y protobuf-compiler"
	elif [[ "$protoc_version" != "$protoc_pinned" ]]; then
		echo "proto/gen.sh: note: protoc $protoc_version (committed code used $protoc_pinned): only the version comments will differ" >&2
	fi
fi

if ! command -v protoc-gen-go >/dev/null; then
	install_hint "protoc-gen-go not found" "go install google.golang.org/protobuf/cmd/protoc-gen-go@$want_protobuf"
else
	have="$(protoc-gen-go --version | awk '{print $2}')"
	[[ "$have" == "$want_protobuf" ]] ||
		install_hint "protoc-gen-go is $have, go.mod has google.golang.org/protobuf $want_protobuf" \
			"go install google.golang.org/protobuf/cmd/protoc-gen-go@$want_protobuf"
fi

if ! command -v protoc-gen-go-grain >/dev/null; then
	install_hint "protoc-gen-go-grain not found" \
		"go install github.com/asynkron/protoactor-go/protobuf/protoc-gen-go-grain@$want_protoactor"
else
	# The plugin has no --version flag; the module version is in its build info.
	have="$(go version -m "$(command -v protoc-gen-go-grain)" | awk '$1 == "mod" {print $3}')"
	[[ "$have" == "$want_protoactor" ]] ||
		install_hint "protoc-gen-go-grain is from protoactor-go ${have:-(unknown)}, go.mod has $want_protoactor" \
			"go install github.com/asynkron/protoactor-go/protobuf/protoc-gen-go-grain@$want_protoactor"
fi

[[ "$missing" -eq 0 ]] || die "missing or mismatched tools (see above)"

if [[ -n "$(find proto -mindepth 2 -name '*.proto' -print -quit)" ]]; then
	die "found .proto files below proto/*/: this script maps only proto/*.proto to package pb"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# protoc_go runs protoc with both plugins. Output paths follow the Go import
# path relative to the module (module=...), so everything lands in $tmp at
# its place in the repository.
protoc_go() {
	protoc \
		--go_out="$tmp" --go_opt=module="$module" \
		--go-grain_out="$tmp" --go-grain_opt=module="$module" \
		"$@"
}

# proto/*.proto: -I proto so that these files import each other by bare name
# ("messages.proto"); every file is mapped to package pb whatever its
# go_package says.
shopt -s nullglob
pb_files=(proto/*.proto)
shopt -u nullglob
if [[ ${#pb_files[@]} -gt 0 ]]; then
	opts=()
	names=()
	for f in "${pb_files[@]}"; do
		name="${f#proto/}"
		names+=("$name")
		opts+=("--go_opt=M$name=$pb_import;pb" "--go-grain_opt=M$name=$pb_import;pb")
	done
	protoc_go -I proto "${opts[@]}" "${names[@]}"
fi

# cluster/**/*.proto: -I . so that each file's registered path
# (cluster/internal/...) is unique in the binary; each declares its
# go_package inside this module.
mapfile -t cluster_files < <(find cluster -name '*.proto' | sort)
if [[ ${#cluster_files[@]} -gt 0 ]]; then
	protoc_go -I . "${cluster_files[@]}"
fi

# Work around the grain generator's bugs (see the header).
while IFS= read -r -d '' f; do
	if ! grep -qE '^(func|type|var|const) ' "$f"; then
		rm "$f"
	fi
done < <(find "$tmp" -name '*_grain.pb.go' -print0)

# grain_clients_only rewrites a generated *_grain.pb.go to its grain clients
# (see the header): it keeps the header, the package clause, the imports and
# the declarations of GetXGrainClient, XGrainClient and XGrainClient's
# methods, each with its doc comment, and drops every other top-level
# declaration (a line starting with func, type, var or const, through its
# closing "}" or ")" at the start of a line when it opens a block). Then it
# drops the imports nothing left uses. What is left must still compile: the
# build at the end checks.
grain_clients_only() {
	local f="$1" kept name
	kept="$(awk '
		skip != "" { if (index($0, skip) == 1) skip = ""; next }
		/^\/\// { doc = doc $0 "\n"; next }
		/^(func|type|var|const) / {
			if ($0 ~ /^func Get[A-Za-z0-9_]+GrainClient\(/ ||
				$0 ~ /^type [A-Za-z0-9_]+GrainClient struct/ ||
				$0 ~ /^func \([A-Za-z0-9_]+ \*[A-Za-z0-9_]+GrainClient\) /) {
				printf "%s", doc
				print
			} else if ($0 ~ /\{$/) {
				skip = "}"
			} else if ($0 ~ /\($/) {
				skip = ")"
			}
			doc = ""
			next
		}
		{ printf "%s", doc; doc = ""; print }
	' "$f")"
	printf '%s\n' "$kept" >"$f"
	for name in $(sed -n '/^import (/,/^)/s/^\t\([A-Za-z0-9_]*\) ".*"$/\1/p' "$f"); do
		if ! sed '/^import (/,/^)/d' "$f" | grep -q "\b$name\."; then
			sed -i "/^import (/,/^)/{/^\t$name \"/d}" "$f"
		fi
	done
}
if [[ -d "$tmp/proto/pb" ]]; then
	for f in "$tmp/proto/pb"/*_grain.pb.go; do
		[[ -e "$f" ]] || continue
		grain_clients_only "$f"
	done
fi
while IFS= read -r dir; do
	mapfile -t with_respond < <(grep -l '^func respond\[' "$dir"/*_grain.pb.go 2>/dev/null || true)
	if [[ ${#with_respond[@]} -gt 1 ]]; then
		for f in "${with_respond[@]}"; do
			base="$(basename "$f" _grain.pb.go)"
			# respond + the file name in CamelCase: pot_commands -> respondPotCommands.
			suffix="$(echo "$base" | sed -E 's/(^|[_.-])([a-z0-9])/\U\2/g')"
			sed -i -E "s/\brespond\[/respond${suffix}[/g" "$f"
		done
	fi
done < <(find "$tmp" -name '*_grain.pb.go' -exec dirname {} \; | sort -u)

# Replace the generated files of every target directory, so that code of a
# deleted .proto goes away too. Only files with the generators' header are
# removed.
targets=()
[[ ${#pb_files[@]} -gt 0 || -d proto/pb ]] && targets+=(proto/pb)
for f in "${cluster_files[@]}"; do
	targets+=("$(dirname "$f")")
done
mapfile -t targets < <(printf '%s\n' "${targets[@]}" | sort -u)
for dir in "${targets[@]}"; do
	mkdir -p "$dir"
	for old in "$dir"/*.pb.go; do
		[[ -e "$old" ]] || continue
		if head -n 1 "$old" | grep -q '^// Code generated by protoc-gen-'; then
			rm "$old"
		fi
	done
	if [[ -d "$tmp/$dir" ]]; then
		cp "$tmp/$dir"/*.pb.go "$dir"/
	fi
done

gofmt -l -w "${targets[@]}" >/dev/null
# Prove the result compiles (cheap once the build cache is warm).
pkgs=()
for dir in "${targets[@]}"; do
	pkgs+=("./$dir")
done
go build "${pkgs[@]}" || die "generated code does not compile"
echo "proto/gen.sh: generated ${#pb_files[@]} file(s) in proto/, ${#cluster_files[@]} in cluster/"
