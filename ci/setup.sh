#!/usr/bin/env bash
# Installs what the harness and its tests use on a fresh Debian machine (run as root), the VM
# matrix's tools included (ci/setup-vm.sh).
# Rust comes from rustup (not installed here). Idempotent; quiet unless something fails.
set -euo pipefail

pkgs=(
  iproute2   # `ip -j mptcp endpoint show` cross-checks (never used to build topologies)
  nftables   # firewall-based cases (drops matching MPTCP options, REJECT/DROP of a source)
  iptables   # legacy xtables cases
  ethtool    # offload toggles
  tshark     # reading the pcaps left by failed cases (tests check MPTCP options decode)
  strace     # debugging aid
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The kernel matrix (ci/vm-run, `mptcp-conformance vm`): virtme-ng and QEMU.
bash "$(dirname "${BASH_SOURCE[0]}")/setup-vm.sh"
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
