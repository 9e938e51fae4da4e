#!/usr/bin/env bash
# Prepares one device call that runs bench/gpu.ts (Cachet on WebGPU) and bench/gpu-llama.ts
# (llama.cpp Vulkan through node-llama-cpp) on the same random-weight GGUFs, side by side.
#
# The device tool carries at most 64 MiB: the working tree (the tracked models/ GGUF alone is
# ~39 MB) + the Node/Dawn kit (~29 MB) + llama.cpp's Vulkan binary (~13 MB xz) do not fit. So
# `bash bench/gpu-device.sh` swaps the GGUF for a symlink to a copy in /tmp (a link travels as a
# link; local tests still resolve it), and `bash bench/gpu-device.sh --restore` puts it back.
#
#   bash bench/gpu-device.sh          # builds dist/bench-gpu*.js, .devkit/, bench/tmp/llv.tar.xz
#   device run, carry [".devkit", "dist", "bench/tmp/llv.tar.xz"], command:
#     source .devkit/enter.sh && bash bench/gpu-device.sh --run "$OUT"
#   bash bench/gpu-device.sh --restore
set -euo pipefail
root="$(git rev-parse --show-toplevel)"
cd "$root"
model=models/cachet-tiny.Q8_0.gguf

if [ "${1:-}" = --restore ]; then
  if [ -L "$model" ]; then cp --remove-destination "$(readlink -f "$model")" "$model"; fi
  git diff --quiet -- "$model" && echo "restored $model"
  exit 0
fi

if [ "${1:-}" = --run ]; then
  # On the device: every bench writes into $OUT as it goes, so a timeout still returns results.
  out="$2"
  mkdir -p /tmp/llv && tar -xJf bench/tmp/llv.tar.xz -C /tmp/llv
  llama=/tmp/llv/node_modules/node-llama-cpp
  # the bundles import('webgpu') as ESM, which ignores NODE_PATH
  mkdir -p node_modules && ln -sfn /tmp/devkit/node_modules/webgpu node_modules/webgpu
  shapes="${CACHET_BENCH_SHAPES:-qwen2.5-coder-1.5b:Q8_0 qwen2.5-coder-1.5b:Q4_K_M}"
  ctx="${CACHET_BENCH_CTX:-512,4096,16384,32768}"
  for sq in $shapes; do
    shape="${sq%%:*}"; quant="${sq##*:}"; tag="${shape#qwen2.5-coder-}-$quant"
    timeout "${CACHET_BENCH_TIMEOUT:-200}" node dist/bench-gpu.js --shape "$shape" --quant "$quant" \
      --ctx "$ctx" --prefill-ctx 4096 --decode 64 --profile 2 --chunk 512 \
      --out "$out/cachet-$tag.json" > /tmp/cachet-$tag.log 2>&1 || echo "cachet $tag: exit $?"
    cat /tmp/cachet-$tag.log >> "$out/bench.log"; grep '^ctx' /tmp/cachet-$tag.log
    [ "${CACHET_BENCH_SKIP_LLAMA:-0}" = 1 ] && continue
    timeout "${CACHET_BENCH_TIMEOUT:-200}" node dist/bench-gpu-llama.js --llama "$llama" \
      --model "/tmp/cachet-bench-$shape-$quant.gguf" --ctx "$ctx" --passes 2 --decode 64 --batch 2048 \
      --out "$out/llama-$tag.json" > /tmp/llama-$tag.log 2>&1 || echo "llama $tag: exit $?"
    cat /tmp/llama-$tag.log >> "$out/bench.log"; grep '"pass":2' /tmp/llama-$tag.log | cut -c1-150
  done
  exit 0
fi

# Prepare (here).
npx esbuild bench/gpu.ts --bundle --platform=node --format=cjs --external:webgpu --loader:.wgsl=text --outfile=dist/bench-gpu.js --log-level=warning
npx esbuild bench/gpu-llama.ts --bundle --platform=node --format=cjs --outfile=dist/bench-gpu-llama.js --log-level=warning
[ -d .devkit ] || bash ../shared/device/pack.sh
if [ ! -f bench/tmp/llv.tar.xz ]; then
  # llama.cpp's Vulkan build; the source bundle (34 MB) is only for rebuilding from source
  mkdir -p bench/tmp/llv && (cd bench/tmp/llv && echo '{"name":"llv","private":true}' > package.json &&
    npm i --omit=optional --no-audit --no-fund node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64-vulkan@3.22.1 >/dev/null)
  rm -f bench/tmp/llv/node_modules/node-llama-cpp/llama/gitRelease.bundle
  tar -C bench/tmp/llv -cJf bench/tmp/llv.tar.xz node_modules
fi
if [ ! -L "$model" ]; then
  cp "$model" /tmp/cachet-tiny.Q8_0.gguf && ln -sf /tmp/cachet-tiny.Q8_0.gguf "$model"
fi
du -shc .devkit dist bench/tmp/llv.tar.xz
echo "after the device call: bash bench/gpu-device.sh --restore"
