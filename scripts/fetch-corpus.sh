#!/bin/sh
# Fetches public-domain English text from Debian packages and writes one
# corpus file for tokenizer-train / prepare-data (the corpus is not
# committed: data/corpus.txt is in .gitignore).
#
#   bible-kjv-text + bible-kjv   the King James Bible (public domain), dumped
#                                 with the `bible` program, one chapter per document
#   fortunes, fortunes-min       the fortune cookie files (without the
#                                 offensive set, which lives in fortunes-off),
#                                 one fortune per document; the ASCII-art files are left out
#
# Documents are separated by a line holding only "%" (the fortune files'
# own separator): prepare the data with `ringlm prepare-data --doc-sep %`.
#
# usage: scripts/fetch-corpus.sh [OUT]      (default: data/corpus.txt)
set -eu
OUT=${1:-data/corpus.txt}
PKGS="bible-kjv bible-kjv-text fortunes fortunes-min"

missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "fetch-corpus: installing$missing" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

mkdir -p "$(dirname "$OUT")"
TMP="$OUT.tmp"
: > "$TMP"

# The Bible: `bible -l0` prints "Book N" headers and "  v text" lines;
# each chapter becomes a document without the verse numbers.
bible -l0 "Gen1:1-Rev22:21" < /dev/null | awk '
    /^[A-Za-z0-9 ]+ [0-9]+$/ { if (n) print "%"; print; n = 1; next }
    /^ *[0-9]+ / { sub(/^ *[0-9]+ /, ""); print; next }
    END { if (n) print "%" }' >> "$TMP"

# Fortunes: already "%"-separated; each file ends its last fortune with "%".
FDIR=/usr/share/games/fortunes
for f in "$FDIR"/*; do
    case "$f" in *.dat|*.u8|*/art|*/ascii-art) continue ;; esac
    [ -f "$f" ] || continue
    # keep valid UTF-8 only (a file that is not is skipped with a note)
    if iconv -f UTF-8 -t UTF-8 "$f" >/dev/null 2>&1; then
        cat "$f" >> "$TMP"
        tail -c1 "$f" | od -An -c | grep -q '\\n' || echo >> "$TMP"
        tail -n1 "$f" | grep -qx '%' || echo "%" >> "$TMP"
    else
        echo "fetch-corpus: skipping $f (not UTF-8)" >&2
    fi
done
mv "$TMP" "$OUT"
echo "fetch-corpus: $(wc -c < "$OUT") bytes, $(grep -cx '%' "$OUT") documents -> $OUT" >&2
