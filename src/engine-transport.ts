// How EngineLink reaches the engine: a worker thread running dist/worker.js, speaking
// engine/protocol messages. Kept to one small interface so the link does not care how.

import { Worker } from 'node:worker_threads';
import { PROTOCOL_VERSION, isEngineEvent, type EngineEvent, type EngineRequest } from '../engine/protocol';

export interface EngineTransport {
  post(req: EngineRequest): void;
  terminate(): Promise<void>;
}

/** Start the worker and resolve once it said hello with a compatible protocol version. */
export function openTransport(
  workerPath: string,
  onEvent: (ev: EngineEvent) => void,
  onDeath: (err: Error) => void,
): Promise<EngineTransport> {
  return new Promise((resolve, reject) => {
    let hello = false;
    let ended = false;
    const worker = new Worker(workerPath, { stdout: false, stderr: false });
    const transport: EngineTransport = {
      post: (req) => worker.postMessage(req),
      terminate: async () => {
        ended = true;
        await worker.terminate();
      },
    };
    const timer = setTimeout(() => {
      if (!hello) {
        ended = true;
        void worker.terminate();
        reject(new Error(`engine worker ${workerPath} did not start within 30 s`));
      }
    }, 30_000);
    worker.on('message', (msg: unknown) => {
      if (!isEngineEvent(msg)) return;
      if (msg.type === 'hello') {
        clearTimeout(timer);
        if (Math.floor(msg.protocolVersion) !== PROTOCOL_VERSION) {
          ended = true;
          void worker.terminate();
          reject(new Error(`engine speaks protocol ${msg.protocolVersion}, the extension ${PROTOCOL_VERSION}: reinstall the extension`));
          return;
        }
        hello = true;
        resolve(transport);
        return;
      }
      onEvent(msg);
    });
    worker.on('error', (err) => {
      clearTimeout(timer);
      if (!hello) reject(err);
      else if (!ended) onDeath(err);
      ended = true;
    });
    worker.on('exit', (code) => {
      clearTimeout(timer);
      if (!hello && !ended) reject(new Error(`engine worker exited with code ${code} before starting`));
      else if (!ended) onDeath(new Error(`engine worker exited with code ${code}`));
      ended = true;
    });
  });
}
