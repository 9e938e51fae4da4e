#!/usr/bin/env bash
# Prepares a device run of bench/gpu.ts when the working tree plus the device kit exceed the
# device tool's 64 MiB transfer limit (the tracked models/ GGUF alone is ~39 MB): the kit is split
# into two carries that a first and second call assemble in /tmp/dk on the (still warm) machine.
#
#   bash bench/gpu-device.sh            # builds dist/bench-gpu.js, .dk1/ and .dk2/
#   run 1: carry [".dk1", "dist"], command:
#     rm -rf /tmp/dk && mkdir -p /tmp/dk && cp -r .dk1/* /tmp/dk/ && cp -r dist /tmp/dk/dist
#   run 2 (at once, while warm), carry [".dk2"], command:
#     cat /tmp/dk/node.xz.aa .dk2/node.xz.a? > /tmp/dk/node.xz && rm -rf .devkit && cp -r /tmp/dk .devkit
#     && source .devkit/enter.sh && rm -rf /tmp/dk/node_modules/webgpu
#     && ln -sfn /tmp/devkit/node_modules/webgpu /tmp/dk/node_modules/webgpu
#     && timeout 400 node /tmp/dk/dist/bench-gpu.js --shape qwen2.5-coder-1.5b --ctx 512,4096,16384
#        --decode 32 --profile 2 --chunk 512 --out $OUT/gpu-h100.json
set -euo pipefail
root="$(git rev-parse --show-toplevel)"
cd "$root"
npx esbuild bench/gpu.ts --bundle --platform=node --format=cjs --external:webgpu --loader:.wgsl=text --outfile=dist/bench-gpu.js --log-level=warning
bash ../shared/device/pack.sh
for d in .dk1 .dk2; do grep -qx "/$d/" .git/info/exclude || echo "/$d/" >> .git/info/exclude; done
rm -rf .dk1 .dk2 && mkdir -p .dk1 .dk2
cp -r .devkit/debs .devkit/enter.sh .devkit/node_modules .dk1/
split -b 12000000 .devkit/node.xz .dk2/node.xz.
mv .dk2/node.xz.aa .dk1/node.xz.aa
du -sh .dk1 .dk2 dist
