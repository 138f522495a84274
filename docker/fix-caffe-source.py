#!/usr/bin/env python3
"""Fix a Caffe tree's code for today's compilers and Python libraries, by pattern.

    python3 fix-caffe-source.py TREE

The rewrites that need to see a call's arguments or a module's names (a sed cannot):
each fires only on the old form, prints one line per file it changes, and leaves a tree
that needs nothing more. fix-caffe-source.sh runs it after its own (sed) fixes.

- C++: std::max/std::min given a Dtype and a bare double literal (caffe-fast-rcnn's
  `std::max(margin - sqrt(x), 0.0)`): the literal becomes Dtype(literal). pycaffe's
  binding gains `_caffe.caffebox_mode()` (Caffe's mode: pycaffe has only setters), and
  `import_array1()` where a void module init calls `import_array()` (before rc3).
- Makefile.config: USE_CUDNN := 0 for a tree whose cuDNN code predates cuDNN 5 (cuDNN 8
  and 9 removed that API; Caffe's own CUDA convolution then runs).
- Makefile (trees older than BVLC's of 2016): PYTHON_LIBRARIES assigned with := becomes
  ?= (the config's Python 3 libraries win); OpenCV's imgcodecs linked where the Makefile
  predates OpenCV 3.
- Python (pycaffe, its scripts, tools/extra): scikit-image's removed `as_grey=` keyword;
  numpy's removed `tostring()`/`fromstring()`; float crop indices (classifier.py before
  2016); a name a module calls but never imports
  where only one import can be meant (`resize`, `zoom`); Python 2 print statements and
  `except E, e:` in scripts that Python 3 cannot compile; dict.iteritems() and friends
  and xrange(), which compile but fail when called.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Callable
from pathlib import Path

CPP_SUFFIXES = (".cpp", ".hpp", ".cu", ".cuh", ".h")
CPP_FOLDERS = ("src", "include", "tools")
PY_FOLDERS = ("python", "tools", "scripts")
# Names pycaffe's modules call that have exactly one meaning there.
KNOWN_IMPORTS = {
    "resize": "from skimage.transform import resize",
    "zoom": "from scipy.ndimage import zoom",
}
_DOUBLE = re.compile(r"^\s*[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?\s*$")
_ANY_FLOAT = re.compile(r"(?<![\w.])(\d+\.\d*|\.\d+)([eE][-+]?\d+)?(?![\w.])")


def matching_paren(text: str, start: int) -> int:
    """Index of the ')' closing the '(' at `start`, or -1."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    return -1


def split_args(inner: str) -> list[str]:
    """Top-level comma-separated arguments of a call."""
    args, depth, current = [], 0, ""
    for ch in inner:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            args.append(current)
            current = ""
        else:
            current += ch
    args.append(current)
    return args


def fix_mixed_max(text: str) -> str:
    """std::max(DTYPE_EXPR, 0.0) -> std::max(DTYPE_EXPR, Dtype(0.0)) in Dtype code."""
    if "Dtype" not in text:
        return text
    out, pos = [], 0
    for match in re.finditer(r"std::(max|min)\s*\(", text):
        if match.start() < pos:
            continue
        open_at = match.end() - 1
        close_at = matching_paren(text, open_at)
        if close_at < 0:
            continue
        args = split_args(text[open_at + 1 : close_at])
        literal = [i for i, a in enumerate(args) if _DOUBLE.match(a)]
        others = [a for i, a in enumerate(args) if i not in literal]
        # Both sides double (b*0.1 + 0.2 against 1.0) compile as they are: leave them.
        if len(args) != 2 or len(literal) != 1 or any(_ANY_FLOAT.search(a) for a in others):
            continue
        i = literal[0]
        lead = args[i][: len(args[i]) - len(args[i].lstrip())]
        args[i] = f"{lead}Dtype({args[i].strip()})"
        out.append(text[pos : open_at + 1] + ",".join(args) + ")")
        pos = close_at + 1
    out.append(text[pos:])
    return "".join(out)


_MODE_SETTER = "void set_mode_gpu() { Caffe::set_mode(Caffe::GPU); }"
_MODE_DEF = 'bp::def("set_mode_gpu", &set_mode_gpu);'


def add_mode_getter(text: str) -> str:
    """pycaffe can set Caffe's mode but not read it: caffebox_layers.gpu must know whether
    the net runs on the GPU before it touches a blob's GPU pointer (that allocates and
    copies, and aborts on a build without a usable GPU). Adds _caffe.caffebox_mode()."""
    if _MODE_SETTER not in text or _MODE_DEF not in text or "caffebox_mode" in text:
        return text
    text = text.replace(_MODE_SETTER, _MODE_SETTER + "\n// caffebox: the mode for Python layers "
                        "(0 CPU, 1 GPU).\nint caffebox_mode() { return Caffe::mode(); }", 1)
    return text.replace(_MODE_DEF, _MODE_DEF + '\n  bp::def("caffebox_mode", &caffebox_mode);', 1)


def fix_void_import_array(text: str) -> str:
    """numpy's import_array() returns NULL on failure under Python 3, which a void module
    init (BOOST_PYTHON_MODULE) cannot: BVLC's _caffe.cpp before 2015's rc3 does not
    compile. import_array1() is numpy's form that returns nothing (BVLC's own later fix)."""
    if "BOOST_PYTHON_MODULE" not in text:
        return text
    return re.sub(r"(?<![\w])import_array\(\);", "import_array1();", text)


_PARAM_STR_SET = re.compile(r'self_\.attr\("(param_str_?)"\)\s*=\s*(bp::str\([^;]*\));')
_OLD_SETUP_CALL = re.compile(r'^([ \t]*)bp::call_method<bp::object>\(self_, "setup"', re.M)


def fix_param_str_names(text: str) -> str:
    """Python layers read their string as `param_str` (BVLC since rc3) or `param_str_`
    (caffe-fast-rcnn and other forks of 2015): Caffe assigns both names before setup, so
    a layer of either era runs on every tree. Before rc3 Caffe assigned neither (the proto
    field is added by add_param_str_field); there `self_` is a bare PyObject*."""
    if "class PythonLayer" not in text:
        return text
    found = _PARAM_STR_SET.search(text)
    if found:
        other = "param_str_" if found.group(1) == "param_str" else "param_str"
        if f'attr("{other}")' in text:
            return text
        both = f'{found.group(0)}\n    self_.attr("{other}") = {found.group(2)};'
        return text.replace(found.group(0), both, 1)
    call = _OLD_SETUP_CALL.search(text)
    if not call or "param_str" in text:
        return text
    pad = call.group(1)
    value = "bp::str(this->layer_param_.python_param().param_str())"
    added = (f"{pad}bp::object caffebox_self(bp::handle<>(bp::borrowed(self_)));\n"
             f'{pad}caffebox_self.attr("param_str") = {value};\n'
             f'{pad}caffebox_self.attr("param_str_") = {value};\n')  # fmt: skip
    return text[: call.start()] + added + text[call.start() :]


def add_param_str_field(proto: str) -> str:
    """PythonParameter without `param_str` (BVLC before rc3, forks branched from it):
    the field BVLC added, so a prototxt that sets it parses there too."""
    message = re.search(r"message PythonParameter \{(.*?)\n\}", proto, flags=re.S)
    if not message or "param_str" in message.group(1):
        return proto
    taken = {int(n) for n in re.findall(r"=\s*(\d+)", message.group(1))}
    number = 3 if 3 not in taken else max(taken) + 1
    field = (f"\n  // caffebox: the layer's string, as BVLC since rc3.\n"
             f"  optional string param_str = {number} [default = ''];")  # fmt: skip
    return proto[: message.end(1)] + field + proto[message.end(1) :]


def adapt_old_cudnn(config: str, cudnn_hpp: str) -> str:
    """A tree whose cuDNN code predates cuDNN 5 (its pooling descriptor has no NaN option,
    e.g. caffe-fast-rcnn's of 2015) cannot compile against cuDNN 8 or 9, which removed
    that API: build it with Caffe's own CUDA convolution instead (USE_CUDNN := 0)."""
    uses = re.search(r"^\s*USE_CUDNN\s*:?=\s*1\b", config, flags=re.M)
    if not uses or not cudnn_hpp or "CUDNN_PROPAGATE_NAN" in cudnn_hpp:
        return config
    line = uses.group(0)  # ends in the 1
    return config.replace(line, line[:-1] + "0", 1)


def fix_fromstring(text: str) -> str:
    """np.fromstring(ARGS) -> np.frombuffer(ARGS).copy(): numpy 2.3 removed the binary
    mode of fromstring; frombuffer's array is read-only, the copy is what fromstring gave."""
    out, pos = [], 0
    for match in re.finditer(r"\b(np|numpy)\.fromstring\s*\(", text):
        if match.start() < pos:
            continue
        close_at = matching_paren(text, match.end() - 1)
        if close_at < 0:
            continue
        args = text[match.end() : close_at]
        out.append(f"{text[pos : match.start()]}{match.group(1)}.frombuffer({args}).copy()")
        pos = close_at + 1
    out.append(text[pos:])
    return "".join(out)


def _bound_names(tree: ast.AST) -> set[str]:
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
    return bound


def fix_implicit_relative_imports(text: str, siblings: set[str]) -> str:
    """`import io` in a package's __init__.py that means the package's own io.py (Python 2's
    implicit relative import; BVLC rc2's python/caffe/__init__.py): Python 3 imports the
    standard library's io instead and caffe.io.load_image is missing. `from . import io`."""
    return re.sub(r"^([ \t]*)import (\w+)[ \t]*$",
                  lambda m: f"{m.group(1)}from . import {m.group(2)}"
                  if m.group(2) in siblings else m.group(0), text, flags=re.M)  # fmt: skip


def fix_missing_imports(text: str) -> tuple[str, list[str]]:
    """Add the one import a module needs for a known name it calls but never binds."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text, []
    called = {
        n.func.id for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }  # fmt: skip
    missing = sorted((called & KNOWN_IMPORTS.keys()) - _bound_names(tree))
    if not missing:
        return text, []
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    lines = text.splitlines(keepends=True)
    at = imports[-1].end_lineno if imports else 0
    added = "".join(KNOWN_IMPORTS[name] + "\n" for name in missing)
    return "".join(lines[:at]) + added + "".join(lines[at:]), missing


def fix_float_crops(text: str) -> str:
    """`crop = np.tile(center, ...) + np.concatenate([-dims / 2.0, dims / 2.0])` used as
    slice indices (pycaffe's classifier.py before 2016): numpy 1.12+ refuses float
    indices, so caffe.Classifier(...).predict failed. Adds `crop = crop.astype(int)`."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    lines = text.splitlines(keepends=True)
    inserts = []
    blocks = [getattr(node, field, None) for node in ast.walk(tree)
              for field in ("body", "orelse", "finalbody")]  # fmt: skip
    for body in blocks:
        if not isinstance(body, list):
            continue
        for i, stmt in enumerate(body):
            if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1
                    and isinstance(stmt.targets[0], ast.Name)):  # fmt: skip
                continue
            source = ast.get_source_segment(text, stmt.value) or ""
            if "np.tile(" not in source or "/ 2.0" not in source:
                continue
            name = stmt.targets[0].id
            after = ast.get_source_segment(text, body[i + 1]) if i + 1 < len(body) else ""
            if f"{name}.astype(int)" in (after or ""):
                continue
            indent = lines[stmt.lineno - 1][: stmt.col_offset]
            inserts.append((stmt.end_lineno, f"{indent}{name} = {name}.astype(int)\n"))
    for at, line in sorted(inserts, reverse=True):
        lines.insert(at, line)
    return "".join(lines)


def fix_py2_idioms(text: str) -> str:
    """Python 2's dict.iteritems()/itervalues()/iterkeys() (and .next() on them) and xrange:
    they compile under Python 3 and fail when called (pycaffe's Net.forward_all in trees
    before 2016 took `kwargs.itervalues().next()`)."""
    text = re.sub(r"([\w.\]\[\)]+)\.(iter)?values\(\)\.next\(\)", r"next(iter(\1.values()))", text)
    text = re.sub(r"\.iteritems\(\)", ".items()", text)
    text = re.sub(r"\.itervalues\(\)", ".values()", text)
    text = re.sub(r"\.iterkeys\(\)", ".keys()", text)
    # Python 2's keys() was a list: blobs.keys()[i] (BVLC rc2's Net.inputs) needs one now.
    text = re.sub(r"(?<![\w.\]\)])([A-Za-z_][\w.]*)\.(keys|values|items)\(\)\[", r"list(\1.\2())[",
                  text)  # fmt: skip
    text = re.sub(r"^([ \t]*)from itertools import ([\w, \t]+)$", _itertools_import, text,
                  flags=re.M)  # fmt: skip
    return re.sub(r"(?<![\w.])xrange\(", "range(", text)


# unittest's aliases that Python 3.12 removed, and the names they stood for (since 3.2).
_UNITTEST_ALIASES = {
    "assertEquals": "assertEqual", "assertNotEquals": "assertNotEqual",
    "assertAlmostEquals": "assertAlmostEqual", "assertNotAlmostEquals": "assertNotAlmostEqual",
    "assert_": "assertTrue", "failUnless": "assertTrue", "failIf": "assertFalse",
    "failUnlessEqual": "assertEqual", "failIfEqual": "assertNotEqual",
    "assertRegexpMatches": "assertRegex", "assertNotRegexpMatches": "assertNotRegex",
    "assertRaisesRegexp": "assertRaisesRegex",
}  # fmt: skip


def fix_unittest_aliases(text: str) -> str:
    """self.assertEquals(...) and the other aliases Python 3.12 removed: Caffe's own
    python/caffe/test suite calls them (AttributeError on Debian 13's Python 3.13)."""
    pattern = r"\bself\.(" + "|".join(sorted(_UNITTEST_ALIASES, key=len, reverse=True)) + r")\("
    return re.sub(pattern, lambda m: f"self.{_UNITTEST_ALIASES[m.group(1)]}(", text)


# Python 2's itertools names and what Python 3 calls them (the builtins are lazy now).
_ITERTOOLS_RENAMED = {"izip_longest": "zip_longest", "izip": "zip", "imap": "map",
                      "ifilter": "filter"}  # fmt: skip


def _itertools_import(match: re.Match[str]) -> str:
    """`from itertools import izip_longest, chain` -> the same names bound to Python 3's
    (zip_longest under its old name; izip/imap/ifilter as the builtins)."""
    indent, names = match.group(1), [n.strip() for n in match.group(2).split(",")]
    if not any(n in _ITERTOOLS_RENAMED for n in names):
        return match.group(0)
    kept = [f"zip_longest as {n}" if n == "izip_longest" else n for n in names
            if n not in _ITERTOOLS_RENAMED or n == "izip_longest"]  # fmt: skip
    lines = [f"{indent}from itertools import {', '.join(kept)}"] if kept else []
    lines += [f"{indent}{n} = {_ITERTOOLS_RENAMED[n]}" for n in names
              if n in _ITERTOOLS_RENAMED and n != "izip_longest"]  # fmt: skip
    return "\n".join(lines)


def fix_range_division(text: str) -> str:
    """`n = a / b` then `range(n)`: Python 2's integer division, a float under Python 3
    that range() refuses (pycaffe's Net._batch before 2016). The `/` becomes `//`."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return text
    lines = text.splitlines(keepends=True)
    for func in [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.Module))]:
        ranged = {
            call.args[0].id for call in ast.walk(func)
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Name)
            and call.func.id == "range" and len(call.args) == 1
            and isinstance(call.args[0], ast.Name)
        }  # fmt: skip
        for node in ast.walk(func):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id in ranged
                    and isinstance(node.value, ast.BinOp) and isinstance(node.value.op, ast.Div)
                    and node.lineno == node.end_lineno):  # fmt: skip
                line = lines[node.lineno - 1]
                lines[node.lineno - 1] = re.sub(r"(?<![/])/(?![/=])", "//", line, count=1)
    return "".join(lines)


def _compiles(text: str) -> bool:
    try:
        compile(text, "<caffe>", "exec")
    except SyntaxError:
        return False
    return True


def fix_python2(text: str) -> str:
    """Python 2 print statements and `except E, e:` in a file Python 3 cannot compile;
    the file as it was if that is not enough."""
    if _compiles(text):
        return text
    fixed = re.sub(r"^([ \t]*)print[ \t]*$", r"\1print()", text, flags=re.M)
    fixed = re.sub(r"^([ \t]*)print(?![ \t]*\()[ \t]+([^>\n].*?)[ \t]*$", r"\1print(\2)",
                   fixed, flags=re.M)  # fmt: skip
    fixed = re.sub(r"^([ \t]*)print[ \t]*>>[ \t]*([^,\n]+),[ \t]*(.+?)[ \t]*$",
                   r"\1print(\3, file=\2)", fixed, flags=re.M)  # fmt: skip
    fixed = re.sub(r"^([ \t]*except[ \t]+[\w.]+)[ \t]*,[ \t]*(\w+)[ \t]*:", r"\1 as \2:", fixed,
                   flags=re.M)  # fmt: skip
    return fixed if _compiles(fixed) else text


def fix_makefile(text: str) -> tuple[str, list[str]]:
    """What a Makefile older than BVLC's of 2016 fixes that Makefile.config cannot:
    Python 2's libraries assigned with := (the config's Python 3 ones then lost), and
    OpenCV linked without imgcodecs (OpenCV 3+ keeps imread there)."""
    said = []
    fixed = re.sub(r"^(PYTHON_LIBRARIES)\s*:=", r"\1 ?=", text, flags=re.M)
    if fixed != text:
        said.append("PYTHON_LIBRARIES ?= (Makefile.config's Python 3 libraries win)")
    if "imgcodecs" not in fixed and re.search(r"^\s*opencv_core\b.*\bopencv_highgui\b", fixed,
                                              flags=re.M):  # fmt: skip
        fixed = re.sub(r"\bopencv_highgui\b", "opencv_highgui opencv_imgcodecs", fixed, count=1)
        said.append("opencv_imgcodecs linked beside opencv_highgui (OpenCV 3+'s imread)")
    return fixed, said


PY_FIXES = [
    ("scikit-image", "as_gray= for the removed as_grey=",
     lambda t: re.sub(r"\bas_grey\s*=", "as_gray=", t)),
    ("numpy 2", "tobytes() for the removed tostring()",
     lambda t: re.sub(r"\.tostring\(\)", ".tobytes()", t)),
    ("numpy 2", "frombuffer(...).copy() for the removed fromstring()", fix_fromstring),
    ("Python 3", "print() and 'except E as e' for Python 2 statements", fix_python2),
    ("numpy", "integer crop indices (numpy 1.12+ refuses float ones)", fix_float_crops),
    ("Python 3", "items()/values()/keys()/range()/zip_longest/list(keys()) for Python 2's "
     "iter*(), xrange(), itertools.izip* and indexed keys()",
     fix_py2_idioms),
    ("Python 3", "// where Python 2's integer division feeds range()", fix_range_division),
    ("Python 3.12", "unittest's assertEqual() and others for the removed aliases",
     fix_unittest_aliases),
]  # fmt: skip


def _files(tree: Path, folders: tuple[str, ...], suffixes: tuple[str, ...]) -> list[Path]:
    found = []
    for folder in folders:
        if (tree / folder).is_dir():
            found += [p for p in sorted((tree / folder).rglob("*"))
                      if p.is_file() and p.name.endswith(suffixes)]  # fmt: skip
    return found


# A fix as fix_tree applies it: the file's text in, the new text and what it did out.
Fix = Callable[[str], "tuple[str, list[str]]"]


def _said(fix: Callable[[str], str], said: str) -> Fix:
    """A text-to-text fix that reports `said` when it changed anything."""

    def apply(text: str) -> tuple[str, list[str]]:
        fixed = fix(text)
        return fixed, ([said] if fixed != text else [])

    return apply


def _rewrite(path: Path, fixes: list[Fix]) -> list[str]:
    """The fixes, in order, on one file if it exists; written once; what they did."""
    if not path.is_file():
        return []
    original = text = path.read_text(errors="surrogateescape")
    said: list[str] = []
    for fix in fixes:
        text, notes = fix(text)
        said += notes
    if text != original:
        path.write_text(text, errors="surrogateescape")
    return said


def _makefile_fix(text: str) -> tuple[str, list[str]]:
    fixed, notes = fix_makefile(text)
    return fixed, [f"caffebox fix (Makefile): {note} in Makefile" for note in notes]


def _python_fixes(path: Path, where: Path) -> list[Fix]:
    """Python 3 fixes of one pycaffe or tools file."""
    fixes = [_said(fix, f"caffebox fix ({kind}): {what} in {where}")
             for kind, what, fix in PY_FIXES]  # fmt: skip
    if path.name == "__init__.py":
        siblings = {p.stem for p in path.parent.glob("*.py")} - {"__init__"}
        fixes.append(_said(lambda t: fix_implicit_relative_imports(t, siblings),
                           "caffebox fix (Python 3): 'from . import' for Python 2's implicit "
                           f"relative imports in {where}"))  # fmt: skip

    def imports(text: str) -> tuple[str, list[str]]:
        fixed, added = fix_missing_imports(text)
        return fixed, [f"caffebox fix (imports): '{KNOWN_IMPORTS[name]}' for the {name}() "
                       f"it calls in {where}" for name in added]  # fmt: skip

    return [*fixes, imports]


def fix_tree(tree: Path) -> list[str]:
    """Apply every fix under `tree`; one line per fix per file changed."""
    said = _rewrite(tree / "Makefile", [_makefile_fix])
    cudnn_hpp = tree / "include/caffe/util/cudnn.hpp"
    if cudnn_hpp.is_file():
        cudnn_code = cudnn_hpp.read_text(errors="surrogateescape")
        said += _rewrite(tree / "Makefile.config", [_said(
            lambda t: adapt_old_cudnn(t, cudnn_code),
            "caffebox adapts (cuDNN): this tree's cuDNN code predates cuDNN 5 (no "
            "CUDNN_PROPAGATE_NAN in include/caffe/util/cudnn.hpp), an API cuDNN 8 and 9 "
            "removed: USE_CUDNN := 0 in Makefile.config, Caffe's own CUDA convolution instead",
        )])  # fmt: skip
    said += _rewrite(tree / "python" / "caffe" / "_caffe.cpp", [
        _said(add_mode_getter, "caffebox fix (pycaffe): _caffe.caffebox_mode() reads Caffe's "
              "mode in python/caffe/_caffe.cpp"),
        _said(fix_void_import_array, "caffebox fix (pycaffe): import_array1() in the void "
              "module init (Python 3) in python/caffe/_caffe.cpp"),
    ])  # fmt: skip
    said += _rewrite(tree / "src" / "caffe" / "proto" / "caffe.proto", [_said(
        add_param_str_field, "caffebox fix (Python layer): PythonParameter gains param_str "
        "(as BVLC since rc3) in src/caffe/proto/caffe.proto",
    )])  # fmt: skip
    for path in _files(tree, ("include",), (".hpp",)):
        said += _rewrite(path, [_said(
            fix_param_str_names, "caffebox fix (Python layer): both param_str and param_str_ "
            f"set before setup in {path.relative_to(tree)}",
        )])  # fmt: skip
    for path in _files(tree, CPP_FOLDERS, CPP_SUFFIXES):
        said += _rewrite(path, [_said(
            fix_mixed_max, "caffebox fix (GCC): Dtype(literal) in mixed std::max/std::min in "
            f"{path.relative_to(tree)}",
        )])  # fmt: skip
    for path in _files(tree, PY_FOLDERS, (".py", ".py.example")):
        said += _rewrite(path, _python_fixes(path, path.relative_to(tree)))
    return said


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: fix-caffe-source.py TREE")
    for line in fix_tree(Path(sys.argv[1])):
        print(line)
