#!/bin/sh
# Regenerates the bundled speech clips (run once, by hand; needs the Debian packages espeak-ng and sox).
set -eu
cd "$(dirname "$0")"
say() {
  espeak-ng -v en-us -s 150 -w "$1.raw.wav" "$2"
  # 16 kHz mono 16-bit (the toy's microphone rate), leading/trailing silence trimmed, 150 ms pad.
  sox -R "$1.raw.wav" -r 16000 -b 16 -c 1 "$1.wav" \
    silence 1 0.02 0.5% reverse silence 1 0.02 0.5% reverse pad 0.15 0.15
  rm "$1.raw.wav"
}
say hello-mummy "Hello mummy! I love you."
say story-tonight "Can we read a story tonight?"
say good-night "Good night, sleep tight!"
say park-fun "The park was so much fun today."
