// The optional local OpenAI-compatible endpoint (`cachet.server.enabled`): runs the bundled CLI
// (`dist/cli.js serve`) as a child process so HTTP serving never shares the extension host's
// thread. Off by default; bound to 127.0.0.1 only.

import { spawn, type ChildProcess } from 'node:child_process';

export interface ServerOptions {
  cliPath: string;
  port: number;
  modelPath: string;
  backend: string;
  threads: number;
  contextLength: number;
}

export class LocalServer {
  private child: ChildProcess | undefined;

  constructor(private log: (line: string) => void) {}

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null;
  }

  start(o: ServerOptions): void {
    this.stop();
    const args = [o.cliPath, 'serve', '--model', o.modelPath, '--port', String(o.port), '--host', '127.0.0.1', '--backend', o.backend, '--ctx', String(o.contextLength)];
    if (o.threads > 0) args.push('--threads', String(o.threads));
    this.log(`starting endpoint: ${args.join(' ')}`);
    // Inside VS Code process.execPath is Electron; ELECTRON_RUN_AS_NODE makes it plain Node.
    const child = spawn(process.execPath, args, { env: { ...process.env, ELECTRON_RUN_AS_NODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (d: Buffer) => this.log(`[serve] ${d.toString().trimEnd()}`));
    child.stderr?.on('data', (d: Buffer) => this.log(`[serve] ${d.toString().trimEnd()}`));
    child.on('exit', (code, signal) => {
      this.log(`endpoint exited (${signal ?? code})`);
      if (this.child === child) this.child = undefined;
    });
    child.on('error', (err) => this.log(`endpoint failed to start: ${err.message}`));
    this.child = child;
  }

  stop(): void {
    const c = this.child;
    this.child = undefined;
    if (c && c.exitCode === null) c.kill();
  }
}
