// The bundled `cachet` CLI, spawned as users run it, against a generated random-weight model.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyStopRules, splitTypedIndent } from '../../engine/context';
import { openGguf } from '../../engine/gguf';
import { configFromGguf } from '../../engine/model';
import { Engine } from '../../engine/runtime';
import { Tokenizer } from '../../engine/tokenizer';
import { makeTestModel } from '../helpers/make-test-model';
import { bundleEntry } from '../helpers/bundle';

let dir: string;
let cli: string;
let model: string;
let q8model: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cachet-cli-'));
  cli = join(dir, 'dist', 'cli.js');
  await bundleEntry('engine/cli/main.ts', cli, '#!/usr/bin/env node');
  model = makeTestModel({ arch: 'qwen2', layers: 2, dims: 64, heads: 4, kvHeads: 2, ff: 128, seed: 3 });
  q8model = makeTestModel({ arch: 'llama', layers: 1, dims: 64, heads: 2, kvHeads: 2, ff: 128, quant: 'Q8_0', seed: 4 });
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function run(args: string[], cwd = dir) {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function runJson(args: string[]) {
  const r = run([...args, '--json']);
  if (r.code !== 0) throw new Error(`exit ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

describe('cachet CLI', () => {
  it('info --json: config, quant mix, tokenizer, FIM, no problems', () => {
    const r = runJson(['info', model]);
    const gguf = openGguf(model);
    const config = configFromGguf(gguf);
    expect(r.config).toEqual(config);
    expect(r.architecture).toBe('qwen2');
    expect(r.contextLength).toBe(config.contextLength);
    expect(r.tensorCount).toBe(gguf.tensors.length);
    expect(r.weightBytes).toBe(gguf.tensors.reduce((n, t) => n + t.byteLength, 0));
    expect(r.quantMix).toEqual([{ type: 'F32', tensors: gguf.tensors.length, params: r.params, bytes: r.weightBytes }]);
    expect(r.tokenizer.vocabSize).toBe(config.vocabSize);
    expect(r.fim).toMatchObject({ supported: true, family: 'qwen', repoLevel: false });
    expect(r.problems).toEqual([]);
    gguf.close();
  });

  it('info --json: a Q8_0 llama model reports its quant mix (2-D weights Q8_0, norms F32)', () => {
    const r = runJson(['info', q8model]);
    expect(r.architecture).toBe('llama');
    expect(r.dominantType).toBe('Q8_0');
    expect(r.quantMix.map((q: { type: string }) => q.type).sort()).toEqual(['F32', 'Q8_0']);
  });

  it('tokenize --json ids equal the engine tokenizer', () => {
    const text = 'def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n';
    const r = runJson(['tokenize', '--model', model, '--text', text]);
    const tok = Tokenizer.fromGguf(openGguf(model));
    expect(r.tokenIds).toEqual(tok.encode(text));
    expect(r.count).toBe(r.tokenIds.length);
    expect(r.pieces.join('')).toBe(text);
    const file = join(dir, 'in.txt');
    writeFileSync(file, text);
    expect(runJson(['tokenize', '--model', model, '--text-file', file]).tokenIds).toEqual(r.tokenIds);
  });

  it('generate --greedy --json is deterministic and equals the Engine API', async () => {
    const args = ['generate', '--model', model, '--prompt', 'int main(void) {', '--n', '12', '--greedy', '--backend', 'reference'];
    const a = runJson(args);
    const b = runJson(args);
    expect(a.tokenIds).toHaveLength(12);
    expect(b.tokenIds).toEqual(a.tokenIds);
    expect(a.backend).toBe('reference');
    expect(a.cache.promptTokens).toBe(a.promptTokenIds.length);
    const engine = await Engine.load({ modelPath: model, backend: 'reference' });
    try {
      const ids = engine.tokenizer.encode('int main(void) {', { addSpecial: true });
      expect(a.promptTokenIds).toEqual(ids);
      const r = await engine.generate({ prompt: { kind: 'tokens', tokenIds: ids }, maxTokens: 12 });
      expect(a.tokenIds).toEqual(r.tokenIds);
      expect(a.text).toBe(r.text);
    } finally {
      await engine.dispose();
    }
  });

  it('complete --json: FIM at line/col; the stop rules cut the engine\'s own completion', async () => {
    const file = join(dir, 'sum.py');
    const prefix = 'def total(xs):\n    s = 0\n    ';
    const suffix = '\n    return s\n';
    writeFileSync(file, prefix + suffix);
    const r = runJson(['complete', '--model', model, '--file', file, '--line', '3', '--col', '5', '--n', '24', '--backend', 'reference']);
    const engine = await Engine.load({ modelPath: model, backend: 'reference' });
    try {
      // The cursor sits after indentation only: the prompt ends at the line start and the typed
      // indentation is stripped from the output.
      const healed = splitTypedIndent(prefix);
      expect(healed.indent).toBe('    ');
      const full = await engine.complete({ fim: { prefix: healed.prefix, suffix, filePath: 'sum.py' }, maxTokens: 24 });
      // The CLI may stop early (stop rules cancel decoding): its raw output is a prefix of the full one.
      expect(full.text.startsWith(r.rawText)).toBe(true);
      expect(r.text).toBe(applyStopRules(r.rawText, { prefix, suffix, stopAtBlockEnd: true, typedIndent: '    ' }).text);
      expect(r.tokenIds).toEqual(full.tokenIds.slice(0, r.tokenIds.length));
    } finally {
      await engine.dispose();
    }
  });

  it('complete --context: picks the similar file\'s chunks and puts them in the prompt', () => {
    const file = join(dir, 'main.py');
    writeFileSync(file, 'from geometry import area_of_circle\n\nr = 2\nprint(area_of_circle(\n');
    writeFileSync(join(dir, 'geometry.py'), 'import math\n\ndef area_of_circle(radius):\n    return math.pi * radius ** 2\n');
    writeFileSync(join(dir, 'colors.py'), 'RED = (255, 0, 0)\nGREEN = (0, 255, 0)\n');
    const base = ['complete', '--model', model, '--file', 'main.py', '--line', '4', '--col', '20', '--n', '4', '--backend', 'reference'];
    const without = runJson(base);
    const withCtx = runJson([...base, '--context', 'geometry.py', '--context', 'colors.py']);
    expect(without.context).toEqual([]);
    expect(withCtx.context.map((c: { path: string }) => c.path)).toEqual(['geometry.py']);
    expect(withCtx.context[0]).toMatchObject({ startLine: 1, endLine: 4 });
    // The byte vocabulary (one token per byte) has no <|file_sep|>: the chunk goes in as a commented snippet.
    const added = '# path: geometry.py\nimport math\n\ndef area_of_circle(radius):\n    return math.pi * radius ** 2\n'.length;
    expect(withCtx.cache.promptTokens - without.cache.promptTokens).toBe(added);
  });

  it('bench --json: cold and warm rows per prompt length; the warm run reuses the prefix cache', () => {
    const r = runJson(['bench', '--model', model, '--prompt-tokens', '40,80', '--n', '4', '--backend', 'reference']);
    expect(r.rows.map((x: { promptTokens: number; run: string }) => `${x.promptTokens}/${x.run}`)).toEqual(['40/cold', '40/warm', '80/cold', '80/warm']);
    for (const row of r.rows) expect(row.decodeTokens).toBe(4);
    expect(r.rows[0].cachedTokens).toBe(0);
    expect(r.rows[1].cachedTokens).toBeGreaterThan(0);
  });

  it('bad model file -> exit 2 with message and hint', () => {
    const bad = join(dir, 'bad.gguf');
    writeFileSync(bad, 'definitely not a gguf file');
    for (const args of [['info', bad], ['generate', '--model', bad, '--prompt', 'x']]) {
      const r = run(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^error: .*bad\.gguf: not a GGUF file/m);
      expect(r.stderr).toMatch(/^hint: Choose a \.gguf model file/m);
    }
    const j = run(['generate', '--model', join(dir, 'missing.gguf'), '--prompt', 'x', '--json']);
    expect(j.code).toBe(2);
    expect(JSON.parse(j.stderr).error.hint).toMatch(/--model/);
  });

  it('unknown command or flag -> exit 1 with usage', () => {
    const a = run(['frobnicate']);
    expect(a.code).toBe(1);
    expect(a.stderr).toMatch(/unknown command 'frobnicate'/);
    expect(a.stderr).toMatch(/usage: cachet <command>/);
    const b = run(['tokenize', '--model', model, '--text', 'x', '--nope']);
    expect(b.code).toBe(1);
    expect(b.stderr).toMatch(/Unknown option '--nope'/);
    expect(b.stderr).toMatch(/usage: cachet tokenize/);
    expect(run(['generate', '--model', model]).code).toBe(1);
    const help = run(['--help']);
    expect(help.code).toBe(0);
    for (const c of ['info', 'tokenize', 'generate', 'complete', 'serve', 'bench', 'demo']) expect(help.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(run([]).code).toBe(1);
  });

  it('generate --temp --seed: reproducible per seed and equal to the Engine API with the same sampler', async () => {
    const args = (seed: string) => ['generate', '--model', model, '--prompt', 'x = [', '--n', '16', '--temp', '1.5', '--top-k', '40', '--seed', seed, '--backend', 'reference'];
    const a = runJson(args('7'));
    expect(runJson(args('7')).tokenIds).toEqual(a.tokenIds);
    const engine = await Engine.load({ modelPath: model, backend: 'reference' });
    try {
      const ids = engine.tokenizer.encode('x = [', { addSpecial: true });
      const r = await engine.generate({ prompt: { kind: 'tokens', tokenIds: ids }, maxTokens: 16, sampling: { temperature: 1.5, topK: 40, seed: 7 } });
      expect(a.tokenIds).toEqual(r.tokenIds);
      const greedy = await engine.generate({ prompt: { kind: 'tokens', tokenIds: ids }, maxTokens: 16 });
      expect(a.tokenIds).not.toEqual(greedy.tokenIds); // sampling really happened
    } finally {
      await engine.dispose();
    }
    expect(run(['generate', '--model', model, '--prompt', 'x', '--greedy', '--temp', '0.5']).code).toBe(1);
  });

  it('demo: no default model -> exit 2 with a hint, never fake output', () => {
    const cwd = join(dir, 'empty');
    mkdirSync(cwd, { recursive: true });
    const r = run(['demo'], cwd);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/no default model: nothing matches .*models\/cachet-tiny\*\.gguf/);
    expect(r.stderr).toMatch(/hint: .*--model/);
  });

  it('demo finds models/cachet-tiny*.gguf under the working directory', () => {
    const cwd = join(dir, 'proj');
    mkdirSync(join(cwd, 'models'), { recursive: true });
    copyFileSync(model, join(cwd, 'models', 'cachet-tiny.test.gguf'));
    const r = run(['demo', '--backend', 'reference', '--json'], cwd);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).model).toBe(join(cwd, 'models', 'cachet-tiny.test.gguf'));
  });

  it('demo --model runs FIM (cold then warm: the prefix cache is reused) and a generation', () => {
    const r = runJson(['demo', '--model', model, '--backend', 'reference']);
    expect(r.fim.cold.cachedTokens).toBe(0);
    expect(r.fim.warm.cachedTokens).toBeGreaterThan(0);
    expect(r.fim.warm.promptTokens).toBe(r.fim.cold.promptTokens);
    expect(r.generation.tokenIds.length).toBeGreaterThan(0);
  });

  it('serve: OpenAI endpoint over the engine; FIM through /v1/completions with suffix', async () => {
    const child = spawn(process.execPath, [cli, 'serve', '--model', model, '--port', '0', '--backend', 'reference', '--token', 't0k', '--json'], { cwd: dir });
    try {
      const ready = await new Promise<{ url: string }>((resolve, reject) => {
        let buf = '';
        const timer = setTimeout(() => reject(new Error('serve did not start within 30 s')), 30_000);
        child.stdout.on('data', (d) => {
          buf += d;
          const nl = buf.indexOf('\n');
          if (nl >= 0) {
            clearTimeout(timer);
            resolve(JSON.parse(buf.slice(0, nl)));
          }
        });
        child.on('exit', (code) => reject(new Error(`serve exited ${code}`)));
      });
      const auth = { authorization: 'Bearer t0k', 'content-type': 'application/json' };
      expect((await fetch(ready.url + '/v1/models')).status).toBe(401);
      const res = await fetch(ready.url + '/v1/completions', { method: 'POST', headers: auth, body: JSON.stringify({ prompt: 'def f(x):\n    return ', suffix: '\n', max_tokens: 8, temperature: 0 }) });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { choices: { text: string }[]; usage: { completion_tokens: number } };
      const engine = await Engine.load({ modelPath: model, backend: 'reference' });
      try {
        const direct = await engine.complete({ fim: { prefix: 'def f(x):\n    return ', suffix: '\n' }, maxTokens: 8 });
        expect(body.choices[0]!.text).toBe(direct.text);
        expect(body.usage.completion_tokens).toBe(direct.timings.generatedTokens);
      } finally {
        await engine.dispose();
      }
      const metrics = await (await fetch(ready.url + '/metrics', { headers: auth })).text();
      expect(metrics).toMatch(/cachet_tokens_total\{kind="generated"\} \d+/);
    } finally {
      child.kill('SIGTERM');
    }
  });
});
