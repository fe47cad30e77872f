#!/usr/bin/env bash
# Mutation testing of the pure and security-relevant modules with the unit tests only.
#
#   scripts/mutants.sh                     # every module below, one after another
#   scripts/mutants.sh src/access/mod.rs   # only these files
#
# For each file, cargo-mutants (`cargo install cargo-mutants --locked`) copies the tree,
# changes one thing at a time (a body replaced by a default, `&&` → `||`, `==` → `!=`, a
# match arm deleted, ...) and runs `cargo test --lib` on it: a mutant the unit tests still
# pass is "missed". The table at the end counts, per file: mutants, caught, missed,
# unviable (does not compile) and timeouts; the missed ones are listed under it.
#
# Why these settings:
# - `--cargo-arg=--lib` builds and runs only the library's unit tests (given after `--` the
#   flag would reach only the test run, and the build step would still compile the
#   integration binary for every mutant).
# - The copy builds into this checkout's `target/` (CARGO_TARGET_DIR): the dependencies are
#   already built there. Cargo names the crate's artifacts without its path, so the copy's
#   test binary replaces the checkout's: a `cargo` command in the checkout waits for cargo's
#   lock on `target/` while a mutant builds, and rebuilds the crate once after the run. To
#   keep working meanwhile, point CARGO_TARGET_DIR at a copy (`cp -a target /tmp/t`).
# - One job (`-j 1`) and `nice`: each mutant rebuilds the library's test binary, which is
#   the whole cost; on a busy machine more jobs only fight over the same cores.
# - A test timeout of at least 60 s: the unit tests take about a second, but on a loaded
#   machine the auto-set timeout (a multiple of the baseline) can cut a healthy run short.
# - The mold linker when it is installed (`apt-get install mold`), through `mold -run`,
#   which swaps the linker in without changing any flag (a different RUSTFLAGS would make
#   cargo rebuild every dependency once). Measured on the project's 2-core machine, one
#   mutant's rebuild of the library's test binary: 12.6 CPU-s with GNU ld, 10.8 with mold
#   (about 15 % less; the wall clock follows the load of the machine more than either).
#   Turning debug info off (CARGO_PROFILE_TEST_DEBUG=0) was measured too and is not used:
#   the crate already builds with line tables only and its dependencies without debug
#   info, and a mutant's rebuild took the same CPU time without them (11-12.7 CPU-s).
# Not run by CI: it takes minutes per file (about one library rebuild per mutant).
#
# Environment: MUTANTS_JOBS (default 1), MUTANTS_NICE (default 10), MUTANTS_ARGS (extra
# cargo-mutants arguments, e.g. "--re needed_role" or "--shard 0/4").
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)

modules=(
    src/secrets/scope.rs
    src/access/mod.rs
    src/access/routes.rs
    src/waves/state.rs
    src/waves/plan.rs
    src/lint/rules.rs
    src/schedule/cron.rs
)
if [ $# -gt 0 ]; then
    modules=("$@")
fi

command -v cargo-mutants >/dev/null || {
    echo "cargo-mutants is not installed: cargo install cargo-mutants --locked" >&2
    exit 2
}

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"

# One cargo-mutants run for all the files: each run builds its copy of the crate from
# scratch once (minutes), every mutant after that is an incremental rebuild. The table
# still counts each file on its own.
files=()
for f in "${modules[@]}"; do
    files+=(--file "$f")
done
# A missed mutant makes cargo-mutants exit non-zero; the table says what happened.
linker=()
if command -v mold >/dev/null; then
    linker=(mold -run)
fi
# shellcheck disable=SC2086
nice -n "${MUTANTS_NICE:-10}" "${linker[@]}" cargo mutants \
    "${files[@]}" \
    --jobs "${MUTANTS_JOBS:-1}" \
    --cargo-arg=--lib \
    --no-shuffle \
    --minimum-test-timeout=60 \
    ${MUTANTS_ARGS:-} >&2 || true

out="$root/mutants.out"
printf '\n%-24s %8s %7s %7s %9s %9s\n' module mutants caught missed unviable timeouts
for f in "${modules[@]}"; do
    jq -r --arg f "$f" '
        [.outcomes[] | select((.scenario | objects | .Mutant.file) == $f) | .summary] as $s
        | def n(x): [$s[] | select(. == x)] | length;
        [$f, ($s | length), n("CaughtMutant"), n("MissedMutant"), n("Unviable"), n("Timeout")]
        | @tsv' "$out/outcomes.json" |
        awk -F'\t' '{ printf "%-24s %8s %7s %7s %9s %9s\n", $1, $2, $3, $4, $5, $6 }'
done
if [ -s "$out/missed.txt" ]; then
    echo
    echo "missed:"
    sed 's/^/  /' "$out/missed.txt"
fi
