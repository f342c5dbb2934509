#!/bin/sh
# FileHasher's app: describe /in/file (its sha256, size, lines and words) in /out/result.txt.
set -eu
f=/in/file
if [ ! -f "$f" ]; then
    echo "no input file: the inputs document must place the file at 'file'" >&2
    exit 2
fi
{
    echo "sha256: $(sha256sum "$f" | cut -d' ' -f1)"
    echo "bytes: $(wc -c < "$f" | tr -d ' ')"
    echo "lines: $(wc -l < "$f" | tr -d ' ')"
    echo "words: $(wc -w < "$f" | tr -d ' ')"
} > /out/result.txt
echo "hashed $(wc -c < "$f" | tr -d ' ') bytes"
