#!/bin/sh
# test.sh - the quick start's second command: install what is missing,
# then run the whole test suite:
#   1. build with -Werror and run `make check` (unit + integration tests
#      against real libpam, pcscd, sshd, OpenVPN as they apply);
#   2. rebuild with AddressSanitizer + UndefinedBehaviorSanitizer and run
#      `make check` again;
#      (the normal build also runs PAM logins under valgrind);
#   3. every libFuzzer target in fuzz/ for a bounded time (FUZZ_SECONDS,
#      default 45 each): card responses, SSH lines and keys, certificate
#      files, challenges, configuration;
#   4. `make distcheck`: the release tarball builds and passes too.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
"$top/scripts/install-deps.sh"

step() { printf '\n==== %s\n' "$*"; }
show_failures() {
	for f in $(find "$1" -name '*.log' -path '*tests*' 2>/dev/null); do
		if grep -q -E '^(FAIL|ERROR)' "${f%.log}.trs" 2>/dev/null; then
			echo "---- $f"; tail -n 60 "$f"
		fi
	done
}

step "build and make check"
"$top/scripts/build.sh" "$top/build"
cd "$top/build"
make -j"$(nproc)" check || { show_failures "$top/build"; exit 1; }

step "AddressSanitizer + UndefinedBehaviorSanitizer: make check"
"$top/scripts/build.sh" "$top/build-asan" --enable-sanitizers
cd "$top/build-asan"
ASAN_OPTIONS=detect_leaks=1:verify_asan_link_order=0:abort_on_error=0 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	make -j"$(nproc)" check || { show_failures "$top/build-asan"; exit 1; }

step "fuzzing: ${FUZZ_SECONDS:-45}s per target"
sh "$top/fuzz/run.sh" "${FUZZ_SECONDS:-45}"

step "make distcheck"
make -s distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror >/dev/null 2>distcheck.err || {
	tail -n 80 distcheck.err; exit 1; }
echo "distcheck passed"

step "summary"
cat "$top"/build/test-suite.log | sed -n '1,12p'
