#!/usr/bin/env bash
# Puts the full Imagenette (10 ILSVRC classes, 224-pixel copy) in an ImageFolder tree for the
# imagenet example: scripts/get_imagenette.sh [DEST] [SOURCE]
#
# DEST (default $WT_DATA_CACHE/imagenette, else ~/.cache/wt-data/imagenette, where the example
# looks when `--data` is not given) receives train/<wnid>/*.JPEG and val/<wnid>/*.JPEG: 9,469
# and 3,925 photos, as published in the public repository thunderInfy/imagenette. SOURCE is
# that repository: a git directory or a clone already on disk, or its URL (the default,
# https://github.com/thunderInfy/imagenette, cloned shallow into a temporary folder). The
# photos are ImageNet images under ImageNet's non-commercial research terms; never commit
# them. The script checks the photo counts of both splits and that every class folder is a
# wnid of the ILSVRC class index ($WT_DATA/imagenet-classes/imagenet1k_classes.tsv when it
# exists), and writes nothing into DEST unless the checks pass.
set -euo pipefail
cache=${WT_DATA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wt-data}
dest=${1:-$cache/imagenette}
source=${2:-https://github.com/thunderInfy/imagenette}
if [ -e "$dest/train" ] || [ -e "$dest/val" ]; then
  echo "$dest already holds train/ or val/: remove them first to fetch again" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -d "$source" ]; then
  gitdir=$source
  [ -d "$source/.git" ] && gitdir=$source/.git
else
  echo "cloning $source"
  git clone --quiet --depth 1 --bare "$source" "$work/repo.git"
  gitdir=$work/repo.git
fi
mkdir -p "$work/tree"
git --git-dir="$gitdir" archive HEAD train val | tar -x -C "$work/tree"
count() { find "$work/tree/$1" -name '*.JPEG' | wc -l; }
train=$(count train)
val=$(count val)
if [ "$train" != 9469 ] || [ "$val" != 3925 ]; then
  echo "expected 9469 train / 3925 val photos, found $train / $val in $source" >&2
  exit 1
fi
index=${WT_DATA:-}/imagenet-classes/imagenet1k_classes.tsv
if [ -f "$index" ]; then
  for d in "$work"/tree/train/* "$work"/tree/val/*; do
    wnid=$(basename "$d")
    if ! awk -F'\t' -v w="$wnid" '$2 == w { found = 1 } END { exit !found }' "$index"; then
      echo "class folder $wnid ($d) is not a wnid of $index" >&2
      exit 1
    fi
  done
fi
mkdir -p "$dest"
mv "$work/tree/train" "$work/tree/val" "$dest/"
echo "Imagenette: $train train / $val val photos in $dest"
