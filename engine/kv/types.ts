// What engine/kv needs from a backend: only the slot-level storage operations. Tests use a fake
// in-memory implementation; the runtime passes a real Backend (which satisfies this).

import type { Backend } from '../backend/types';

export type KvSlotBackend = Pick<Backend, 'copySlots' | 'rotateKeys' | 'readSlots' | 'writeSlots'>;

/** A backend that can also run the model (needed to encode chunks and recompute tokens). */
export type KvComputeBackend = KvSlotBackend & Pick<Backend, 'forward' | 'config' | 'supportsRows'>;
