// The forward pass as ONNX graphs, cut where attention happens: attention reads the engine-owned
// KV slots, so it runs between graphs (see onnx-backend.ts). Stage graphs:
//   first:     x -> norm -> q, k, v                          (layer 0)
//   middle l:  x, attn(l-1) -> +o, norm, ffn, + -> x' -> norm -> q, k, v   (layers 1..L-1)
//   last:      x, attn(L-1) -> +o, norm, ffn, + -> x'
//   head:      x rows -> final norm -> logits
// so a step costs L + 2 session runs (~17 µs each) and every matmul runs inside ORT.

import { layerTensorNames, lmHeadName, OUTPUT_NORM, OUTPUT_NORM_BIAS, type LayerTensorNames } from '../../model/tensor-names';
import type { ModelConfig, ModelWeights } from '../../model/types';
import { GraphBuilder, OnnxType } from './graph-builder';
import { linear, tensorToF32, type LinearOptions } from './linear-nodes';

function norm(g: GraphBuilder, c: ModelConfig, w: ModelWeights, x: string, weight: string, bias: string | undefined): string {
  const gamma = g.f32(weight, [c.nEmbd], tensorToF32(w.get(weight)));
  if (c.norm.type === 'rms') {
    return g.op('SimplifiedLayerNormalization', [x, gamma], { axis: -1, epsilon: { float: c.norm.eps } });
  }
  const beta = g.f32(bias!, [c.nEmbd], tensorToF32(w.get(bias!)));
  return g.op('LayerNormalization', [x, gamma, beta], { axis: -1, epsilon: { float: c.norm.eps } });
}

function maybe(w: ModelWeights, name: string | undefined) {
  return name ? w.get(name) : undefined;
}

/** Attention input projections of one layer: norm then q, k, v (before RoPE). */
function qkv(g: GraphBuilder, c: ModelConfig, w: ModelWeights, n: LayerTensorNames, x: string, opt: LinearOptions): void {
  const h = norm(g, c, w, x, n.attnNorm, n.attnNormBias);
  const q = linear(g, h, w.get(n.q), maybe(w, n.qBias), opt);
  const k = linear(g, h, w.get(n.k), maybe(w, n.kBias), opt);
  const v = linear(g, h, w.get(n.v), maybe(w, n.vBias), opt);
  g.node('Identity', [q], {}, { outputs: ['q'] });
  g.node('Identity', [k], {}, { outputs: ['k'] });
  g.node('Identity', [v], {}, { outputs: ['v'] });
  g.output('q', OnnxType.FLOAT, ['n', c.nHeads * c.headDim]);
  g.output('k', OnnxType.FLOAT, ['n', c.nKvHeads * c.headDim]);
  g.output('v', OnnxType.FLOAT, ['n', c.nKvHeads * c.headDim]);
}

/** Output projection + residual, then the feed-forward block + residual; returns x'. */
function finishLayer(g: GraphBuilder, c: ModelConfig, w: ModelWeights, n: LayerTensorNames, x: string, attn: string, opt: LinearOptions): string {
  const x1 = g.op('Add', [x, linear(g, attn, w.get(n.o), maybe(w, n.oBias), opt)]);
  const h = norm(g, c, w, x1, n.ffnNorm, n.ffnNormBias);
  let act: string;
  const up = linear(g, h, w.get(n.up), maybe(w, n.upBias), opt);
  if (n.gate) {
    const gate = linear(g, h, w.get(n.gate), undefined, opt);
    act = g.op('Mul', [g.op('Mul', [gate, g.op('Sigmoid', [gate])]), up]);
  } else {
    act = g.op('FastGelu', [up], {}, 'com.microsoft');
  }
  return g.op('Add', [x1, linear(g, act, w.get(n.down), maybe(w, n.downBias), opt)]);
}

export function buildStageGraphs(w: ModelWeights, opt: LinearOptions): Uint8Array[] {
  const c = w.config;
  const graphs: Uint8Array[] = [];
  const E = c.nEmbd;
  const qDim = c.nHeads * c.headDim;
  for (let l = 0; l <= c.nLayers; l++) {
    const g = new GraphBuilder(`stage${l}`);
    let x = g.input('x', OnnxType.FLOAT, ['n', E]);
    if (l > 0) {
      const attn = g.input('attn', OnnxType.FLOAT, ['n', qDim]);
      x = finishLayer(g, c, w, layerTensorNames(c, l - 1), x, attn, opt);
      g.node('Identity', [x], {}, { outputs: ['x_out'] });
      g.output('x_out', OnnxType.FLOAT, ['n', E]);
    }
    if (l < c.nLayers) qkv(g, c, w, layerTensorNames(c, l), x, opt);
    graphs.push(g.toModel());
  }
  const g = new GraphBuilder('head');
  const x = g.input('x', OnnxType.FLOAT, ['n', E]);
  const h = norm(g, c, w, x, OUTPUT_NORM, c.norm.type === 'layer' ? OUTPUT_NORM_BIAS : undefined);
  const logits = linear(g, h, w.get(lmHeadName(c)), undefined, opt);
  g.node('Identity', [logits], {}, { outputs: ['logits'] });
  g.output('logits', OnnxType.FLOAT, ['n', c.vocabSize]);
  graphs.push(g.toModel());
  return graphs;
}
