#!/usr/bin/env bash
# Runs every native Go fuzz target of the module for a short, fixed time
# each: `make fuzz`, which `make test` (and so CI) calls.
#
# Targets are discovered, never listed by hand: every package holding a
# `func FuzzX(f *testing.F)` in a _test.go file is asked for its targets
# with `go test -list '^Fuzz'`, and each target is run on its own (go test
# -fuzz takes one target per package invocation). A failure leaves the
# failing input in the package's testdata/fuzz/FuzzX/ and stops the run.
#
#   FUZZTIME=10s   time per target (default 10s; CI keeps the default)
#   FUZZ_PKGS=...  limit to these packages (default: all that have targets)
#   FUZZ_JOBS=2    packages fuzzed at once (each builds its own instrumented
#                  test binary, which is most of the wall time)
#
# Run one target longer locally:
#   go test -run '^$' -fuzz '^FuzzParseHello$' -fuzztime 10m ./internal/gateway
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
FUZZ_JOBS=${FUZZ_JOBS:-2}
export GO FUZZTIME

if [[ -n "${FUZZ_PKGS:-}" ]]; then
	read -r -a pkgs <<<"$FUZZ_PKGS"
else
	mapfile -t pkgs < <(grep -rlE --include='*_test.go' '^func Fuzz[A-Z0-9_][A-Za-z0-9_]*\(f \*testing\.F\)' internal cmd test 2>/dev/null |
		xargs -r -n1 dirname | sort -u | sed 's|^|./|')
fi
if [[ ${#pkgs[@]} -eq 0 ]]; then
	echo "fuzz: no fuzz targets found" >&2
	exit 1
fi

# fuzz_pkg runs every target of one package, one after the other, each
# line of output prefixed with the package.
fuzz_pkg() {
	set -euo pipefail
	local pkg=$1 target
	local -a targets
	mapfile -t targets < <("$GO" test -run '^$' -list '^Fuzz' "$pkg" | grep -E '^Fuzz')
	local out try
	out=$(mktemp)
	for target in "${targets[@]}"; do
		for try in 1 2; do
			echo "fuzz: $pkg $target ($FUZZTIME)"
			if "$GO" test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" >"$out" 2>&1; then
				sed "s|^|[$pkg $target] |" "$out"
				break
			fi
			sed "s|^|[$pkg $target] |" "$out"
			# Go's fuzzing engine can end a run that found nothing with a bare
			# "context deadline exceeded" when a worker answers the
			# coordinator late on a loaded machine (no failing input is
			# written then). That, once, is retried; a real failure always
			# names its failing input and is never retried.
			if [[ $try -eq 1 ]] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out"; then
				echo "fuzz: $pkg $target: the engine's deadline error with no failing input; once more"
				continue
			fi
			rm -f "$out"
			return 1
		done
	done
	rm -f "$out"
}
export -f fuzz_pkg

printf '%s\n' "${pkgs[@]}" | xargs -P "$FUZZ_JOBS" -I{} bash -c 'fuzz_pkg "$1"' _ {}
echo "fuzz: every target of ${#pkgs[@]} packages passed"
