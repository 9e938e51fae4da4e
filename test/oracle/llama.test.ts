// llama.cpp oracle: llama test models in every weight format (see helpers-agreement.ts).
import { agreementSuite } from './helpers-agreement';

agreementSuite('llama', { arch: 'llama', layers: 2, dims: 256, heads: 4, kvHeads: 2, ff: 512, seed: 1 });
