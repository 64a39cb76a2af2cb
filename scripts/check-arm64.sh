#!/usr/bin/env bash
# The runtime on arm64 Debian under qemu-user, as a Raspberry Pi (64-bit Raspberry Pi OS) would run it.
#
# For each release (bookworm = Python 3.11, what Raspberry Pi OS bookworm is; trixie = Python 3.13) it installs the
# BUILT wheel with plain pip into fresh venvs inside an arm64 root file system (runtime only: TensorFlow must not come
# along) and checks, per numpy major:
#   * `edgeclf predict --json` on the images gives the same top-1 as on this x86 machine on at least 97 % of them,
#     and 95 % of the images score within four output steps (see TOLERANCE, and scripts/arm64_check.py for why not
#     every image);
#   * `edgeclf camera --source <folder> --headless --max-frames 20` delivers 20 frames and a summary.
# Variants: numpy2 (pip's choice), numpy1 (pip install 'numpy<2'; where pip finds no numpy 1.x wheel for Python
# >= 3.13, as on trixie, this is reported as not applicable instead),
# and readme: the README's Raspberry Pi recipe verbatim (apt's python3-numpy, a --system-site-packages venv, the
# README's pip line), after which the venv must still import apt's numpy.
#
# Emulated timings say nothing about a Pi: this script never prints any (only its own wall time, the CI cost).
# Root file systems are cached in $EDGECLF_ARM64_CACHE (default /var/cache/edgeclf-arm64), one per release, with
# pip's download cache; delete the folder to start cold.
#
# Usage (as root: debootstrap, chroot and mounts need it; missing Debian packages are installed):
#   scripts/check-arm64.sh --model MODEL.tflite [--images DIR] [--wheel WHEEL] [--edgeclf HOST_EDGECLF]
#                          [--releases "bookworm trixie"] [--variants "numpy2 numpy1 readme"] [--count 100]
#                          [--keep DIR]   (DIR: every variant's predictions and environment, for a closer look)
# Exit status: 0 all checks passed, 1 a check failed, 2 usage.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${EDGECLF_ARM64_CACHE:-/var/cache/edgeclf-arm64}
MIRROR=${EDGECLF_DEBIAN_MIRROR:-http://deb.debian.org/debian}
RELEASES="bookworm trixie" VARIANTS="numpy2 numpy1 readme" KEEP=""
MODEL="" IMAGES="" WHEEL="" HOST_EDGECLF="" COUNT=100
# int8 outputs are multiples of the output scale (1/256 for a softmax). XNNPACK's NEON and x86 kernels may round an
# intermediate requantization differently, and a one-step difference inside the network moves most outputs by 0-3
# steps (up to 0.0117 on the tests' tiny 24x20 model), while on the few images the network is unsure about it grows
# (0.04-0.18 on 3 of 100 real cats-vs-dogs photos). The tolerance, 4 steps (0.016), binds the 95th percentile.
# A real porting bug (wrong CPU features, wrong preprocessing) moves most scores by far more and flips labels.
TOLERANCE=${EDGECLF_ARM64_TOLERANCE:-0.016}
ROOT_PACKAGES=python3,python3-venv,python3-numpy,ca-certificates
CONFIGURE_PACKAGES="libblas3 liblapack3"  # their postinst makes libblas.so.3 / liblapack.so.3, which numpy loads
PACKAGES_FILE=.edgeclf-packages  # "name version" per unpacked Debian package, in the root

die() { echo "check-arm64: $*" >&2; exit 2; }
say() { echo "check-arm64: $*"; }

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --model) MODEL=$2; shift 2 ;;
      --images) IMAGES=$2; shift 2 ;;
      --wheel) WHEEL=$2; shift 2 ;;
      --edgeclf) HOST_EDGECLF=$2; shift 2 ;;
      --releases) RELEASES=$2; shift 2 ;;
      --variants) VARIANTS=$2; shift 2 ;;
      --keep) KEEP=$2; shift 2 ;;
      --count) COUNT=$2; shift 2 ;;
      -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
      *) die "unknown argument $1 (see --help)" ;;
    esac
  done
  [ "$(id -u)" = 0 ] || die "run as root (debootstrap, chroot and bind mounts need it)"
  [ -n "$MODEL" ] && [ -f "$MODEL" ] || die "--model FILE.tflite is required (an edgeclf export)"
  IMAGES=${IMAGES:-$REPO/../shared/data/cats_and_dogs_filtered/validation}
  [ -d "$IMAGES" ] || die "--images $IMAGES: no such folder (the real images are in ../shared)"
  HOST_EDGECLF=${HOST_EDGECLF:-$REPO/.venv/bin/edgeclf}
  [ -x "$HOST_EDGECLF" ] || die "--edgeclf $HOST_EDGECLF: not an edgeclf executable (run scripts/setup-dev.sh)"
}

ensure_tools() {  # Debian packages; binfmt_misc so the kernel hands arm64 binaries to qemu
  local missing=()
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  command -v update-binfmts >/dev/null || missing+=(binfmt-support)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
  grep -q '^flags: .*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 \
    || die "qemu-aarch64 binfmt is registered without the F flag: a chroot cannot find the emulator"
}

build_wheel() {  # from the files git knows (committed or not), never from build/ or egg-info leftovers
  [ -n "$WHEEL" ] && { [ -f "$WHEEL" ] || die "--wheel $WHEEL: no such file"; return; }
  local src="$WORK/src"
  mkdir -p "$src"
  (cd "$REPO" && git ls-files -co --exclude-standard -z | xargs -0 tar -cf - 2>/dev/null) | tar -xf - -C "$src"
  "$(dirname "$HOST_EDGECLF")/python" -m build --wheel --outdir "$WORK/dist" "$src" >"$WORK/build.log" 2>&1 \
    || { tail -5 "$WORK/build.log"; die "building the wheel failed"; }
  WHEEL=$(ls "$WORK"/dist/edgeclf-*.whl)
}

pick_images() {  # the first COUNT/n images of each class folder, sorted: real photos, deterministic
  local classes=("$IMAGES"/*/) per files
  per=$(( (COUNT + ${#classes[@]} - 1) / ${#classes[@]} ))
  for dir in "${classes[@]}"; do
    mkdir -p "$WORK/images/$(basename "$dir")"
    mapfile -t files < <(find "$dir" -maxdepth 1 -type f -iname '*.jpg' | sort)
    cp "${files[@]:0:$per}" "$WORK/images/$(basename "$dir")/"
  done
  say "$(find "$WORK/images" -type f | wc -l) images from $IMAGES"
}

bootstrap_root() {  # one cached root per release, built in .partial and renamed, so a killed run leaves no half root
  # debootstrap resolves and downloads Debian's arm64 packages (minbase + ROOT_PACKAGES); they are unpacked here, on
  # the host, into a merged-/usr tree. Of their maintainer scripts only two steps run, under emulation: the
  # BLAS/LAPACK alternatives that apt's numpy links against (CONFIGURE_PACKAGES' postinst) and the CA bundle
  # (ca-certificates'; Debian's pip loads it at start-up). Running every script under qemu (debootstrap's second
  # stage; dpkg and py3compile emulated) took over an hour per cold root on the 2-core VM, this about two minutes.
  local rel=$1 root="$CACHE/$1" deb pkg
  if [ -f "$root/.edgeclf-ready" ]; then say "$rel: cached root $root"; return; fi
  ! grep -q " $root" /proc/self/mounts || die "$root has mounts; refusing to delete it"
  say "$rel: arm64 root from Debian's packages (cold; about two minutes)"
  rm -rf "$root.partial" "$root.debs"
  debootstrap --arch=arm64 --variant=minbase --include="$ROOT_PACKAGES" --download-only "$rel" "$root.debs" \
    "$MIRROR" >"$CACHE/$rel.debootstrap.log" 2>&1 || { tail -5 "$CACHE/$rel.debootstrap.log"; exit 1; }
  mkdir -p "$root.partial/usr/bin" "$root.partial/usr/sbin" "$root.partial/usr/lib" "$root.partial/tmp/control"
  ln -s usr/bin "$root.partial/bin" && ln -s usr/sbin "$root.partial/sbin" && ln -s usr/lib "$root.partial/lib"
  for deb in "$root.debs"/var/cache/apt/archives/*.deb; do
    dpkg-deb --fsys-tarfile "$deb" | tar -x --keep-directory-symlink -C "$root.partial"
    dpkg-deb --show --showformat='${Package} ${Version}\n' "$deb" >>"$root.partial/$PACKAGES_FILE"
  done
  mkdir -p "$root.partial/var/lib/dpkg/alternatives"
  for pkg in $CONFIGURE_PACKAGES; do
    dpkg-deb -e "$root.debs"/var/cache/apt/archives/"${pkg}"_*.deb "$root.partial/tmp/control/$pkg"
    configure_in "$root.partial" DPKG_MAINTSCRIPT_PACKAGE="$pkg" /bin/sh "/tmp/control/$pkg/postinst" configure \
      >>"$CACHE/$rel.debootstrap.log" 2>&1 \
      || { tail -5 "$CACHE/$rel.debootstrap.log"; die "$rel: $pkg's postinst failed"; }
  done
  # ca-certificates' postinst: enable every CA (its debconf default), then build the bundle pip's TLS code loads
  configure_in "$root.partial" /bin/sh -ec \
    'cd /usr/share/ca-certificates && find . -name "*.crt" | sed "s|^\./||" | sort >/etc/ca-certificates.conf
     update-ca-certificates' >>"$CACHE/$rel.debootstrap.log" 2>&1 \
    || { tail -5 "$CACHE/$rel.debootstrap.log"; die "$rel: update-ca-certificates failed"; }
  rm -rf "$root.partial/tmp/control" "$root.debs"
  rm -rf "$root" && mv "$root.partial" "$root"
  touch "$root/.edgeclf-ready"
}

configure_in() {  # a configure step in a new root $1: a clean environment, sbin on PATH, a Pi 4 CPU
  chroot "$1" /usr/bin/env -i PATH=/usr/sbin:/usr/bin QEMU_CPU=cortex-a72 "${@:2}"
}

root_version() {  # the version of Debian package $2 unpacked into root $1 (what dpkg-query -W would say)
  awk -v p="$2" '$1 == p { print $2 }' "$1/$PACKAGES_FILE"
}

qemu_major() { qemu-aarch64-static --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p'; }

mount_root() {  # /proc, /dev, DNS, the work folder at /check, pip's cache; an ARM cpuinfo for QEMU < 8
  local root=$1
  MOUNTS=()
  mkdir -p "$root/check" "$CACHE/pip-$(basename "$root")" "$root/var/cache/edgeclf-pip"
  mount -t proc proc "$root/proc" && MOUNTS+=("$root/proc")
  mount --bind /dev "$root/dev" && MOUNTS+=("$root/dev")
  mount --bind "$WORK" "$root/check" && MOUNTS+=("$root/check")
  mount --bind "$CACHE/pip-$(basename "$root")" "$root/var/cache/edgeclf-pip" && MOUNTS+=("$root/var/cache/edgeclf-pip")
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  if [ "$(qemu_major)" -lt 8 ]; then
    # QEMU 7.2 shows the guest this machine's x86 /proc/cpuinfo; LiteRT's ARM CPU detection then crashes.
    mount --bind "$WORK/cpuinfo" "$root/proc/cpuinfo" && MOUNTS+=("$root/proc/cpuinfo")
  fi
}

unmount_root() {
  local i
  for (( i=${#MOUNTS[@]}-1; i>=0; i-- )); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
  MOUNTS=()
}

write_cpuinfo() {  # a Cortex-A72 (Raspberry Pi 4) in the kernel's arm64 format
  local cpu
  for cpu in 0 1 2 3; do
    printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n' "$cpu"
    printf 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: 0xd08\n'
    printf 'CPU revision\t: 3\n\n'
  done >"$WORK/cpuinfo"
}

in_root() {  # run a shell command inside the arm64 root; QEMU 7.2's default "max" CPU computes wrong answers
  chroot "$1" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 QEMU_CPU=cortex-a72 \
    PIP_CERT=/check/ca.crt PIP_CACHE_DIR=/var/cache/edgeclf-pip PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
    PIP_PROGRESS_BAR=off /bin/sh -ec "$2"
}

readme_pip_line() {  # the README's Pi pip command, with ~/edgeclf as $VENV and the package name as the built wheel
  python3 "$REPO/scripts/arm64_check.py" recipe "$REPO/README.md" pip
}

numpy1_missing() {  # Python >= 3.13 and pip finds no numpy 1.x wheel for it (numpy 1.x ends before 3.13)
  in_root "$1" "python3 -c 'import sys; sys.exit(sys.version_info < (3, 13))'" || return 1
  ! in_root "$1" "python3 $PIP_WHEEL download -q $PIP_OFFLINE --no-deps --only-binary=:all: -d /tmp/edgeclf-probe \
    'numpy<2'" >/dev/null 2>&1
}

fetch_pip() {  # pip's own wheel from PyPI (cached), run as `python pip.whl/pip` inside the root
  mkdir -p "$CACHE/pip-wheel" "$WORK/pip"
  ls "$CACHE"/pip-wheel/pip-*.whl >/dev/null 2>&1 || "$(dirname "$HOST_EDGECLF")/python" -m pip download -q \
    --no-deps --only-binary=:all: -d "$CACHE/pip-wheel" pip
  cp "$(ls "$CACHE"/pip-wheel/pip-*.whl | tail -1)" "$WORK/pip/"
  PIP_WHEEL="/check/pip/$(basename "$(ls "$WORK"/pip/pip-*.whl)")/pip"
}

download_wheels() {  # this machine's pip fetches the arm64 wheels (emulated TLS downloads crawl, and proxies reset
  # them); pip in the root then resolves and installs from them alone (--no-index), so no package comes from elsewhere
  local rel=$1 pyver=$2 glibc=$4 spec minor platforms=(--platform linux_aarch64)
  for (( minor=17; minor<=${glibc#2.}; minor++ )); do  # every manylinux tag the root's glibc accepts
    platforms+=(--platform "manylinux_2_${minor}_aarch64")
  done
  mkdir -p "$WORK/wheels-$rel"
  for spec in "" "numpy<2" "numpy==$3"; do
    "$(dirname "$HOST_EDGECLF")/python" -m pip download -q --only-binary=:all: --implementation cp \
      --python-version "$pyver" "${platforms[@]}" -d "$WORK/wheels-$rel" "$WHEEL" $spec 2>/dev/null \
      || [ "$spec" = "numpy<2" ] || { echo "check-arm64: pip download for $rel ${spec:-(default)} failed"; exit 1; }
  done
  PIP_OFFLINE="--no-index --find-links /check/wheels-$rel"
}

install_variant() {  # a fresh venv /tmp/edgeclf-<variant> in the root with the wheel installed the variant's way
  local root=$1 variant=$2 venv="/tmp/edgeclf-$2" wheel="/check/dist/$(basename "$WHEEL")"
  case "$variant" in
    # Plain venvs skip ensurepip (minutes under emulation) and run pip from its wheel: the same pip, not installed.
    numpy2) in_root "$root" "rm -rf $venv; python3 -m venv --without-pip $venv; $venv/bin/python $PIP_WHEEL install \
              -q $PIP_OFFLINE $wheel" ;;
    numpy1) in_root "$root" "rm -rf $venv; python3 -m venv --without-pip $venv; $venv/bin/python $PIP_WHEEL install \
              -q $PIP_OFFLINE --only-binary=numpy $wheel 'numpy<2'" ;;
    readme)
      local venv_line pip_line
      venv_line=$(python3 "$REPO/scripts/arm64_check.py" recipe "$REPO/README.md" venv)
      pip_line=$(readme_pip_line)
      in_root "$root" "rm -rf $venv; VENV=$venv; WHEEL=$wheel; $venv_line; $pip_line -q $PIP_OFFLINE" ;;
  esac
}

check_variant() {  # predict + camera in one venv; writes /check/<rel>-<variant>.{jsonl,camera.jsonl,env.json}
  local root=$1 rel=$2 variant=$3 venv="/tmp/edgeclf-$3" out="/check/$2-$3"
  in_root "$root" "cd /tmp; $venv/bin/python -c '
import json, sys, numpy, edgeclf.runtime as r
from importlib import metadata
print(json.dumps({\"python\": sys.version.split()[0], \"numpy\": numpy.__version__, \"numpy_file\": numpy.__file__,
  \"litert\": metadata.version(\"ai-edge-litert\"), \"tensorflow\": \"tensorflow\" in sys.modules,
  \"packages\": sorted(d.metadata[\"Name\"].lower() for d in metadata.distributions())}))' >$out.env.json
    $venv/bin/edgeclf predict /check/model.tflite /check/images --json -q --top-k 2 >$out.jsonl
    $venv/bin/edgeclf camera /check/model.tflite --source /check/images --headless --max-frames 20 -q \
      >$out.camera.jsonl"
}

check_release() {
  local rel=$1 root="$CACHE/$1" variant
  exec 9>"$CACHE/$rel.lock"
  flock 9  # two runs on one cache take turns
  bootstrap_root "$rel"
  mount_root "$root"
  local apt_numpy pyver
  apt_numpy=$(root_version "$root" python3-numpy)
  pyver=$(chroot "$root" /usr/bin/env QEMU_CPU=cortex-a72 python3 -c 'import sys; print("%d%d" % sys.version_info[:2])')
  say "$rel: apt's numpy $apt_numpy, Python $pyver"
  apt_numpy=${apt_numpy#*:}
  download_wheels "$rel" "$pyver" "${apt_numpy%%[-+]*}" "$(chroot "$root" /usr/bin/env QEMU_CPU=cortex-a72 \
    python3 -c 'import platform; print(platform.libc_ver()[1])')"
  for variant in $VARIANTS; do
    if [ "$variant" = numpy1 ] && numpy1_missing "$root"; then
      say "$rel/numpy1: not applicable: pip finds no numpy 1.x wheel for this Python (numpy 1.x ends before 3.13)"
      continue
    fi
    say "$rel/$variant: pip install $(basename "$WHEEL") (emulated: slow)"
    install_variant "$root" "$variant"
    check_variant "$root" "$rel" "$variant"
    python3 "$REPO/scripts/arm64_check.py" compare --reference "$WORK/x86.jsonl" --tolerance "$TOLERANCE" \
      --label "$rel/$variant" --apt-numpy "$(root_version "$root" python3-numpy)" \
      "$WORK/$rel-$variant" || FAILED=$((FAILED + 1))
    CHECKED=$((CHECKED + 1))
  done
  in_root "$root" "rm -rf /tmp/edgeclf-*"
  unmount_root
  flock -u 9
}

main() {
  parse_args "$@"
  if [ -z "${EDGECLF_ARM64_NS:-}" ]; then  # a private mount namespace: every mount vanishes with this process
    EDGECLF_ARM64_NS=1 exec unshare --mount --propagation private "$0" "$@"
  fi
  local started=$SECONDS
  mkdir -p "$CACHE"
  WORK=$(mktemp -d /tmp/edgeclf-arm64.XXXXXX)
  trap 'unmount_root; [ -z "$KEEP" ] || { mkdir -p "$KEEP" && cp "$WORK"/*.json* "$KEEP"/ 2>/dev/null; }; rm -rf "$WORK"' EXIT
  MOUNTS=()
  FAILED=0 CHECKED=0
  ensure_tools
  say "QEMU $(qemu-aarch64-static --version | head -1 | sed 's/.*version //'), CPU cortex-a72; cache $CACHE"
  build_wheel
  fetch_pip
  mkdir -p "$WORK/dist" && cp -n "$WHEEL" "$WORK/dist/" 2>/dev/null || true
  cp "$MODEL" "$WORK/model.tflite"
  # pip in the root trusts what this machine trusts (an HTTPS proxy's CA, if there is one)
  cp "${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}" "$WORK/ca.crt"
  write_cpuinfo
  pick_images
  "$HOST_EDGECLF" predict "$WORK/model.tflite" "$WORK/images" --json -q --top-k 2 >"$WORK/x86.jsonl"
  say "x86 reference: $(wc -l <"$WORK/x86.jsonl") predictions ($(uname -m), $("$HOST_EDGECLF" --version 2>/dev/null \
    || echo edgeclf))"
  # qemu-user runs each emulated process on one core: the releases run side by side, their reports printed in order
  for rel in $RELEASES; do
    ( FAILED=0 CHECKED=0; check_release "$rel"; echo "$FAILED $CHECKED" >"$WORK/$rel.counts" ) >"$WORK/$rel.log" 2>&1 &
  done
  wait || true
  local failed checked
  for rel in $RELEASES; do
    cat "$WORK/$rel.log"
    { [ -f "$WORK/$rel.counts" ] && read -r failed checked <"$WORK/$rel.counts"; } \
      || { say "$rel: FAILED before its checks ended"; failed=1 checked=0; }
    FAILED=$((FAILED + failed)) CHECKED=$((CHECKED + checked))
  done
  say "done in $((SECONDS - started)) s wall (the cost of this check; emulated, not a performance figure)"
  if [ "$FAILED" -gt 0 ]; then say "FAILED: $FAILED variant(s)"; exit 1; fi
  [ "$CHECKED" -gt 0 ] || { say "FAILED: no variant was checked (--releases empty?)"; exit 1; }
  say "all $CHECKED variants agree with x86"
}

main "$@"
