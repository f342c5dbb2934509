#!/bin/sh
# Tasknet POV-Ray app entrypoint: renders frame FRAME of FRAMES of the scene into /out/frame.bmp.
# The scene is the job's dataset (/in/dataset) or, without one, the task input /in/scene.pov.
#   render.sh FRAME [FRAMES] [WIDTH] [HEIGHT]
# BMP is POV-Ray's only output format without a render timestamp, so /out/frame.bmp is bit-deterministic:
# it is the app's declared deterministic file, and its sha256 is the task's result digest.
set -eu
frame=${1:?usage: render.sh FRAME [FRAMES] [WIDTH] [HEIGHT]}
frames=${2:-24}
width=${3:-320}
height=${4:-240}
case "$frame$frames$width$height" in *[!0-9]*) echo "render.sh: arguments must be integers" >&2; exit 2 ;; esac
scene=/in/scene.pov
[ -r /in/dataset ] && scene=/in/dataset
[ -r "$scene" ] || { echo "render.sh: no scene: give the job a dataset or a scene.pov input" >&2; exit 2; }
cd /out
exec povray +I"$scene" +O/out/frame.bmp +FB +W"$width" +H"$height" +A0.3 -D -V +WT1 \
  +L/usr/share/povray-3.7/include Declare=Frame="$frame" Declare=Frames="$frames"
