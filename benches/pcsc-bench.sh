#!/usr/bin/env bash
# `firmalab bench` with the PC/SC round trip, as the README's figures were made: a private
# pcscd in its own mount namespace (the machine's pcscd, if any, is not touched) with the CNS
# persona in "Virtual PCD 00 00" and the zero-work echo card in "00 01", both run by
# `firmalab card`, measured in the same rounds. Needs root, pcscd and vsmartcard-vpcd (vpcd's
# default ports 35963-35964 free), and a build with --features openssl,pcsc:
#
#   cargo build --release --features openssl,pcsc && sudo benches/pcsc-bench.sh [bench flags]
set -euo pipefail
bin=$(realpath "${FIRMALAB:-${CARGO_TARGET_DIR:-target}/release/firmalab}")
mkdir -p /run/pcscd
exec unshare --mount --propagation private bash -c '
  set -euo pipefail
  bin=$1; shift
  mount -t tmpfs tmpfs /run/pcscd
  /usr/sbin/pcscd --foreground >/dev/null 2>&1 & pcscd=$!
  for _ in $(seq 100); do [ -S /run/pcscd/pcscd.comm ] && break; sleep 0.1; done
  "$bin" card --persona cns --echo 2>/dev/null & card=$!
  trap "kill $card $pcscd 2>/dev/null; wait 2>/dev/null" EXIT
  "$bin" readers --wait "Virtual PCD 00 01" --timeout 15 >/dev/null
  "$bin" bench --reader "Virtual PCD 00 00" --echo-reader "Virtual PCD 00 01" --virtual-card "$@"
' bash "$bin" "$@"
