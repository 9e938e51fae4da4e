"""Build a Hugging Face tokenizer.json equal to llama.cpp's deepseek-coder tokenizer.

Reads vocab, token types and merges from a GGUF (tokenizer.ggml.*) and writes a byte-level
BPE tokenizer with the pre-tokenizer regexes llama.cpp uses for `tokenizer.ggml.pre =
deepseek-coder` (llama-vocab.cpp: "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+",
"[一-龥ࠀ-一가-퟿]+", "\\p{N}"). Control tokens (type 3) and user-defined tokens (type 4)
become added tokens, as llama.cpp matches them before BPE.

usage: python3 build_tokenizer.py VOCAB.gguf OUT/tokenizer.json
"""
import json
import sys
from gguf_io import read_gguf


def build(gguf_path):
    _, meta, _ = read_gguf(gguf_path)
    tokens = meta['tokenizer.ggml.tokens'][1][1]
    types = meta['tokenizer.ggml.token_type'][1][1]
    merges = meta['tokenizer.ggml.merges'][1][1]
    assert meta['tokenizer.ggml.pre'][1] == 'deepseek-coder', meta['tokenizer.ggml.pre']
    vocab = {t: i for i, t in enumerate(tokens) if types[i] == 1}
    added = [{'id': i, 'content': t, 'single_word': False, 'lstrip': False, 'rstrip': False,
              'normalized': False, 'special': types[i] == 3}
             for i, t in enumerate(tokens) if types[i] in (3, 4)]
    split = lambda rx: {'type': 'Split', 'pattern': {'Regex': rx}, 'behavior': 'Isolated', 'invert': False}
    return {
        'version': '1.0', 'truncation': None, 'padding': None,
        'added_tokens': added,
        'normalizer': None,
        'pre_tokenizer': {'type': 'Sequence', 'pretokenizers': [
            split('[\r\n]'),
            split('\\s?\\p{L}+'),
            split('\\s?\\p{P}+'),
            split('[一-龥ࠀ-一가-퟿]+'),
            {'type': 'Digits', 'individual_digits': True},
            {'type': 'ByteLevel', 'add_prefix_space': False, 'trim_offsets': True, 'use_regex': False},
        ]},
        'post_processor': None,
        'decoder': {'type': 'ByteLevel', 'add_prefix_space': True, 'trim_offsets': True, 'use_regex': True},
        'model': {'type': 'BPE', 'dropout': None, 'unk_token': None, 'continuing_subword_prefix': None,
                  'end_of_word_suffix': None, 'fuse_unk': False, 'byte_fallback': False,
                  'ignore_merges': False, 'vocab': vocab, 'merges': merges},
    }


if __name__ == '__main__':
    tj = build(sys.argv[1])
    with open(sys.argv[2], 'w', encoding='utf-8') as f:
        json.dump(tj, f, ensure_ascii=False, separators=(',', ':'))
    print(f'{sys.argv[2]}: {len(tj["model"]["vocab"])} BPE tokens, {len(tj["added_tokens"])} added, '
          f'{len(tj["model"]["merges"])} merges')
