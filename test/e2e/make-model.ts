// Writes the small random-weight GGUF the e2e test uses when no embedded model is shipped.
// Bundled by esbuild and run with node: `node make-model.cjs OUT_PATH`.
import { makeTestModel } from '../helpers/make-test-model';

const path = process.argv[2];
if (!path) throw new Error('usage: make-model OUT_PATH');
console.log(makeTestModel({ arch: 'qwen2', layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, vocab: 'bytes', quant: 'F32', seed: 7, path, contextLength: 2048 }));
