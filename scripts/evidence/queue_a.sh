#!/usr/bin/env bash
# Slot A of the evidence runs: after EDSR x8, EDSR x4, then SRCNN x8 only if it can end before the 06:20 UTC stop.
cd "$(dirname "$0")/../.."
while kill -0 "$(cat runs/evidence/logs/edsr8.pid)" 2>/dev/null; do sleep 10; done
scripts/evidence/train_one.sh edsr 4
if [ "$(date -u +%H%M)" -lt 0545 ]; then scripts/evidence/train_one.sh srcnn 8; fi
