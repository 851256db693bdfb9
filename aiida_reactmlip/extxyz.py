"""Extended XYZ text of labelled frames, exact both ways (pure: numpy + ASE, no AiiDA).

The writer keeps every float exactly (shortest round-trip ``repr``), unlike ASE's writer which rounds to
8 decimals; its files are still plain extxyz that ``ase.io.read(path, index=':', format='extxyz')`` reads,
with labels as calculator results.  The reader checks the layout line by line before ASE parses the file,
so a malformed file is refused with its 1-based line number.  Units as in :mod:`aiida_reactmlip.frames`:
Angstrom, eV, eV/Angstrom, eV/Angstrom^3.
"""

from __future__ import annotations

import io
import json
import os
from typing import Any, TextIO

import numpy as np
from ase import Atoms
from ase.data import atomic_numbers, chemical_symbols

__all__ = (
    'ExtxyzFormatError',
    'file_name',
    'format_float',
    'info_token',
    'python_scalar',
    'read_extxyz_images',
    'write_extxyz',
)


class ExtxyzFormatError(ValueError):
    """A malformed extended XYZ file; the message names the file and the 1-based line number."""


def python_scalar(value: Any) -> Any:
    """Return ``value`` as a python str/int/float/bool, or ``None`` if it is not such a scalar."""
    if isinstance(value, np.generic) and not isinstance(value, (np.str_, np.bytes_)):
        value = value.item()
    elif isinstance(value, np.str_):
        value = str(value)
    if isinstance(value, (bool, int, float, str)):
        return value
    return None


def format_float(value: float) -> str:
    """Shortest string that parses back to exactly the same float."""
    return repr(float(value))


def info_token(key: str, value: Any) -> str:
    """Encode an info value so that ASE's extxyz parser reads back exactly ``value`` (same type)."""
    from ase.io.extxyz import key_val_str_to_dict

    def decodes(token: str) -> bool:
        try:
            back = python_scalar(key_val_str_to_dict(f'{key}={token}').get(key))
        except Exception:
            return False
        return type(back) is type(value) and back == value

    if isinstance(value, bool):
        candidates = ['T' if value else 'F']
    elif isinstance(value, (int, float)):
        candidates = [format_float(value) if isinstance(value, float) else str(value)]
    else:
        candidates = []
        if value and not any(c in value for c in ' \t"\'{}[]\\='):
            candidates.append(value)
        if '"' not in value and '\\' not in value:
            candidates.append(f'"{value}"')
    # fallback understood by ASE: a quoted '_JSON <json>' value
    json_text = '_JSON ' + json.dumps(value)
    candidates.append('"' + json_text.replace('\\', '\\\\').replace('"', '\\"') + '"')
    for token in candidates:
        if decodes(token):
            return token
    raise ValueError(
        f'info value {value!r} for key {key!r} cannot be written to extxyz so that it reads back unchanged'
    )


def _frame_text(frames, i: int, has_e: bool, has_f: bool, has_s: bool) -> str:
    sl = frames.atoms_slice(i)
    cell = frames.cells[i]
    pbc = frames.pbc[i]
    header = []
    if np.any(cell) or pbc.any():
        header.append('Lattice="' + ' '.join(format_float(x) for x in cell.reshape(-1).tolist()) + '"')
    header.append('Properties=species:S:1:pos:R:3' + (':forces:R:3' if has_f else ''))
    if has_e:
        header.append(f'energy={format_float(frames.energies[i])}')
    if has_s:
        xx, yy, zz, yz, xz, xy = frames.stress[i].tolist()
        full = [xx, xy, xz, xy, yy, yz, xz, yz, zz]  # symmetric 3x3, column-major == row-major
        header.append('stress="' + ' '.join(format_float(x) for x in full) + '"')
    header.append('pbc="' + ' '.join('T' if p else 'F' for p in pbc.tolist()) + '"')
    for key, value in frames.info[i].items():
        header.append(f'{key}={info_token(key, value)}')
    lines = [str(int(frames.n_atoms[i])), ' '.join(header)]
    symbols = [chemical_symbols[z] for z in frames.numbers[sl].tolist()]
    pos = frames.positions[sl].tolist()
    if has_f:
        frc = frames.forces[sl].tolist()
        for s, p, f in zip(symbols, pos, frc):
            lines.append(' '.join([s, *(format_float(x) for x in p), *(format_float(x) for x in f)]))
    else:
        for s, p in zip(symbols, pos):
            lines.append(' '.join([s, *(format_float(x) for x in p)]))
    return '\n'.join(lines) + '\n'


def write_extxyz(frames, path_or_fileobj: str | os.PathLike | TextIO) -> None:
    """Write ``frames`` (:class:`aiida_reactmlip.frames.Frames`) as extended XYZ with every float exact (shortest round-trip repr).

    Per frame: ``Lattice`` (omitted for a zero cell without periodicity), ``Properties``
    (``forces`` column only if the frame has forces), ``energy`` eV and ``stress`` eV/Angstrom^3
    (full symmetric 3x3, as ASE expects) only where present, ``pbc``, then the ``info`` entries.
    The whole text is built before anything is written (no half-written file on error).
    """
    frames.validate()
    has_e, has_f, has_s = frames.has_energy, frames.has_forces, frames.has_stress
    text = ''.join(_frame_text(frames, i, has_e[i], has_f[i], has_s[i]) for i in range(len(frames)))
    if hasattr(path_or_fileobj, 'write'):
        path_or_fileobj.write(text)
    else:
        with open(path_or_fileobj, 'w', encoding='utf-8', newline='\n') as handle:
            handle.write(text)


_COLUMN_KINDS = {'R': 'real', 'I': 'integer', 'L': 'logical', 'S': 'string'}


def _check_layout(text: str, name: str) -> None:
    """Validate the frame layout of extxyz ``text``; raise ExtxyzFormatError naming ``name`` and the line."""
    from ase.io.extxyz import key_val_str_to_dict

    lines = text.splitlines()

    def fail(lineno: int, msg: str) -> None:
        raise ExtxyzFormatError(f'{name}: line {lineno}: {msg}')

    n_lines = len(lines)
    k = 0  # 0-based index of the current line
    frame = 0
    while k < n_lines:
        line = lines[k]
        if not line.strip():
            rest = next((j for j in range(k + 1, n_lines) if lines[j].strip()), None)
            if rest is not None:
                fail(k + 1, f'blank line between frames (more content follows at line {rest + 1}); '
                     'extxyz readers stop at a blank line')
            break
        start = k + 1
        try:
            natoms = int(line.strip())
        except ValueError:
            fail(
                start,
                f'bad atom count line for frame {frame}: expected a positive integer, got {line.strip()!r}',
            )
        if natoms < 1:
            fail(start, f'bad atom count line for frame {frame}: atom count must be positive, got {natoms}')
        if k + 1 >= n_lines:
            fail(start + 1, f'file ends before the comment line of frame {frame} (count at line {start})')
        comment = lines[k + 1]
        try:
            kv = key_val_str_to_dict(comment.strip()) if comment.strip() else {}
        except Exception as exc:
            fail(start + 1, f'cannot parse the comment line of frame {frame}: {exc}')
        props = kv.get('Properties', 'species:S:1:pos:R:3')
        fields = str(props).split(':')
        if len(fields) % 3:
            fail(start + 1, f'bad Properties {props!r}: expected NAME:TYPE:NCOLS triplets')
        columns: list[tuple[str, str]] = []
        for pname, ptype, pcols in zip(fields[::3], fields[1::3], fields[2::3]):
            if ptype not in _COLUMN_KINDS or not pcols.isdigit() or int(pcols) < 1:
                fail(start + 1, f'bad Properties entry {pname}:{ptype}:{pcols}')
            columns.extend((pname, ptype) for _ in range(int(pcols)))
        names = [c[0] for c in columns]
        if not ({'species', 'Z'} & set(names)) or 'pos' not in names:
            fail(start + 1, f'Properties {props!r} must include species (or Z) and pos')
        described = ' '.join(f'{p}:{t}:{c}' for p, t, c in zip(fields[::3], fields[1::3], fields[2::3]))
        for a in range(natoms):
            j = k + 2 + a
            if j >= n_lines:
                fail(j + 1, f'too few atom lines: frame {frame} (atom count {natoms} at line {start}) '
                     f'ends after {a} atom lines')
            tokens = lines[j].split()
            if not tokens:
                fail(j + 1, f'too few atom lines: blank line where atom {a + 1} of {natoms} of frame {frame} '
                     f'(atom count at line {start}) was expected')
            if len(tokens) != len(columns):
                fail(
                    j + 1,
                    f'wrong number of columns: expected {len(columns)} ({described}), found {len(tokens)}'
                    f' (frame {frame} declares {natoms} atoms at line {start})',
                )
            for c, (token, (pname, ptype)) in enumerate(zip(tokens, columns), start=1):
                if ptype == 'R':
                    try:
                        float(token)
                    except ValueError:
                        fail(j + 1, f'non-numeric value {token!r} in column {c} ({pname}, real)')
                elif ptype == 'I':
                    try:
                        int(token)
                    except ValueError:
                        fail(j + 1, f'non-integer value {token!r} in column {c} ({pname}, integer)')
                elif ptype == 'L' and token not in ('T', 'F', 'True', 'False'):
                    fail(j + 1, f'non-logical value {token!r} in column {c} ({pname}, logical)')
                elif pname == 'species' and token.capitalize() not in atomic_numbers:
                    fail(j + 1, f'unknown element {token!r} in column {c} (species)')
                elif pname == 'Z' and ptype == 'I' and not 1 <= int(token) < len(chemical_symbols):
                    fail(j + 1, f'invalid atomic number {token!r} in column {c} (Z)')
        k += 2 + natoms
        frame += 1


def read_extxyz_images(path_or_fileobj: str | os.PathLike | TextIO) -> list[Atoms]:
    """Read an extended XYZ file into ASE Atoms (labels as calculator results).

    The layout is checked first; a malformed file raises :class:`ExtxyzFormatError` naming the file
    and the 1-based line number. Parsing is then done by ``ase.io.read``. An empty file gives ``[]``.
    """
    import ase.io

    name = file_name(path_or_fileobj)
    if hasattr(path_or_fileobj, 'read'):
        text = path_or_fileobj.read()
        if isinstance(text, bytes):
            text = text.decode('utf-8')
    else:
        with open(name, encoding='utf-8') as handle:
            text = handle.read()
    _check_layout(text, name)
    if not text.strip():
        return []
    try:
        return ase.io.read(io.StringIO(text), index=':', format='extxyz')
    except Exception as exc:
        raise ExtxyzFormatError(f'{name}: ASE could not read the file: {exc}') from exc


def file_name(path_or_fileobj) -> str:
    """The name of a path or of an open file (``<stream>`` when it has none), for messages."""
    if hasattr(path_or_fileobj, 'read'):
        return str(getattr(path_or_fileobj, 'name', '<stream>'))
    return os.fspath(path_or_fileobj)
