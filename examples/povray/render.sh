#!/bin/sh
# Tasknet POV-Ray app entrypoint: renders frame FRAME of FRAMES of /in/scene.pov into /out/frame.bmp.
#   render.sh FRAME [FRAMES] [WIDTH] [HEIGHT]
# BMP is POV-Ray's only output format without a render timestamp, so /out/frame.bmp is bit-deterministic:
# it is the app's declared deterministic file, and its sha256 is the task's result digest.
set -eu
frame=${1:?usage: render.sh FRAME [FRAMES] [WIDTH] [HEIGHT]}
frames=${2:-24}
width=${3:-320}
height=${4:-240}
case "$frame$frames$width$height" in *[!0-9]*) echo "render.sh: arguments must be integers" >&2; exit 2 ;; esac
[ -r /in/scene.pov ] || { echo "render.sh: /in/scene.pov is missing (the job must provide it as an input)" >&2; exit 2; }
cd /out
exec povray +I/in/scene.pov +O/out/frame.bmp +FB +W"$width" +H"$height" +A0.3 -D -V +WT1 \
  +L/usr/share/povray-3.7/include Declare=Frame="$frame" Declare=Frames="$frames"
