"""Minimal GGUF v3 reader/writer and Q8_0 quantizer (numpy only).

Used by the training scripts, which run on the device machine where the
TypeScript engine is not available. Layout follows ggml's gguf.c:
header, key/values, tensor infos, padding to `general.alignment`, data.
"""
import struct
import numpy as np

# GGUF value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_SCALAR = {U8: '<B', I8: '<b', U16: '<H', I16: '<h', U32: '<I', I32: '<i',
           F32: '<f', BOOL: '<?', U64: '<Q', I64: '<q', F64: '<d'}
_NP = {U8: np.uint8, I8: np.int8, U16: np.uint16, I16: np.int16, U32: np.uint32,
       I32: np.int32, F32: np.float32, U64: np.uint64, I64: np.int64, F64: np.float64}

# ggml tensor types used here
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8
ALIGN = 32


class Reader:
    def __init__(self, data: bytes):
        self.b = data
        self.p = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.b, self.p)[0]
        self.p += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take('<Q')
        s = self.b[self.p:self.p + n].decode('utf-8', errors='surrogateescape')
        self.p += n
        return s

    def value(self, t):
        if t == STRING:
            return self.string()
        if t == ARRAY:
            at = self.take('<I')
            n = self.take('<Q')
            if at in _NP:
                arr = np.frombuffer(self.b, dtype=_NP[at], count=n, offset=self.p)
                self.p += arr.nbytes
                return (at, arr.tolist())
            return (at, [self.value(at) for _ in range(n)])
        return self.take(_SCALAR[t])


def read_gguf(path):
    """Returns (metadata dict key -> (type, value), tensor infos list)."""
    data = open(path, 'rb').read()
    r = Reader(data)
    if data[:4] != b'GGUF':
        raise ValueError(f'{path}: not a GGUF file (bad magic)')
    r.p = 4
    version = r.take('<I')
    n_tensors = r.take('<Q')
    n_kv = r.take('<Q')
    meta = {}
    for _ in range(n_kv):
        k = r.string()
        t = r.take('<I')
        meta[k] = (t, r.value(t))
    tensors = []
    for _ in range(n_tensors):
        name = r.string()
        nd = r.take('<I')
        dims = [r.take('<Q') for _ in range(nd)]
        tt = r.take('<I')
        off = r.take('<Q')
        tensors.append((name, dims, tt, off))
    return version, meta, tensors


def quantize_q8_0(x: np.ndarray) -> bytes:
    """ggml quantize_row_q8_0_ref: per 32 values, d = amax/127 (f16), q = round(x/d)."""
    x = np.ascontiguousarray(x, dtype=np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0.0).astype(np.float32)
    v = x * inv[:, None]
    q = (np.sign(v) * np.floor(np.abs(v) + 0.5)).astype(np.int8)  # roundf: half away from zero
    out = np.empty(x.shape[0], dtype=[('d', '<f2'), ('qs', 'i1', 32)])
    out['d'] = d.astype(np.float16)
    out['qs'] = q
    return out.tobytes()


def dequantize_q8_0(b: bytes, n: int) -> np.ndarray:
    blk = np.frombuffer(b, dtype=[('d', '<f2'), ('qs', 'i1', 32)], count=n // 32)
    return (blk['qs'].astype(np.float32) * blk['d'].astype(np.float32)[:, None]).reshape(-1)


class Writer:
    def __init__(self):
        self.kv = []       # (key, type, value[, array type])
        self.tensors = []  # (name, dims, ggml type, bytes)

    def add(self, key, t, value, array_type=None):
        self.kv.append((key, t, value, array_type))

    def tensor(self, name, arr: np.ndarray, ggml_type):
        """arr is row-major [rows, cols] (torch layout); GGUF dims are reversed."""
        dims = list(reversed(arr.shape))
        if ggml_type == GGML_F32:
            data = np.ascontiguousarray(arr, dtype=np.float32).tobytes()
        elif ggml_type == GGML_F16:
            data = np.ascontiguousarray(arr, dtype=np.float16).tobytes()
        elif ggml_type == GGML_Q8_0:
            assert arr.shape[-1] % 32 == 0, name
            data = quantize_q8_0(arr)
        else:
            raise ValueError(ggml_type)
        self.tensors.append((name, dims, ggml_type, data))

    @staticmethod
    def _str(s):
        b = s.encode('utf-8', errors='surrogateescape')
        return struct.pack('<Q', len(b)) + b

    def _val(self, t, v, at):
        if t == STRING:
            return self._str(v)
        if t == ARRAY:
            out = [struct.pack('<IQ', at, len(v))]
            if at == STRING:
                out += [self._str(s) for s in v]
            else:
                out.append(np.asarray(v, dtype=_NP[at]).tobytes())
            return b''.join(out)
        return struct.pack(_SCALAR[t], v)

    def to_bytes(self):
        parts = [b'GGUF', struct.pack('<IQQ', 3, len(self.tensors), len(self.kv))]
        for k, t, v, at in self.kv:
            parts += [self._str(k), struct.pack('<I', t), self._val(t, v, at)]
        off = 0
        offsets = []
        for name, dims, tt, data in self.tensors:
            offsets.append(off)
            parts += [self._str(name), struct.pack('<I', len(dims)),
                      b''.join(struct.pack('<Q', d) for d in dims), struct.pack('<IQ', tt, off)]
            off += len(data)
            off += (-off) % ALIGN
        head = b''.join(parts)
        head += b'\0' * ((-len(head)) % ALIGN)
        body = []
        for (name, dims, tt, data), o in zip(self.tensors, offsets):
            body.append(data)
            body.append(b'\0' * ((-len(data)) % ALIGN))
        return head + b''.join(body)
