#!/usr/bin/env bash
# Slot B of the evidence runs: after AffectSRNet x8, SRCNN x4 only if it can end before the 06:20 UTC stop.
cd "$(dirname "$0")/../.."
while kill -0 "$(cat runs/evidence/logs/aff8.pid)" 2>/dev/null; do sleep 10; done
if [ "$(date -u +%H%M)" -lt 0553 ]; then scripts/evidence/train_one.sh srcnn 4; fi
