"""Collect permissively licensed JS/TS sources from node_modules into a tar.xz for training.

Only packages whose package.json licence is MIT, ISC, Apache-2.0, BSD-2/3-Clause or 0BSD;
minified files (long average line) and exact duplicates are skipped. Writes the archive and a
JSON list of packages with their licences.
usage: python3 collect_js.py NODE_MODULES OUT.tar.xz OUT-packages.json [MAX_MB]
"""
import hashlib, io, json, os, sys, tarfile

OK = {'MIT', 'ISC', 'Apache-2.0', 'BSD-2-Clause', 'BSD-3-Clause', '0BSD', '(MIT OR Apache-2.0)', 'MIT OR Apache-2.0'}
EXT = ('.js', '.mjs', '.cjs', '.ts', '.mts', '.cts', '.tsx', '.jsx')


def packages(root):
    for name in sorted(os.listdir(root)):
        p = os.path.join(root, name)
        if name.startswith('@'):
            for sub in sorted(os.listdir(p)):
                yield f'{name}/{sub}', os.path.join(p, sub)
        elif not name.startswith('.'):
            yield name, p


def main(root, out, out_json, max_mb=120):
    seen, kept, total = set(), [], 0
    tar = tarfile.open(out, 'w:xz', preset=6)
    for name, path in packages(root):
        try:
            pj = json.load(open(os.path.join(path, 'package.json')))
        except Exception:
            continue
        lic = pj.get('license')
        if isinstance(lic, dict):
            lic = lic.get('type')
        if lic not in OK:
            continue
        nbytes = 0
        for dp, dn, fn in os.walk(path):
            dn[:] = [d for d in dn if d != 'node_modules']
            for f in fn:
                if not f.endswith(EXT) or '.min.' in f:
                    continue
                fp = os.path.join(dp, f)
                if os.path.getsize(fp) > 12 << 20:
                    continue
                b = open(fp, 'rb').read()
                lines = b.count(b'\n') + 1
                if len(b) / lines > 200 or len(b) < 200:
                    continue
                h = hashlib.sha1(b).digest()
                if h in seen:
                    continue
                seen.add(h)
                ti = tarfile.TarInfo(f'{name}/{os.path.relpath(fp, path)}')
                ti.size = len(b)
                tar.addfile(ti, io.BytesIO(b))
                nbytes += len(b)
        if nbytes:
            kept.append({'package': name, 'version': pj.get('version'), 'license': lic, 'bytes': nbytes})
            total += nbytes
        if total > max_mb << 20:
            break
    tar.close()
    json.dump(kept, open(out_json, 'w'), indent=1)
    print(f'{len(kept)} packages, {total / 1e6:.1f} MB of source -> {os.path.getsize(out) / 1e6:.1f} MB')


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) > 4 else 120)
