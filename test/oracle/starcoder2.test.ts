// llama.cpp oracle: starcoder2 test models in every weight format (see helpers-agreement.ts).
import { agreementSuite } from './helpers-agreement';

agreementSuite('starcoder2', { arch: 'starcoder2', layers: 2, dims: 256, heads: 4, kvHeads: 2, ff: 512, seed: 1 });
