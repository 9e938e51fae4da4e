// The `cachet` command. One subcommand per concern; every one takes --json for machine-readable
// output. Exit codes: 0 ok, 1 bad command line (usage printed), 2 CachetError (message + hint on
// stderr), 3 unexpected error.

import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CachetError } from '../errors';
import type { SamplingParams } from '../protocol';
import { formatBench, runBench } from './bench';
import { runDemo } from './demo';
import { findDefaultModel, loadEngine, parseBackend, type Engine } from './engine-link';
import { formatTimings, runComplete, runGenerate } from './generate';
import { formatInfo, inspectModel } from './info';
import { EXIT_CACHET_ERROR, EXIT_OK, EXIT_USAGE, printJson, processIo, reportError, UsageError, type Io } from './output';
import { serve } from './serve';
import { formatTokens, tokenizeWithModel } from './tokenize';

type Options = NonNullable<ParseArgsConfig['options']>;

const COMMON: Options = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};
const ENGINE: Options = {
  model: { type: 'string', short: 'm' },
  backend: { type: 'string' },
  ctx: { type: 'string' },
  threads: { type: 'string' },
};
const SAMPLING: Options = {
  n: { type: 'string', short: 'n' },
  greedy: { type: 'boolean' },
  temp: { type: 'string' },
  'top-k': { type: 'string' },
  'top-p': { type: 'string' },
  seed: { type: 'string' },
};

interface Command {
  summary: string;
  usage: string;
  options: Options;
  positionals?: boolean;
  run(values: Record<string, string | boolean | string[] | undefined>, positionals: string[], io: Io): Promise<number>;
}

const COMMANDS: Record<string, Command> = {
  info: {
    summary: "What a GGUF holds: architecture, sizes, quant mix, context, tokenizer, FIM, problems.",
    usage: 'cachet info MODEL.gguf [--json]\n  Architecture, sizes, quantization mix, context length, tokenizer, FIM support and problems.',
    options: {},
    positionals: true,
    async run(v, pos, io) {
      if (pos.length !== 1) throw new UsageError('info takes exactly one model path', 'info');
      const r = inspectModel(pos[0]!);
      if (v.json) printJson(io, r);
      else io.out(formatInfo(r));
      return r.problems.length ? EXIT_CACHET_ERROR : EXIT_OK;
    },
  },
  tokenize: {
    summary: "Token ids and pieces of a text, with the model's tokenizer.",
    usage: 'cachet tokenize --model M (--text T | --text-file F) [--special] [--add-special] [--json]\n  Token ids and pieces; --special parses special-token text, --add-special adds BOS/EOS.',
    options: { model: { type: 'string', short: 'm' }, text: { type: 'string' }, 'text-file': { type: 'string' }, special: { type: 'boolean' }, 'add-special': { type: 'boolean' } },
    async run(v, _pos, io) {
      const model = requireString(v, 'model', 'tokenize');
      const text = textArg(v, 'text', 'text-file', 'tokenize');
      const r = tokenizeWithModel(model, text, { parseSpecial: v.special === true, addSpecial: v['add-special'] === true });
      if (v.json) printJson(io, r);
      else io.out(formatTokens(r));
      return EXIT_OK;
    },
  },
  generate: {
    summary: "Continue a prompt (greedy or sampled), streamed.",
    usage:
      'cachet generate --model M (--prompt T | --prompt-file F) [--n N] [--greedy | --temp T [--top-k K] [--top-p P] [--seed S]]\n' +
      '                [--backend reference|webgpu|onnx|auto] [--ctx N] [--json]\n  Continues a prompt; streams text to stdout.',
    options: { ...ENGINE, ...SAMPLING, prompt: { type: 'string', short: 'p' }, 'prompt-file': { type: 'string' }, stop: { type: 'string', multiple: true } },
    async run(v, _pos, io) {
      const prompt = textArg(v, 'prompt', 'prompt-file', 'generate');
      const sampling = samplingArgs(v);
      return withEngine(v, io, 'generate', async (engine) => {
        const r = await runGenerate(engine, prompt, { n: intArg(v, 'n', 64), sampling, stop: v.stop as string[] | undefined, stream: v.json ? undefined : (t) => process.stdout.write(t) });
        if (v.json) printJson(io, r);
        else io.err('\n' + formatTimings(r));
        return EXIT_OK;
      });
    },
  },
  complete: {
    summary: "Fill-in-the-middle at a line/column of a file, with repository context.",
    usage:
      'cachet complete --model M --file F --line L --col C [--n N] [--max-lines N] [--repo NAME] [--context FILE ...]\n' +
      '                [--backend ...] [--json]\n  Fill-in-the-middle at a 1-based line/column of F (the cursor goes before column C).',
    options: { ...ENGINE, ...SAMPLING, file: { type: 'string', short: 'f' }, line: { type: 'string', short: 'l' }, col: { type: 'string', short: 'c' }, 'max-lines': { type: 'string' }, repo: { type: 'string' }, context: { type: 'string', multiple: true } },
    async run(v, _pos, io) {
      const file = requireString(v, 'file', 'complete');
      const line = intArg(v, 'line', undefined, 'complete');
      const col = intArg(v, 'col', undefined, 'complete');
      const sampling = samplingArgs(v);
      return withEngine(v, io, 'complete', async (engine) => {
        if (!engine.info.fim) throw new CachetError(`${engine.info.path} has no fill-in-the-middle tokens`, 'Use a code model with FIM (Qwen2.5-Coder, DeepSeek-Coder, StarCoder2, CodeLlama), or `cachet generate` for plain continuation.');
        const r = await runComplete(engine, {
          file, line, col, n: intArg(v, 'n', 64), maxLines: v['max-lines'] ? intArg(v, 'max-lines') : undefined,
          repoName: v.repo as string | undefined, contextFiles: v.context as string[] | undefined, sampling,
          stream: v.json ? undefined : (t) => process.stdout.write(t),
        });
        if (v.json) printJson(io, r);
        else io.err('\n' + formatTimings(r) + (r.stopRule ? ` (stop rule: ${r.stopRule})` : ''));
        return EXIT_OK;
      });
    },
  },
  serve: {
    summary: "OpenAI-compatible endpoint on 127.0.0.1 (completions with FIM suffix, chat, models, metrics).",
    usage:
      'cachet serve --model M [--port 8012] [--host 127.0.0.1] [--token T] [--max-body BYTES] [--backend ...]\n' +
      'cachet serve --remote URL [--api-key K] [--remote-model NAME] ...\n' +
      '  OpenAI-compatible endpoint: /v1/completions (suffix = FIM), /v1/chat/completions, /v1/models, /metrics.\n' +
      '  The token may also come from the CACHET_TOKEN environment variable.',
    options: { ...ENGINE, port: { type: 'string' }, host: { type: 'string' }, token: { type: 'string' }, 'max-body': { type: 'string' }, remote: { type: 'string' }, 'api-key': { type: 'string' }, 'remote-model': { type: 'string' } },
    async run(v, _pos, io) {
      const host = (v.host as string | undefined) ?? '127.0.0.1';
      const port = intArg(v, 'port', 8012);
      const token = (v.token as string | undefined) ?? process.env.CACHET_TOKEN;
      const maxBodyBytes = v['max-body'] ? intArg(v, 'max-body') : undefined;
      let engine: Engine | undefined;
      if (!v.remote) engine = await loadEngine(engineChoices(v, 'serve'), io);
      const { server } = await serve({
        engine,
        remote: v.remote ? { baseUrl: v.remote as string, apiKey: v['api-key'] as string | undefined, model: v['remote-model'] as string | undefined } : undefined,
        host, port, token, maxBodyBytes,
      });
      const ready = { url: server.url, port: server.port, model: engine?.info.path ?? v.remote, backend: engine?.backendName ?? 'remote', auth: token !== undefined };
      if (v.json) io.out(JSON.stringify(ready));
      else io.out(`cachet serving ${ready.model} on ${server.url} (${ready.backend}${ready.auth ? ', bearer token required' : ''}); Ctrl+C stops`);
      await new Promise<void>((resolve) => {
        const stop = () => resolve();
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      await server.close();
      await engine?.dispose();
      return EXIT_OK;
    },
  },
  bench: {
    summary: "Prefill and decode timing, cold and warm (prefix cache).",
    usage: 'cachet bench --model M [--prompt-tokens 128,512] [--n 32] [--backend ...] [--json]\n  Prefill and decode timing, cold and warm (prefix cache) runs. Fuller suites: bench/.',
    options: { ...ENGINE, n: { type: 'string', short: 'n' }, 'prompt-tokens': { type: 'string' } },
    async run(v, _pos, io) {
      const lengths = ((v['prompt-tokens'] as string | undefined) ?? '128,512').split(',').map((s) => {
        const x = Number(s);
        if (!Number.isInteger(x) || x < 1) throw new UsageError(`--prompt-tokens wants positive integers, got '${s}'`, 'bench');
        return x;
      });
      return withEngine(v, io, 'bench', async (engine) => {
        const r = await runBench(engine, { promptTokens: lengths, decodeTokens: intArg(v, 'n', 32) });
        if (v.json) printJson(io, r);
        else io.out(formatBench(r));
        return EXIT_OK;
      });
    },
  },
  demo: {
    summary: "FIM and a short generation on the bundled model (models/cachet-tiny*.gguf).",
    usage: 'cachet demo [--model M] [--backend ...] [--json]\n  A FIM completion and a short generation on the bundled model (models/cachet-tiny*.gguf).',
    options: { model: { type: 'string', short: 'm' }, backend: { type: 'string' }, threads: { type: 'string' } },
    async run(v, _pos, io) {
      let model = v.model as string | undefined;
      if (!model) {
        const { found, looked } = findDefaultModel(process.cwd(), typeof __dirname === 'string' ? __dirname : undefined);
        if (!found) {
          throw new CachetError(
            `no default model: nothing matches ${looked.join(' or ')}`,
            'The bundled tiny model is not in this checkout yet. Put a GGUF at models/cachet-tiny.gguf, or run `cachet demo --model path/to/model.gguf` (e.g. a Qwen2.5-Coder GGUF).',
          );
        }
        model = found;
      }
      const engine = await loadEngine({ modelPath: model, backend: parseBackend(v.backend as string | undefined), threads: v.threads ? intArg(v, 'threads') : undefined, quiet: v.json === true }, io);
      try {
        const r = await runDemo(engine, v.json ? () => {} : (l) => io.out(l));
        if (v.json) printJson(io, r);
        return EXIT_OK;
      } finally {
        await engine.dispose();
      }
    },
  },
};

const VERSION = '0.1.0';

function usageText(command?: string): string {
  if (command && COMMANDS[command]) return `usage: ${COMMANDS[command]!.usage}`;
  return [
    `cachet ${VERSION}: local long-context code completion engine`,
    '',
    'usage: cachet <command> [options]   (cachet <command> --help for details)',
    '',
    ...Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`),
    '',
    'Every command takes --json. Exit codes: 0 ok, 1 usage, 2 error (message and hint on stderr), 3 bug.',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Argument helpers

type Values = Record<string, string | boolean | string[] | undefined>;

function requireString(v: Values, key: string, command: string): string {
  const s = v[key];
  if (typeof s !== 'string' || s === '') throw new UsageError(`--${key} is required`, command);
  return s;
}

function textArg(v: Values, inline: string, file: string, command: string): string {
  if (typeof v[inline] === 'string' && typeof v[file] === 'string') throw new UsageError(`give --${inline} or --${file}, not both`, command);
  if (typeof v[inline] === 'string') return v[inline] as string;
  if (typeof v[file] === 'string') {
    try {
      return readFileSync(v[file] as string, 'utf8');
    } catch (err) {
      throw new CachetError(`cannot read ${v[file]}: ${(err as NodeJS.ErrnoException).code ?? err}`, `Check the --${file} path.`);
    }
  }
  throw new UsageError(`--${inline} or --${file} is required`, command);
}

function intArg(v: Values, key: string, fallback?: number, command?: string): number {
  const s = v[key];
  if (s === undefined) {
    if (fallback === undefined) throw new UsageError(`--${key} is required`, command);
    return fallback;
  }
  const n = Number(s);
  if (typeof s !== 'string' || !Number.isInteger(n) || n < 0) throw new UsageError(`--${key} wants a non-negative integer, got '${s}'`, command);
  return n;
}

function numArg(v: Values, key: string): number | undefined {
  const s = v[key];
  if (s === undefined) return undefined;
  const n = Number(s);
  if (typeof s !== 'string' || !Number.isFinite(n)) throw new UsageError(`--${key} wants a number, got '${s}'`);
  return n;
}

function samplingArgs(v: Values): SamplingParams | undefined {
  const temperature = numArg(v, 'temp');
  if (v.greedy && temperature !== undefined && temperature > 0) throw new UsageError('--greedy and --temp > 0 contradict each other');
  if (v.greedy || temperature === undefined || temperature <= 0) return undefined;
  const s: SamplingParams = { temperature };
  const topK = numArg(v, 'top-k');
  const topP = numArg(v, 'top-p');
  const seed = numArg(v, 'seed');
  if (topK !== undefined) s.topK = topK;
  if (topP !== undefined) s.topP = topP;
  if (seed !== undefined) s.seed = seed;
  return s;
}

function engineChoices(v: Values, command: string) {
  return {
    modelPath: requireString(v, 'model', command),
    backend: parseBackend(v.backend as string | undefined),
    contextLength: v.ctx ? intArg(v, 'ctx') : undefined,
    threads: v.threads ? intArg(v, 'threads') : undefined,
    quiet: v.json === true,
  };
}

async function withEngine(v: Values, io: Io, command: string, body: (engine: Engine) => Promise<number>): Promise<number> {
  const engine = await loadEngine(engineChoices(v, command), io);
  try {
    return await body(engine);
  } finally {
    await engine.dispose();
  }
}

// ---------------------------------------------------------------------------------------------

export async function main(argv: string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  const json = rest.includes('--json');
  if (name === undefined) {
    io.err(usageText());
    return EXIT_USAGE;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    io.out(usageText(rest[0]));
    return EXIT_OK;
  }
  if (name === '--version' || name === '-v') {
    io.out(VERSION);
    return EXIT_OK;
  }
  const command = COMMANDS[name];
  if (!command) {
    io.err(`cachet: unknown command '${name}'\n\n${usageText()}`);
    return EXIT_USAGE;
  }
  try {
    let parsed;
    try {
      parsed = parseArgs({ args: rest, options: { ...COMMON, ...command.options }, allowPositionals: command.positionals ?? false, strict: true });
    } catch (err) {
      throw new UsageError((err as Error).message.replace(/\. To specify a positional.*$/s, ''), name);
    }
    if (parsed.values.help) {
      io.out(usageText(name));
      return EXIT_OK;
    }
    return await command.run(parsed.values as Values, parsed.positionals, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`cachet ${name}: ${err.message}\n${usageText(err.command ?? name)}`);
      return EXIT_USAGE;
    }
    return reportError(io, err, json);
  }
}

// Run when executed (the bundle's entry), not when imported by tests.
const isEntry = typeof require !== 'undefined' && typeof module !== 'undefined' && require.main === module;
if (isEntry) {
  main(process.argv.slice(2)).then(
    (code) => {
      // serve resolves only on a signal; everything else exits when done (backends may hold handles).
      process.exitCode = code;
      setImmediate(() => process.exit(code));
    },
    (err) => {
      process.exitCode = reportError(processIo, err, process.argv.includes('--json'));
    },
  );
}
