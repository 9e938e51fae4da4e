// Builds ONNX graphs (ModelProto bytes) node by node. Field numbers follow onnx.proto3.

import { ProtoWriter } from './protobuf';

export enum OnnxType {
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  INT32 = 6,
  INT64 = 7,
  FLOAT16 = 10,
}

export type AttrValue = number | string | number[] | { float: number };

/** A symbolic or fixed dimension of a graph input/output. */
export type Dim = number | string;

export class GraphBuilder {
  private readonly nodes: ProtoWriter[] = [];
  private readonly inits: ProtoWriter[] = [];
  private readonly inputs: ProtoWriter[] = [];
  private readonly outputs: ProtoWriter[] = [];
  private counter = 0;

  constructor(private readonly name: string) {}

  /** A fresh value name. */
  tmp(hint = 't'): string {
    return `${hint}_${this.counter++}`;
  }

  input(name: string, type: OnnxType, dims: Dim[]): string {
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  output(name: string, type: OnnxType, dims: Dim[]): void {
    this.outputs.push(valueInfo(name, type, dims));
  }

  /** A constant tensor stored in the model (weights). */
  initializer(name: string, type: OnnxType, dims: number[], data: Uint8Array): string {
    const t = new ProtoWriter();
    for (const d of dims) t.int(1, d);
    t.int(2, type);
    t.string(8, name);
    t.bytes(9, data);
    this.inits.push(t);
    return name;
  }

  f32(name: string, dims: number[], values: Float32Array): string {
    return this.initializer(name, OnnxType.FLOAT, dims, new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
  }

  i64(name: string, values: number[]): string {
    const b = new BigInt64Array(values.map((v) => BigInt(v)));
    return this.initializer(name, OnnxType.INT64, [values.length], new Uint8Array(b.buffer));
  }

  /** Adds a node; returns its output names (`outputs` count of fresh names unless given). */
  node(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, options: { domain?: string; outputs?: number | string[] } = {}): string[] {
    const outs = Array.isArray(options.outputs)
      ? options.outputs
      : Array.from({ length: options.outputs ?? 1 }, () => this.tmp(op.toLowerCase()));
    const n = new ProtoWriter();
    for (const i of inputs) n.string(1, i);
    for (const o of outs) n.string(2, o);
    n.string(3, this.tmp(`n_${op}`));
    n.string(4, op);
    for (const [k, v] of Object.entries(attrs)) n.message(5, attribute(k, v));
    if (options.domain) n.string(7, options.domain);
    this.nodes.push(n);
    return outs;
  }

  /** Single-output convenience. */
  op(op: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain?: string): string {
    return this.node(op, inputs, attrs, { domain })[0]!;
  }

  toModel(): Uint8Array {
    const g = new ProtoWriter();
    for (const n of this.nodes) g.message(1, n);
    g.string(2, this.name);
    for (const t of this.inits) g.message(5, t);
    for (const i of this.inputs) g.message(11, i);
    for (const o of this.outputs) g.message(12, o);
    const m = new ProtoWriter();
    m.int(1, 8); // ir_version
    m.string(2, 'cachet');
    m.message(7, g);
    m.message(8, new ProtoWriter().string(1, '').int(2, 17));
    m.message(8, new ProtoWriter().string(1, 'com.microsoft').int(2, 1));
    return m.finish();
  }
}

function valueInfo(name: string, type: OnnxType, dims: Dim[]): ProtoWriter {
  const shape = new ProtoWriter();
  for (const d of dims) {
    const dim = new ProtoWriter();
    if (typeof d === 'number') dim.int(1, d);
    else dim.string(2, d);
    shape.message(1, dim);
  }
  const tensor = new ProtoWriter().int(1, type).message(2, shape);
  const typeProto = new ProtoWriter().message(1, tensor);
  return new ProtoWriter().string(1, name).message(2, typeProto);
}

function attribute(name: string, v: AttrValue): ProtoWriter {
  const a = new ProtoWriter().string(1, name);
  if (typeof v === 'object' && !Array.isArray(v)) return a.float(2, v.float).int(20, 1);
  if (typeof v === 'number') return a.int(3, v).int(20, 2);
  if (typeof v === 'string') return a.string(4, v).int(20, 3);
  for (const x of v) a.int(8, x);
  return a.int(20, 7);
}
