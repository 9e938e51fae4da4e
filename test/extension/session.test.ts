import { describe, expect, it } from 'vitest';
import type { FimInput, FinishReason } from '../../engine/protocol';
import { CompletionSession, type CancelToken, type CompletionBackend, type CompletionQuery } from '../../src/completion/session';

/** A backend whose streams the test drives by hand; records starts and cancels. */
class ScriptedBackend implements CompletionBackend {
  starts: { input: FimInput; stop?: string[]; cancelled: boolean; text: (t: string) => void; done: (r?: FinishReason) => void; fail: (e: Error) => void }[] = [];
  start(input: FimInput, opts: { maxTokens: number; stop?: string[] }, sink: Parameters<CompletionBackend['start']>[2]) {
    const s = { input, stop: opts.stop, cancelled: false, text: sink.onText, done: (r: FinishReason = 'eog') => sink.onDone(r), fail: sink.onError };
    this.starts.push(s);
    return { cancel: () => { s.cancelled = true; } };
  }
  get last() { return this.starts[this.starts.length - 1]; }
}

class Token implements CancelToken {
  isCancellationRequested = false;
  private ls: (() => void)[] = [];
  onCancellationRequested(l: () => void) { this.ls.push(l); return { dispose: () => { this.ls = this.ls.filter((x) => x !== l); } }; }
  cancel() { this.isCancellationRequested = true; for (const l of [...this.ls]) l(); }
}

const doc = 'file:///w/a.py';
function query(prefix: string, suffix = '\n'): CompletionQuery {
  const lineStart = prefix.lastIndexOf('\n') + 1;
  const lineEnd = suffix.indexOf('\n');
  const lineSuffix = lineEnd === -1 ? suffix : suffix.slice(0, lineEnd);
  return {
    doc, offset: prefix.length, prefix, suffix,
    fim: { prefix, suffix, filePath: '/w/a.py', languageId: 'python' },
    post: { linePrefix: prefix.slice(lineStart), lineSuffix, suffix, maxLines: 20 },
  };
}
const tick = () => new Promise((r) => setTimeout(r, 0));

describe('CompletionSession', () => {
  it('answers with the first line as soon as it is ready, then the full text, and caches it', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: true });
    const q = query('def f(x):\n    ');
    const answer = s.complete(q, new Token());
    await tick();
    expect(be.starts).toHaveLength(1);
    expect(be.last.input.prefix).toBe(q.prefix);
    be.last.text('y = x');
    be.last.text(' * 2\n    return');
    const a = await answer;
    expect(a?.text).toBe('y = x * 2');
    expect(a?.source).toBe('engine');
    be.last.text(' y\n');
    be.last.done('eog');
    expect(await a!.full).toBe('y = x * 2\n    return y');
    // The same cursor again: served from the cache, no new engine request.
    const again = await s.complete(q, new Token());
    expect(again).toMatchObject({ text: 'y = x * 2\n    return y', source: 'cache' });
    expect(be.starts).toHaveLength(1);
  });

  it('joins the in-flight request when the typed text continues it, instead of restarting', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: false });
    const t1 = new Token();
    const first = s.complete(query('x = '), t1);
    await tick();
    be.last.text('compute(');
    t1.cancel(); // the user typed: VS Code cancels the first call
    expect(await first).toBeUndefined();
    const second = s.complete(query('x = com'), new Token());
    await tick();
    expect(be.starts).toHaveLength(1);
    expect(be.last.cancelled).toBe(false);
    be.last.text('1, 2)');
    be.last.done();
    expect(await second).toMatchObject({ text: 'pute(1, 2)', source: 'joined' });
  });

  it('cancels the in-flight request when the typed text contradicts it', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: false });
    const t1 = new Token();
    void s.complete(query('x = '), t1);
    await tick();
    be.last.text('compute(');
    t1.cancel();
    const second = s.complete(query('x = z'), new Token());
    await tick();
    expect(be.starts).toHaveLength(2);
    expect(be.starts[0].cancelled).toBe(true);
    be.last.text('ero');
    be.last.done();
    expect((await second)?.text).toBe('ero');
  });

  it('does not join a request whose stream has not reached the typed text yet', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: false });
    const t1 = new Token();
    void s.complete(query('x = '), t1);
    await tick();
    be.last.text('co'); // the user has typed "com": the stream may still diverge
    t1.cancel();
    const second = s.complete(query('x = com'), new Token());
    await tick();
    expect(be.starts).toHaveLength(2);
    expect(be.starts[0].cancelled).toBe(true);
    expect(be.last.input.prefix).toBe('x = com');
    be.last.text('pute()');
    be.last.done();
    expect((await second)?.text).toBe('pute()');
  });

  it('cancels an orphaned request after the grace period', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: false, orphanGraceMs: 5 });
    const t = new Token();
    void s.complete(query('x = '), t);
    await tick();
    t.cancel();
    expect(be.last.cancelled).toBe(false);
    await new Promise((r) => setTimeout(r, 20));
    expect(be.last.cancelled).toBe(true);
    expect(s.inFlight).toBe(false);
  });

  it('debounces: a cancelled query never reaches the engine', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 30, maxTokens: 64, streamFirstLine: false });
    const t = new Token();
    const a = s.complete(query('x = '), t);
    t.cancel();
    expect(await a).toBeUndefined();
    expect(be.starts).toHaveLength(0);
  });

  it('stops generation once a stop rule fires and asks the engine to stop at newline mid-line', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: false });
    const a = s.complete(query('print(', ')\nnext()\n'), new Token());
    await tick();
    expect(be.last.stop).toEqual(['\n']);
    be.last.text('value)');
    be.last.text('\nmore');
    expect(be.last.cancelled).toBe(true);
    expect((await a)?.text).toBe('value');
  });

  it('rejects with the engine error', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: false });
    const a = s.complete(query('x = '), new Token());
    await tick();
    be.last.fail(new Error('model not loaded'));
    await expect(a).rejects.toThrow('model not loaded');
  });

  it('answers from a streaming request\'s text so far when the typed text continues it, and follows it to the end', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: true });
    const events: string[] = [];
    s.onEvent((e) => events.push(e.kind));
    const q = query('def f(x):\n    ');
    const t1 = new Token();
    const first = s.complete(q, t1);
    await tick();
    be.last.text('y = x * 2\n    z = y\n    ret');
    expect((await first)?.text).toBe('y = x * 2\n    z = y');
    t1.cancel(); // the user types: VS Code cancels the shown call
    // Typed "y = x * 2\n    z" while the request still streams: answered at once from its text so far.
    const typed = s.complete(query('def f(x):\n    y = x * 2\n    z'), new Token());
    const a = await typed;
    expect(a).toMatchObject({ text: ' = y', source: 'cache' });
    expect(events).toContain('cache-hit');
    expect(be.starts).toHaveLength(1);
    expect(be.last.cancelled).toBe(false);
    // Its `full` follows the request, from the new cursor.
    be.last.text('urn z\n');
    be.last.done();
    expect(await a!.full).toBe(' = y\n    return z');
  });

  it('a streaming request in use again is not dropped as an orphan', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: true, orphanGraceMs: 5 });
    const t1 = new Token();
    const first = s.complete(query('x = '), t1);
    await tick();
    t1.cancel(); // nothing shown yet: the request becomes an orphan with a 5 ms grace
    expect(await first).toBeUndefined();
    be.last.text('1\ny = 2\n');
    // The next keystroke continues its text so far: served from it, and the request is kept.
    expect(await s.complete(query('x = 1\ny'), new Token())).toMatchObject({ text: ' = 2', source: 'cache' });
    await new Promise((r) => setTimeout(r, 20));
    expect(be.last.cancelled).toBe(false);
    expect(s.inFlight).toBe(true);
  });

  it('shows a cancelled request\'s complete lines at once and asks for the rest again', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: true });
    const q = query('def f(x):\n    ');
    void s.complete(q, new Token());
    await tick();
    be.last.text('y = x * 2\n    ret');
    // The user types something else: the request is cancelled midway.
    void s.complete(query('def f(x):\n    q'), new Token());
    await tick();
    expect(be.starts[0].cancelled).toBe(true);
    // Back at the first cursor: its complete line shows at once, and a new request fetches the rest.
    const back = await s.complete(q, new Token());
    expect(back).toMatchObject({ text: 'y = x * 2', source: 'cache' });
    await tick();
    expect(be.starts).toHaveLength(3);
    expect(be.last.input.prefix).toBe(q.prefix);
    be.last.text('y = x * 2\n    return y\n');
    be.last.done();
    expect(await back!.full).toBe('y = x * 2\n    return y');
    // Now the whole completion is cached.
    expect(await s.complete(q, new Token())).toMatchObject({ text: 'y = x * 2\n    return y', source: 'cache' });
  });

  it('the next query cancels the refill wait of a cancelled request\'s partial answer', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 20, maxTokens: 64, streamFirstLine: true });
    const q = query('def f(x):\n    ');
    void s.complete(q, new Token());
    await new Promise((r) => setTimeout(r, 30));
    be.last.text('y = x * 2\n');
    s.cancelPending();
    const back = await s.complete(q, new Token());
    expect(back?.text).toBe('y = x * 2');
    // Typing through the shown text right away: served from the same entry, the refill is dropped.
    const on = await s.complete(query('def f(x):\n    y'), new Token());
    expect(on?.text).toBe(' = x * 2');
    expect(await back!.full).toBe('');
    expect(be.starts).toHaveLength(1);
  });

  it('with streamFirstLine off, partial text is neither shown nor served from the cache', async () => {
    const be = new ScriptedBackend();
    const s = new CompletionSession(be, { debounceMs: 0, maxTokens: 64, streamFirstLine: false });
    const q = query('def f(x):\n    ');
    void s.complete(q, new Token());
    await tick();
    be.last.text('y = x * 2\n    ret');
    s.cancelPending();
    const again = s.complete(q, new Token());
    await tick();
    expect(be.starts).toHaveLength(2);
    be.last.text('y = 1');
    be.last.done();
    expect((await again)?.text).toBe('y = 1');
  });
});
