#!/usr/bin/env bash
# Installs what the VM kernel matrix needs (run as root): virtme-ng from PyPI and the Debian
# packages it drives (QEMU, a static busybox for the guest's early userspace, udev and kmod so
# the guest can load modules such as sch_netem). Idempotent; quiet unless something fails.
#
# Called by ci/setup.sh; usable on its own (GitHub runners, a fresh Debian machine).
set -euo pipefail

VNG_VERSION="${VNG_VERSION:-1.42}"   # pinned: vng's command line changes between releases

pkgs=(
  qemu-system-x86   # the VM (KVM when /dev/kvm works, TCG otherwise)
  busybox-static    # virtme's guest init needs a static busybox
  udev              # device nodes in the guest
  kmod              # modprobe in the guest (sch_netem and friends as modules)
  file              # vng reads the kernel version of an image with file(1)
  python3-pip       # pip for virtme-ng when no other pip is present
  zstd              # newer kernel .debs are data.tar.zst; modules are .ko.xz
  xz-utils
  debian-archive-keyring  # ci/fetch-kernels verifies the Debian archive (Ubuntu runners too)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  log="$(mktemp)"
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; exit 1
  fi
  rm -f "$log"
fi

have_vng() {
  command -v vng >/dev/null 2>&1 && vng --version 2>/dev/null | grep -q "$VNG_VERSION"
}
if ! have_vng; then
  pip=(python3 -m pip)
  "${pip[@]}" --version >/dev/null 2>&1 || pip=(/usr/bin/python3 -m pip)
  # PEP 668 (Debian 12+, Ubuntu 24.04) refuses system-wide installs without this flag; the
  # package has few dependencies and the machine is a disposable CI/VM host.
  if ! "${pip[@]}" install -q --root-user-action=ignore "virtme-ng==$VNG_VERSION" >/dev/null 2>&1; then
    "${pip[@]}" install -q --root-user-action=ignore --break-system-packages "virtme-ng==$VNG_VERSION" >/dev/null
  fi
  hash -r
  have_vng || { echo "setup-vm: vng $VNG_VERSION is not on PATH after pip install" >&2; exit 1; }
fi

# vng boots the host's root filesystem read-only; it needs the modules directory of the host
# kernel only for host-kernel runs, never for the packaged kernels the matrix boots.
if [[ -e /dev/kvm && ! -w /dev/kvm ]]; then
  echo "setup-vm: note: /dev/kvm is not writable for $(id -un): VMs will use TCG" >&2
fi
exit 0
