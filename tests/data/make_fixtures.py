#!/usr/bin/env python3
"""Writes the dataset fixtures of tests/io/test_formats.c into tests/data/.

Run from the repository root with a Python that has numpy and torch
(Debian: python3-numpy, python3-torch):

    /usr/bin/python3 tests/data/make_fixtures.py

The output is committed, so CI needs neither. Every good_* file holds the
SAME numbers (12 train and 6 val rows, d1 = 3, d2 = 2, 3 classes), so every
one must read to the same lsmi_dataset_hash. The values are multiples of
1/8 in [-7.5, 7.5], exactly representable in float16 and bfloat16 as well as
in decimal text, which lets the float16/bfloat16 and CSV/JSON files carry
the very same numbers. bad_* files are broken or hostile on purpose; the
test table says which status and message each must produce.
"""
import collections
import io
import json
import os
import pickle
import struct
import zipfile
import zlib

import numpy as np
import torch

OUT = os.path.dirname(os.path.abspath(__file__))

rs = np.random.RandomState(7)
N_TR, N_VA, D1, D2, C = 12, 6, 3, 2, 3
tr_y = np.array([0, 1, 2] * 4, dtype=np.int64)
va_y = np.array([0, 1, 2, 2, 1, 0], dtype=np.int64)
tr_x1 = (rs.randint(-60, 61, size=(N_TR, D1)) / 8.0).astype(np.float32)
tr_x2 = (rs.randint(-60, 61, size=(N_TR, D2)) / 8.0).astype(np.float32)
va_x1 = (rs.randint(-60, 61, size=(N_VA, D1)) / 8.0).astype(np.float32)
va_x2 = (rs.randint(-60, 61, size=(N_VA, D2)) / 8.0).astype(np.float32)
SHORT = dict(train_x1=tr_x1, train_x2=tr_x2, train_y=tr_y,
             val_x1=va_x1, val_x2=va_x2, val_y=va_y)
REF = dict(train_modal_1_features=tr_x1, train_modal_2_features=tr_x2,
           train_targets=tr_y, val_modal_1_features=va_x1,
           val_modal_2_features=va_x2, val_targets=va_y)


def path(name):
    return os.path.join(OUT, name)


def write(name, data):
    with open(path(name), 'wb') as f:
        f.write(data)


def npy_bytes(arr=None, descr=None, shape=None, data=None, fortran=False,
              version=1, header_len=None):
    """An .npy image; the keyword overrides make lying headers."""
    if arr is not None:
        descr = arr.dtype.str if descr is None else descr
        shape = arr.shape if shape is None else shape
        if data is None:
            data = (np.asfortranarray(arr) if fortran else
                    np.ascontiguousarray(arr)).tobytes(order='F' if fortran else 'C')
    h = "{'descr': %r, 'fortran_order': %s, 'shape': %r, }" % (
        descr, 'True' if fortran else 'False', tuple(shape))
    pre = 10 if version == 1 else 12
    total = (pre + len(h) + 1 + 63) // 64 * 64
    h = h + ' ' * (total - pre - len(h) - 1) + '\n'
    hl = len(h) if header_len is None else header_len
    if version == 1:
        head = b'\x93NUMPY\x01\x00' + struct.pack('<H', hl)
    else:
        head = b'\x93NUMPY\x02\x00' + struct.pack('<I', hl)
    return head + h.encode('latin1') + data


def zip_bytes(members, method=zipfile.ZIP_STORED):
    b = io.BytesIO()
    with zipfile.ZipFile(b, 'w', method) as z:
        for name, data in members:
            # A fixed timestamp keeps regenerated fixtures byte-identical.
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            z.writestr(info, data)
    return b.getvalue()


def npz_of(arrays, **kw):
    return zip_bytes([(k + '.npy', npy_bytes(v)) for k, v in arrays.items()], **kw)


def torch_bytes(obj, **kw):
    b = io.BytesIO()
    torch.save(obj, b, **kw)
    return b.getvalue()


def rezip(data, edit):
    """Rewrites a zip, edit(name, bytes) -> bytes or None (drop)."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = []
    for info in src.infolist():
        v = edit(info.filename, src.read(info.filename))
        if v is not None:
            out.append((info.filename, v))
    return zip_bytes(out)


def safetensors_bytes(tensors, header_override=None, pad=True):
    """tensors: name -> (dtype string, shape, raw bytes)."""
    header, blobs, off = {}, [], 0
    for name, (dt, shape, raw) in tensors.items():
        header[name] = {'dtype': dt, 'shape': list(shape),
                        'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header['__metadata__'] = {'format': 'np'}
    if header_override:
        header_override(header)
    h = json.dumps(header).encode()
    if pad:
        h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + b''.join(blobs)


ST_DT = {np.dtype('float32'): 'F32', np.dtype('float64'): 'F64',
         np.dtype('int64'): 'I64', np.dtype('int32'): 'I32',
         np.dtype('float16'): 'F16', np.dtype('uint8'): 'U8'}


def st_of(arrays):
    return safetensors_bytes({k: (ST_DT[v.dtype], v.shape, np.ascontiguousarray(v).tobytes())
                              for k, v in arrays.items()})


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def csv_text(rows_split=True, header=None, crlf=True, extra=None):
    cols = (['id'] + (['split'] if rows_split else []) + ['y'] +
            ['x1_%d' % j for j in range(D1)] + ['x2_%d' % j for j in range(D2)])
    lines = [','.join('"%s"' % c if c == 'y' else c for c in cols) if header is None else header]
    splits = [('train', tr_x1, tr_x2, tr_y), ('val', va_x1, va_x2, va_y)]
    if not rows_split:
        splits = splits[:1]
    k = 0
    for name, x1, x2, y in splits:
        for i in range(len(y)):
            vals = ['"row %d, ""quoted"""' % k] + ([name] if rows_split else []) + [str(int(y[i]))]
            vals += [repr(float(v)) for v in x1[i]] + ['"%r"' % float(v) for v in x2[i]]
            lines.append(','.join(vals))
            k += 1
    if extra:
        lines = extra(lines)
    return (('\r\n' if crlf else '\n').join(lines) + '\n').encode()


def json_obj():
    return {'train': {'x1': tr_x1.tolist(), 'x2': tr_x2.tolist(), 'y': tr_y.tolist()},
            'val': {'x1': va_x1.tolist(), 'x2': va_x2.tolist(), 'y': va_y.tolist()},
            'name': 'fixture'}


def main():
    for f in os.listdir(OUT):
        if f.startswith(('good', 'bad', 'legacy', 'bomb', 'unknown', 'empty', 'user')):
            os.remove(path(f))

    # ---------------- good: the same numbers in every format ----------------
    np.savez(path('good.npz'), **SHORT)
    # Reference key names, float64 features, int32 labels, deflated, and the
    # metadata keys that make_data.py writes (strings and scalars: ignored).
    np.savez_compressed(path('good_deflate.npz'),
                        **{k: (v.astype(np.float64) if v.dtype == np.float32 else v.astype(np.int32))
                           for k, v in REF.items()},
                        kind='gaussian', seed=1, noise=0.5, name=np.array(['a', 'bc']))
    # Fortran order, big endian, float16 and uint8/int16 labels, npy v2.
    write('good_layouts.npz', zip_bytes([
        ('train_x1.npy', npy_bytes(tr_x1.astype('>f8'), fortran=True)),
        ('train_x2.npy', npy_bytes(tr_x2.astype('<f2'), version=2)),
        ('train_y.npy', npy_bytes(tr_y.astype('u1'))),
        ('val_x1.npy', npy_bytes(va_x1.astype('>f4'))),
        ('val_x2.npy', npy_bytes(va_x2.astype('>f2'), fortran=True)),
        ('val_y.npy', npy_bytes(va_y.astype('>i2').reshape(-1, 1))),
    ], zipfile.ZIP_DEFLATED))
    # The single-file bundle: a structured array with x1, x2, y, split.
    split = np.array([0] * N_TR + [1] * N_VA, dtype=np.uint8)
    rec = np.rec.fromarrays([np.concatenate([tr_x1, va_x1]), np.concatenate([tr_x2, va_x2]),
                             np.concatenate([tr_y, va_y]), split],
                            dtype=[('x1', '<f4', (D1,)), ('x2', '<f4', (D2,)),
                                   ('y', '<i8'), ('split', 'u1')])
    mix = np.empty_like(rec)  # interleave the splits so that val rows sit between train rows
    ti, vi = list(range(N_TR)), list(range(N_TR, N_TR + N_VA))
    seq = []
    while ti or vi:
        if ti:
            seq.append(ti.pop(0))
        if ti:
            seq.append(ti.pop(0))
        if vi:
            seq.append(vi.pop(0))
    mix[:] = rec[seq]
    np.save(path('good_bundle.npy'), mix)
    # A padded (aligned) structured dtype with big-endian float64 fields.
    dt = np.dtype([('y', '<i4'), ('x1', '>f8', (D1,)), ('x2', '<f4', (D2,)),
                   ('split', '?')], align=True)
    al = np.zeros(N_TR + N_VA, dt)
    al['x1'] = np.concatenate([tr_x1, va_x1])
    al['x2'] = np.concatenate([tr_x2, va_x2])
    al['y'] = np.concatenate([tr_y, va_y])
    al['split'] = split.astype(bool)
    np.save(path('good_bundle_aligned.npy'), al)

    torch.save({k: t(v) for k, v in SHORT.items()}, path('good.pt'))
    # Views: x1 and x2 are column slices of one tensor (shared storage, a
    # storage offset for x2), val_x1 a transposed view, labels int32.
    both = t(np.concatenate([tr_x1, tr_x2], 1))
    vboth = t(np.concatenate([va_x1, va_x2], 1))
    torch.save(collections.OrderedDict([
        ('train_modal_1_features', both[:, :D1]),
        ('train_modal_2_features', both[:, D1:]),
        ('train_targets', t(tr_y).int()),
        ('val_modal_1_features', t(va_x1.T.copy()).t()),
        ('val_modal_2_features', vboth[:, D1:]),
        ('val_targets', t(va_y).int()),
        ('note', 'ignored'), ('epoch', 3)]), path('good_views.pt'))
    torch.save({'train_x1': t(tr_x1).half(), 'train_x2': t(tr_x2).bfloat16(),
                'train_y': t(tr_y).to(torch.uint8),
                'val_x1': t(va_x1).double(), 'val_x2': t(va_x2).bfloat16(),
                'val_y': t(va_y)}, path('good_half.pt'))
    torch.save({k: torch.nn.Parameter(t(v), requires_grad=False) if v.dtype == np.float32 else t(v)
                for k, v in SHORT.items()}, path('good_param.pt'))

    # A big-endian torch file (what torch.save writes on s390x): the
    # byteorder record says "big" and every storage is byte-swapped.
    widths = {'0': 4, '1': 4, '2': 8, '3': 4, '4': 4, '5': 8}  # SHORT's order
    def swap(n, b):
        key = n.rsplit('/', 1)[-1]
        if '/data/' in n and key in widths:
            return np.frombuffer(b, '<u%d' % widths[key]).astype('>u%d' % widths[key]).tobytes()
        return b
    be = rezip(open(path('good.pt'), 'rb').read(), swap)
    src = zipfile.ZipFile(io.BytesIO(be))
    write('good_bigendian.pt', zip_bytes([(i.filename, src.read(i.filename)) for i in src.infolist()] +
                                         [('good/byteorder', b'big')]))
    write('good.safetensors', st_of(SHORT))
    write('good_f16.safetensors', st_of({k: (v.astype(np.float16) if v.dtype == np.float32
                                             else v.astype(np.int32)) for k, v in REF.items()}))
    write('good.csv', csv_text())
    write('good.json', json.dumps(json_obj()).encode())
    write('good_flat.json', json.dumps({k: v.tolist() for k, v in SHORT.items()},
                                       indent=1).encode())

    # Features of rank 3 are flattened in C order: (12, 3, 1) is (12, 3),
    # and a Fortran-order (6, 1, 2) is (6, 2).
    write('good_3d.npz', zip_bytes(
        [(k + '.npy', npy_bytes(v)) for k, v in SHORT.items() if k not in ('train_x1', 'val_x2')] +
        [('train_x1.npy', npy_bytes(tr_x1.reshape(N_TR, D1, 1))),
         ('val_x2.npy', npy_bytes(va_x2.reshape(N_VA, 1, D2), fortran=True))]))

    # Train-only files: need val_fraction.
    np.savez(path('good_trainonly.npz'), train_x1=tr_x1, train_x2=tr_x2, train_y=tr_y)
    write('good_trainonly.csv', csv_text(rows_split=False, crlf=False))

    # ---------------- user_*: files as researchers save them -------------
    # (doc/formats.md; the test of each says whether it reads, with which
    # options, or is refused with which message)
    X1, X2 = np.concatenate([tr_x1, va_x1]), np.concatenate([tr_x2, va_x2])
    Y = np.concatenate([tr_y, va_y])  # 18 rows, 6 of each class
    torch.save({'x1': t(X1), 'x2': t(X2), 'y': t(Y)}, path('user_xy.pt'))
    np.savez(path('user_positional.npz'), X1, X2, Y)
    np.savez(path('user_named.npz'), feat_a=X1, feat_b=X2, label=Y)
    torch.save([t(X1), t(X2), t(Y)], path('user_list.pt'))
    torch.save((t(X1), t(X2), t(Y)), path('user_tuple.pt'))
    torch.save({'train': {'x1': t(tr_x1), 'x2': t(tr_x2), 'y': t(tr_y)},
                'val': {'x1': t(va_x1), 'x2': t(va_x2), 'y': t(va_y)}},
               path('user_nested.pt'))
    rows = ['label,' + ','.join('img_%d' % j for j in range(D1)) + ',' +
            ','.join('txt_%d' % j for j in range(D2))]
    rows += ['%d,%s,%s' % (Y[i], ','.join(repr(float(v)) for v in X1[i]),
                           ','.join(repr(float(v)) for v in X2[i])) for i in range(len(Y))]
    write('user_prefixed.csv', ('\n'.join(rows) + '\n').encode())
    # Labels of any values, with the file's own val split.
    np.savez(path('user_labels_1based.npz'), **dict(SHORT, train_y=tr_y + 1, val_y=va_y + 1))
    sparse = np.array([3, 7, 42])
    np.savez(path('user_labels_sparse.npz'), **dict(SHORT, train_y=sparse[tr_y], val_y=sparse[va_y]))
    names = np.array(['bird', 'cat', 'dog'])
    np.savez(path('user_labels_str.npz'), **dict(SHORT, train_y=names[tr_y], val_y=names[va_y]))
    torch.save(dict({k: t(v) for k, v in SHORT.items()}, train_y=[str(n) for n in names[tr_y]],
                    val_y=[str(n) for n in names[va_y]]), path('user_labels_str.pt'))
    o = json_obj(); o['train']['y'] = list(names[tr_y]); o['val']['y'] = list(names[va_y])
    write('user_labels_str.json', json.dumps(o).encode())
    rows = ['id,split,y,' + ','.join('x1_%d' % j for j in range(D1)) + ',' +
            ','.join('x2_%d' % j for j in range(D2))]
    for i in range(len(Y)):
        rows.append('s-%03d,%s,%s,%s,%s' % (
            100 + i, 'train' if i < N_TR else 'val', names[Y[i]],
            ','.join(repr(float(v)) for v in X1[i]), ','.join(repr(float(v)) for v in X2[i])))
    write('user_labels_str.csv', ('\n'.join(rows) + '\n').encode())
    # One-hot labels (decoded), and soft ones (refused).
    eye = np.eye(C, dtype=np.float32)
    np.savez(path('user_onehot.npz'), **dict(SHORT, train_y=eye[tr_y], val_y=eye[va_y]))
    torch.save(dict({k: t(v) for k, v in SHORT.items()},
                    train_y=torch.nn.functional.one_hot(t(tr_y), C),
                    val_y=torch.nn.functional.one_hot(t(va_y), C)), path('user_onehot.pt'))
    soft = eye[tr_y] * 0.8 + 0.1
    np.savez(path('user_soft.npz'), **dict(SHORT, train_y=soft))
    # Features of shape (n, 4, 4): flattened in C order; the .pt holds the
    # same numbers as a transposed (non-contiguous) view.
    img_tr = (rs.randint(-60, 61, size=(N_TR, 4, 4)) / 8.0).astype(np.float32)
    img_va = (rs.randint(-60, 61, size=(N_VA, 4, 4)) / 8.0).astype(np.float32)
    np.savez(path('user_feat3d.npz'), **dict(SHORT, train_x1=img_tr, val_x1=img_va))
    torch.save(dict({k: t(v) for k, v in SHORT.items()},
                    train_x1=t(img_tr.transpose(0, 2, 1).copy()).transpose(1, 2),
                    val_x1=t(img_va)), path('user_feat3d.pt'))
    # A plain pickle of NumPy arrays, which lsmi refuses to run.
    write('user_plain.pkl', pickle.dumps({'x1': X1, 'x2': X2, 'y': Y}, protocol=4))
    # Sample ids: integers of the file's own split, strings through a val
    # split lsmi draws, a column lsmi is told to take.
    np.savez(path('user_ids.npz'), **dict(SHORT, train_id=np.arange(1000, 1000 + N_TR),
                                          val_id=np.arange(2000, 2000 + N_VA)))
    np.savez(path('user_ids_str.npz'), x1=X1, x2=X2, y=Y,
             id=np.array(['s-%03d' % (100 + i) for i in range(len(Y))]))
    torch.save({'x1': t(X1), 'x2': t(X2), 'y': t(Y),
                'id': ['s-%03d' % (100 + i) for i in range(len(Y))]}, path('user_ids.pt'))
    rows = ['sample_id,y,' + ','.join('x1_%d' % j for j in range(D1)) + ',' +
            ','.join('x2_%d' % j for j in range(D2))]
    rows += ['"r%d, ""%s"""' % (i, names[Y[i]]) + ',%d,%s,%s' % (
        Y[i], ','.join(repr(float(v)) for v in X1[i]), ','.join(repr(float(v)) for v in X2[i]))
        for i in range(len(Y))]
    write('user_ids.csv', ('\n'.join(rows) + '\n').encode())
    # A value of 1e30 (finite in float32) in a val row: its density is 0,
    # its entropy infinite.
    huge = va_x1.copy(); huge[1, 0] = 1e30
    np.savez(path('user_huge.npz'), **dict(SHORT, val_x1=huge))

    # ---------------- bad: npz ----------------
    good = open(path('good.npz'), 'rb').read()
    write('bad_truncated.npz', good[:len(good) // 2])
    write('bad_member_magic.npz', zip_bytes(
        [(k + '.npy', b'NOTNUMPY' + npy_bytes(v)[8:] if k == 'train_x2' else npy_bytes(v))
         for k, v in SHORT.items()]))
    write('bad_rows.npz', npz_of(dict(SHORT, train_x2=tr_x2[:-1])))
    write('bad_dims.npz', npz_of(dict(SHORT, val_x1=va_x1[:, :2])))
    write('bad_missing.npz', npz_of({k: v for k, v in SHORT.items() if k != 'train_y'}))
    write('bad_val_partial.npz', npz_of({k: v for k, v in SHORT.items() if k != 'val_x2'}))
    nan = tr_x1.copy(); nan[4, 1] = np.nan
    write('bad_nan.npz', npz_of(dict(SHORT, train_x1=nan)))
    inf = va_x2.astype(np.float64); inf[2, 0] = 1e300  # finite in f8, inf in f4
    write('bad_f32_range.npz', npz_of(dict(SHORT, val_x2=inf)))
    neg = tr_y.copy(); neg[5] = -1
    write('bad_label_neg.npz', npz_of(dict(SHORT, train_y=neg)))
    write('bad_label_frac.npz', npz_of(dict(SHORT, val_y=va_y.astype(np.float64) + [0, 0, 0.5, 0, 0, 0])))
    rare = tr_y.copy(); rare[rare == 2] = 1; rare[2] = 2  # class 2: one train row
    write('bad_rare_class.npz', npz_of(dict(SHORT, train_y=rare)))
    write('bad_string_dtype.npz', npz_of(dict(SHORT, train_x2=tr_x2.astype('U8'))))
    write('bad_object.npz', zip_bytes([(k + '.npy', npy_bytes(v, descr='|O') if k == 'val_y' else npy_bytes(v))
                                       for k, v in SHORT.items()]))
    write('bad_shape_overflow.npz', zip_bytes(
        [(k + '.npy', npy_bytes(v, shape=(2 ** 62, 2 ** 62)) if k == 'train_x1' else npy_bytes(v))
         for k, v in SHORT.items()]))
    write('bad_shape_lies.npz', zip_bytes(
        [(k + '.npy', npy_bytes(v, shape=(1000, D1)) if k == 'train_x1' else npy_bytes(v))
         for k, v in SHORT.items()]))
    write('bad_header_len.npz', zip_bytes(
        [(k + '.npy', npy_bytes(v, header_len=60000) if k == 'train_y' else npy_bytes(v))
         for k, v in SHORT.items()]))
    crc = bytearray(good)
    crc[good.index(b'train_x2.npy') + 12 + 200] ^= 0xFF  # a data byte of train_x2
    write('bad_crc.npz', bytes(crc))
    # Zip bomb by ratio: 4 MiB of zeros deflates to about 4 KiB.
    bomb = npy_bytes(np.zeros((1 << 19,), np.float64).reshape(-1, 1).astype(np.float64))
    write('bomb_ratio.npz', zip_bytes([(k + '.npy', bomb if k == 'train_x1' else npy_bytes(v))
                                       for k, v in SHORT.items()], zipfile.ZIP_DEFLATED))
    # Zip bomb by declared size: the directory says train_x1 inflates to
    # 64 GiB (Zip64), more than max_decompressed_bytes.
    z = bytearray(zip_bytes([(k + '.npy', npy_bytes(v)) for k, v in SHORT.items()],
                            zipfile.ZIP_DEFLATED))
    cd = z.index(b'PK\x01\x02')
    assert z[cd + 46:cd + 46 + 12] == b'train_x1.npy'
    nlen, xlen = struct.unpack('<HH', z[cd + 28:cd + 32])
    extra = struct.pack('<HHQ', 1, 8, 64 << 30)
    z[cd + 24:cd + 28] = b'\xff\xff\xff\xff'
    z[cd + 30:cd + 32] = struct.pack('<H', xlen + len(extra))
    z[cd + 46 + nlen + xlen:cd + 46 + nlen + xlen] = extra
    eocd = z.rindex(b'PK\x05\x06')
    cdsize = struct.unpack('<I', z[eocd + 12:eocd + 16])[0]
    z[eocd + 12:eocd + 16] = struct.pack('<I', cdsize + len(extra))
    write('bomb_declared.npz', bytes(z))
    # A member that inflates to more than the directory says.
    z = bytearray(zip_bytes([(k + '.npy', npy_bytes(v)) for k, v in SHORT.items()],
                            zipfile.ZIP_DEFLATED))
    cd = z.index(b'PK\x01\x02')
    usize = struct.unpack('<I', z[cd + 24:cd + 28])[0]
    z[cd + 24:cd + 28] = struct.pack('<I', usize - 16)
    write('bad_inflate_more.npz', bytes(z))
    # A central directory that points outside the file.
    z = bytearray(good)
    eocd = z.rindex(b'PK\x05\x06')
    z[eocd + 16:eocd + 20] = struct.pack('<I', 0x7fffffff)
    write('bad_cd_offset.npz', bytes(z))

    # ---------------- bad: npy ----------------
    gb = open(path('good_bundle.npy'), 'rb').read()
    write('bad_truncated.npy', gb[:len(gb) - 7])
    np.save(path('bad_plain.npy'), np.concatenate([tr_x1, tr_x2], 1))
    np.save(path('bad_bundle_noy.npy'), np.rec.fromarrays(
        [tr_x1, tr_x2], dtype=[('x1', '<f4', (D1,)), ('x2', '<f4', (D2,))]))
    write('bad_header_len.npy', gb[:8] + struct.pack('<H', 65000) + gb[10:])
    write('bad_version.npy', gb[:6] + b'\x09\x00' + gb[8:])
    hl = struct.unpack('<H', gb[8:10])[0]
    broken = b"{'descr': [('x1', '<f4', (3,)), ('x2'"
    write('bad_header_syntax.npy', gb[:10] + broken + b' ' * (hl - len(broken) - 1) + b'\n' + gb[10 + hl:])

    # ---------------- bad: pt ----------------
    gp = open(path('good.pt'), 'rb').read()
    write('bad_truncated.pt', gp[:len(gp) - 100])
    write('legacy.pt', torch_bytes({k: t(v) for k, v in SHORT.items()},
                                   _use_new_zipfile_serialization=False))
    # A hand-written data.pkl whose dict value calls os.system.
    evil = (b'\x80\x02}q\x00X\x08\x00\x00\x00train_x1q\x01cos\nsystem\nq\x02'
            b'X\x02\x00\x00\x00idq\x03\x85q\x04Rq\x05s.')
    write('bad_os_system.pt', zip_bytes([('archive/data.pkl', evil), ('archive/version', b'3\n')]))

    class Evil:
        def __reduce__(self):
            return (os.system, ('true',))
    write('bad_reduce.pt', torch_bytes({'train_x1': Evil()}))
    # A memo get of a slot never put (after a put far beyond it).
    memo = (b'\x80\x02}q\x00(X\x2c\x01\x00\x00' + b'k' * 300 +
            b'q\xc8h\x64u.')
    write('bad_memo.pt', zip_bytes([('archive/data.pkl', memo), ('archive/version', b'3\n')]))
    write('bad_build.pt', zip_bytes([('archive/data.pkl', b'\x80\x02}q\x00X\x01\x00\x00\x00a}b.'),
                                     ('archive/version', b'3\n')]))
    write('bad_no_storage.pt', rezip(gp, lambda n, b: None if n.endswith('/data/1') else b))
    write('bad_short_storage.pt', rezip(gp, lambda n, b: b[:len(b) // 2] if n.endswith('/data/0') else b))
    write('bad_not_tensor.pt', torch_bytes(dict({k: t(v) for k, v in SHORT.items()},
                                                train_x2=[[1.0, 2.0]] * N_TR)))
    write('bad_not_dict.pt', torch_bytes([t(tr_x1), t(tr_x2)]))
    nanp = tr_x2.copy(); nanp[7, 1] = np.inf
    write('bad_nan.pt', torch_bytes({k: t(v) for k, v in dict(SHORT, train_x2=nanp).items()}))
    big = tr_y.copy(); big[3] = 50000
    write('bad_label_big.pt', torch_bytes({k: t(v) for k, v in dict(SHORT, train_y=big).items()}))
    # An expanded view: 36 elements over a storage of one (stride 0).
    write('bad_expanded.pt', torch_bytes(dict({k: t(v) for k, v in SHORT.items()},
                                              train_x1=torch.ones(1).expand(N_TR, D1))))
    # A view that reaches past its storage (sizes edited in the pickle).
    def stretch(n, b):
        if n.endswith('data.pkl'):
            i = b.index(b'train_x1')
            j = b.index(b'K\x0cK\x03\x86', i)  # the size tuple (12, 3)
            return b[:j] + b'K\x0cK\x09\x86' + b[j + 5:]
        return b
    write('bad_view_oob.pt', rezip(gp, stretch))

    # ---------------- bad: safetensors ----------------
    gs = open(path('good.safetensors'), 'rb').read()
    write('bad_truncated.safetensors', gs[:len(gs) - 9])
    write('bad_header_len.safetensors', struct.pack('<Q', len(gs)) + gs[8:])
    write('bad_header_huge.safetensors', struct.pack('<Q', 1 << 60) + gs[8:])
    write('bad_json.safetensors', struct.pack('<Q', 16) + b'{"train_x1": [1,' + gs[24:])
    arr = {k: (ST_DT[v.dtype], v.shape, np.ascontiguousarray(v).tobytes()) for k, v in SHORT.items()}
    def edit(f):
        return lambda h: f(h)
    write('bad_offsets.safetensors', safetensors_bytes(
        arr, edit(lambda h: h['val_y'].__setitem__('data_offsets', [0, 10 ** 9]))))
    write('bad_size.safetensors', safetensors_bytes(
        arr, edit(lambda h: h['train_x1'].__setitem__('shape', [N_TR, D1 + 1]))))
    write('bad_overflow.safetensors', safetensors_bytes(
        arr, edit(lambda h: h['train_x2'].__setitem__('shape', [2 ** 40, 2 ** 40]))))
    write('bad_dtype.safetensors', safetensors_bytes(
        arr, edit(lambda h: h['train_x1'].__setitem__('dtype', 'F8_E4M3'))))
    nans = dict(SHORT); v = va_x1.copy(); v[3, 2] = np.nan; nans['val_x1'] = v
    write('bad_nan.safetensors', st_of(nans))

    # ---------------- bad: csv ----------------
    write('bad_nan.csv', csv_text(extra=lambda L: L[:6] + [L[6].replace(L[6].split(',')[4], 'nan', 1)] + L[7:]))
    write('bad_ragged.csv', csv_text(extra=lambda L: L[:4] + [L[4] + ',9'] + L[5:]))
    write('bad_noy.csv', csv_text(header='id,split,label,x1_0,x1_1,x1_2,x2_0,x2_1'))
    write('bad_quote.csv', csv_text(extra=lambda L: L[:-1] + [L[-1] + ',"unterminated']))
    write('bad_label.csv', b'split,y,x1_0,x2_0\ntrain,0,1,2\ntrain,1.5,1,2\ntrain,1,1,2\n')
    write('bad_split.csv', b'split,y,x1_0,x2_0\ntrain,0,1,2\ntest,1,1,2\nholdout,1,1,2\n')
    write('bad_semicolon.csv', b'split;y;x1_0;x2_0\ntrain;0;1;2\n')
    write('bad_text.csv', b'split,y,x1_0,x2_0\ntrain,0,1,2\ntrain,1,abc,2\n')

    # ---------------- bad: json ----------------
    o = json_obj(); o['train']['x1'][3] = o['train']['x1'][3][:2]
    write('bad_ragged.json', json.dumps(o).encode())
    o = json_obj(); o['val']['x2'][1][0] = 'abc'
    write('bad_string.json', json.dumps(o).encode())
    write('bad_syntax.json', json.dumps(json_obj()).encode()[:-40])
    o = json_obj(); del o['train']['y']
    write('bad_missing.json', json.dumps(o).encode())
    o = json_obj(); o['val']['y'][4] = 3
    write('bad_label.json', json.dumps(o).encode())
    write('bad_nan.json', json.dumps(json_obj()).replace('-', 'NaN, -', 1).encode())

    # ---------------- anything else ----------------
    write('unknown.bin', bytes(range(256)))
    write('empty.csv', b'')

    total = 0
    for f in sorted(os.listdir(OUT)):
        if f.endswith(('.py', '.md')):
            continue
        total += os.path.getsize(path(f))
    print('fixtures written: %d bytes in total' % total)


if __name__ == '__main__':
    main()
