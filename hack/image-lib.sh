# Shared by hack/build-image.sh and hack/build-node-images.sh (sourced, not run): the Debian
# bookworm base made with debootstrap when no registry can be reached.
#
# Needs: buildah, debootstrap; the caller sets the array `storage` (buildah's storage flags).

# The first deb URI the machine's apt uses (deb822 or one-line format).
debian_mirror() {
  local uri
  uri="$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | head -1)"
  [[ -n "$uri" ]] || uri="$(grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                            | awk '{print $2}' | head -1)"
  echo "${uri:-http://deb.debian.org/debian}"
}

image_exists() { buildah "${storage[@]}" inspect --type image "$1" >/dev/null 2>&1; }

# make_debian_base WORKDIR IMAGE: debootstrap a minimal bookworm with python3 and venv into
# WORKDIR/rootfs.tmp, commit it as IMAGE, and remove the rootfs.
make_debian_base() {
  local work="$1" image="$2" rootfs mirror container mount
  rootfs="$(mktemp -d "$work/rootfs.XXXXXX")"
  mirror="$(debian_mirror)"
  echo "debootstrap bookworm from $mirror for $image (about a minute, once)"
  debootstrap --variant=minbase --include=python3,python3-venv bookworm "$rootfs" "$mirror" \
    > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; rm -rf "$rootfs"; return 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  container="$(buildah "${storage[@]}" from scratch)"
  mount="$(buildah "${storage[@]}" mount "$container")"
  cp -a "$rootfs"/. "$mount"/
  buildah "${storage[@]}" umount "$container" >/dev/null
  buildah "${storage[@]}" config \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd python3 "$container"
  buildah "${storage[@]}" commit --rm "$container" "$image" >/dev/null
  rm -rf "$rootfs"
}
