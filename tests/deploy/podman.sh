# tests/deploy/podman.sh — the podman set-up the container tests share.
# Sourced, not run: `. tests/deploy/podman.sh && podman_setup || exit 1`.
#
# The test machines have no Docker engine, and often no registry but
# Debian's package archive. podman_setup makes what building the Dockerfile
# needs from that alone:
#  - podman, runc and debootstrap, installed with apt-get when missing (root);
#  - a podman configuration in $W (default /tmp/lsmi-podman): storage there,
#    runc as the runtime (crun rejects the hybrid cgroup layout seen on these
#    machines) and default ulimits inside the hard limits (podman's own
#    defaults need CAP_SYS_RESOURCE, which a test machine may not grant);
#  - the base image docker.io/library/debian:bookworm-slim: pulled when a
#    registry answers within PODMAN_PULL_TIMEOUT seconds (default 20), else
#    made locally with debootstrap from the machine's own Debian mirror and
#    imported under that name.
# It exports CONTAINERS_CONF and CONTAINERS_STORAGE_CONF, so every later
# podman call of the sourcing script uses the set-up, and leaves the default
# ulimits it chose in $nf (nofile) and $np (nproc). Messages go to stderr;
# it returns non-zero, after saying why, when a step fails.
#
# podman_build_lsmi LOG builds the repository's Dockerfile as $LSMI_IMAGE,
# the image the container tests share (podman's layer cache makes the
# second build of a tree quick); free_port prints a free loopback port.

W=${W:-/tmp/lsmi-podman}
export W
BASE_IMAGE=docker.io/library/debian:bookworm-slim
LSMI_IMAGE=localhost/lsmi-test:latest

podman_setup() {
  mkdir -p "$W" || return 1
  if ! command -v podman >/dev/null 2>&1 || ! command -v runc >/dev/null 2>&1 ||
     ! command -v debootstrap >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "podman_setup: podman, runc or debootstrap missing, and not root to install them" >&2
      return 1
    fi
    echo "podman_setup: installing podman, runc and debootstrap" >&2
    apt-get update -q >"$W/apt.log" 2>&1 &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q podman runc debootstrap \
        >>"$W/apt.log" 2>&1 ||
      { echo "podman_setup: apt-get failed (see $W/apt.log)" >&2; return 1; }
  fi

  np=$(ulimit -Hu)
  { [ "$np" = unlimited ] || [ "$np" -gt 32768 ]; } && np=32768
  nf=$(ulimit -Hn)
  printf '[containers]\ndefault_ulimits=["nofile=%s:%s","nproc=%s:%s"]\n[engine]\nruntime="runc"\n' \
    "$nf" "$nf" "$np" "$np" >"$W/containers.conf"
  printf '[storage]\ndriver="overlay"\ngraphroot="%s/storage"\nrunroot="%s/run"\n' \
    "$W" "$W" >"$W/storage.conf"
  export CONTAINERS_CONF="$W/containers.conf" CONTAINERS_STORAGE_CONF="$W/storage.conf"

  podman image exists "$BASE_IMAGE" 2>/dev/null && return 0
  if timeout "${PODMAN_PULL_TIMEOUT:-20}" podman pull -q "$BASE_IMAGE" >"$W/pull.log" 2>&1; then
    return 0
  fi
  echo "podman_setup: no registry answered; making $BASE_IMAGE with debootstrap" >&2
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  [ -n "$mirror" ] || { echo "podman_setup: no Debian mirror found in the apt sources" >&2; return 1; }
  rootfs="$W/rootfs"
  rm -rf "$rootfs"
  if ! debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$W/debootstrap.log" 2>&1; then
    echo "podman_setup: debootstrap failed (see $W/debootstrap.log)" >&2
    return 1
  fi
  # The image's apt uses the same mirror as this machine.
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    cp /etc/apt/sources.list.d/debian.sources "$rootfs/etc/apt/sources.list.d/"
    rm -f "$rootfs/etc/apt/sources.list"
  fi
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/man/* \
    "$rootfs"/usr/share/locale/* "$rootfs"/usr/share/info/*
  tar --numeric-owner -C "$rootfs" -c . |
    podman import --change 'CMD ["bash"]' - "$BASE_IMAGE" >"$W/import.log" 2>&1
  rc=$?
  rm -rf "$rootfs"
  [ "$rc" -eq 0 ] || { echo "podman_setup: podman import failed (see $W/import.log)" >&2; return 1; }
}

# The Dockerfile of the tree this file is in, as $LSMI_IMAGE; the output to
# $1. The docker format keeps the HEALTHCHECK (the OCI format drops it).
podman_build_lsmi() {
  timeout 2400 podman build --format docker --pull=never -t "$LSMI_IMAGE" \
    "$(dirname "${BASH_SOURCE[0]}")/../.." >"$1" 2>&1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
