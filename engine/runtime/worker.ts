// worker_threads entry (bundled to dist/worker.js): hosts the Engine off the extension host's
// thread and speaks engine/protocol over postMessage. Says `hello` first; on an uncaught failure
// it reports a fatal error and exits, and the client turns that into errors for in-flight requests.

import { parentPort } from 'node:worker_threads';
import { errorEvent, type EngineEvent } from '../protocol';
import { EngineHost } from './host';

const port = parentPort;
if (!port) throw new Error('engine/runtime/worker.ts must run inside a worker thread');

const send = (event: EngineEvent) => port.postMessage(event);
const host = new EngineHost(send);

port.on('message', (msg: unknown) => {
  void host.handle(msg).then(() => {
    if (host.closed) port.close();
  });
});

const die = (err: unknown) => {
  try {
    send(errorEvent(err, undefined, true));
  } finally {
    process.exit(1);
  }
};
process.on('uncaughtException', die);
process.on('unhandledRejection', die);

host.hello();
