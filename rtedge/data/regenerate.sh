#!/bin/sh
# Regenerates the bundled demo audio byte for byte (needs the espeak-ng and sox packages).
set -eu
cd "$(dirname "$0")"
espeak-ng -v en-us -s 150 --stdout "turn on the kitchen lights, please" \
  | sox -D -t wav - -r 16000 -c 1 -b 16 demo_phrase.wav pad 0.3 1.0
espeak-ng -v en-us -s 160 --stdout "Okay. The kitchen lights are on." \
  | sox -D -t wav - -r 24000 -c 1 -b 16 demo_reply.wav pad 0.1 0.2
