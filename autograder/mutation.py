"""Mutation testing of every question's tests against its reference solution.

    python -m autograder.mutation [NAME ...] [--question Q] [--jobs 2] [--max-per-question N] [--survivors] [--list]

For each question of a master, every solution region of its graded cells (the code between `# BEGIN SOLUTION` and
`# END SOLUTION`, and lines marked `# SOLUTION`) is parsed, and each mutation below is applied to it, one at a time:

- mutmut's operator classes: arithmetic operators swapped (+ -, * /, // /, ** *, @ *), an operand dropped
  (`a * b` -> `a`, `x + f(x)` -> `f(x)`), comparisons swapped (< <=, > >=, == !=, < >, in / not in, is / is not),
  `and` / `or`, a unary operator removed (`~mask` -> `mask`, `-x` -> `x`, `not c` -> `c`), number constants changed
  (n -> n + 1 and n - 1, which covers axis and dim arguments: -1 -> -2, -1 -> 0, 0 -> 1), `True` / `False`, string
  constants changed, a keyword argument removed, an augmented assignment swapped (`+=` -> `-=`) or made plain
  (`x += 1` -> `x = 1`), `return value` -> `return None`, a statement removed (a call such as `copy_` or
  `nn.init.normal_`, an assignment that updates its own variable such as `s = s.masked_fill(...)`, an augmented
  assignment, a `raise`), a condition negated, a slice bound moved to the other side (`s[-n:]` -> `s[:-n]`);
- operators of this course's subject: a call replaced by its first argument (`math.sqrt(d)` -> `d`,
  `self.dropout(x)` -> `x`, `self.norm(x)` -> `x`, `torch.softmax(s, -1)` -> `s`) and a method call by its object
  (`x.masked_fill(m, v)` -> `x`, `.clamp(min=1)`, `.squeeze(-1)`, `.transpose(1, 2)`, `.to(device)` removed),
  `float("-inf")` -> `0.0`, `nn.Dropout(p)` -> `nn.Identity()`, `with torch.no_grad():` removed, `.detach()` added to
  a computed tensor (attention scores, weights, a module's output: they stop learning), and names swapped:
  `tril` / `triu`, `train` / `eval`, `sum` / `mean`, `min` / `max` (also as `clamp`'s keyword), `amax` / `amin`,
  `argmax` / `argmin`, `sin` / `cos`, `zeros` / `ones`, `softmax` / `log_softmax`, `ReLU` / `GELU`; a method's only
  argument removed (`x.squeeze(-1)` -> `x.squeeze()`), a reduction over all axes instead of one (`x.sum(dim=-1)` ->
  `x.sum()`, `torch.sum(x, 1)` -> `torch.sum(x)`), and a cut made before a sort instead of after it
  (`sorted(a, key=k)[:n]` -> `sorted(list(a)[:n], key=k)`, `torch.argsort(s)[:k]` -> `torch.argsort(s[:k])`).

Each mutant is executed in a forked process: the master's graded cells run one by one with the question's cell
mutated (a cell that raises is skipped, as a notebook cell that fails leaves the rest of the notebook to run), then the
question's tests run in-process (autograder.masters), stopping at the first failure. **A mutant is killed only when a
test of its own question fails** (an error in another question's cell does not count, and a mutant cannot break
another question's code: only the question's own solution regions are mutated); a test that runs past the time limit
fails as it would in grading (listed as "timeout"). Tests that read exported files (weights) take no notebook globals
and are not run: they grade training, not code.

Surviving mutants that compute the same thing as the reference are listed, each with one line saying why, in
`autograder/mutation_equivalents.yaml`; they count as equivalent. The score of a question is killed / (mutants -
equivalent); the tool exits non-zero when a question scores below 95% (`--threshold`). A question with more than
`--max-per-question` mutants (default: all) is sampled deterministically (by a hash of each mutant's description,
so that a change elsewhere in the master does not reshuffle the sample), and the table says so.
"""
from __future__ import annotations

import argparse
import ast
import builtins
import copy
import hashlib
import io
import json
import os
import re
import select
import signal
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import yaml

from autograder import masters
from autograder.assignments import ASSIGNMENTS, ROOT

EQUIVALENTS_FILE = ROOT / "autograder" / "mutation_equivalents.yaml"
THRESHOLD = 0.95
BUILTINS = set(dir(builtins))
TIME_LIMIT_S = 20  # per mutant: the reference runs each question's tests in under 3 s

MODULE_NAMES = {"torch", "math", "np", "nn", "F", "init", "functional"}  # calls on these are functions, not methods
NAME_SWAPS = [("tril", "triu"), ("train", "eval"), ("sum", "mean"), ("min", "max"), ("amax", "amin"),
              ("argmax", "argmin"), ("sin", "cos"), ("zeros", "ones"), ("zeros_like", "ones_like"),
              ("softmax", "log_softmax"), ("ReLU", "GELU"), ("relu", "gelu")]
SWAP = {a: b for a, b in NAME_SWAPS} | {b: a for a, b in NAME_SWAPS}
BINOP_SWAPS = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Div], ast.Div: [ast.Mult, ast.FloorDiv],
               ast.FloorDiv: [ast.Div], ast.Mod: [ast.FloorDiv], ast.Pow: [ast.Mult], ast.MatMult: [ast.Mult]}
CMP_SWAPS = {ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt], ast.Gt: [ast.GtE, ast.Lt], ast.GtE: [ast.Gt],
             ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.In: [ast.NotIn], ast.NotIn: [ast.In],
             ast.Is: [ast.IsNot], ast.IsNot: [ast.Is]}
AUG_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult}
DIFFERENTIABLE = {"softmax", "masked_fill", "matmul", "bmm", "einsum", "linear", "layer_norm", "embedding"}
REDUCTIONS = {"sum", "mean", "max", "min", "amax", "amin", "prod", "norm", "argmax", "argmin", "any", "all", "std",
              "var", "logsumexp", "count_nonzero"}  # over all axes when no dim is given
AXIS_KEYWORDS = {"dim", "axis", "keepdim", "keepdims"}
SORTS = {"sorted", "sort", "argsort", "topk"}


@dataclass(frozen=True)
class Mutant:
    assignment: str
    question: str
    cell: int        # index into the master's solution cells
    index: int       # the node's position in a depth-first walk of the cell
    operator: str    # the operator class
    line: str        # the original source line (stripped)
    change: str      # "before -> after"
    occurrence: int  # how many identical (line, change) pairs came before it in this question

    @property
    def key(self) -> str:
        return f"{self.question} | {self.line} | {self.change}" + (f" | #{self.occurrence + 1}" if self.occurrence else "")


# ---------------------------------------------------------------------------------------------------------------
# finding the solution code and the mutations


def solution_lines(source: str) -> set[int]:
    """1-based line numbers of a cell that lie inside solution regions (the markers themselves excluded)."""
    lines, inside = set(), False
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        if re.search(r"#\s*BEGIN SOLUTION", stripped):
            inside = True
        elif re.search(r"#\s*END SOLUTION", stripped):
            inside = False
        elif inside or re.search(r"#\s*SOLUTION( NO PROMPT)?\s*$", stripped):
            lines.add(number)
    return lines


def _walk(node, parent=None, field=None, position=None):
    """Depth-first (node, parent, field, position) over the tree, in a fixed order."""
    yield node, parent, field, position
    for name, value in ast.iter_fields(node):
        if isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, ast.AST):
                    yield from _walk(item, node, name, i)
        elif isinstance(value, ast.AST):
            yield from _walk(value, node, name, None)


def _inside(node, lines: set[int]) -> bool:
    start = getattr(node, "lineno", None)
    if start is None:
        return False
    return all(n in lines for n in range(start, (getattr(node, "end_lineno", None) or start) + 1))


def _src(node) -> str:
    text = ast.unparse(node)
    return text if len(text) <= 60 else text[:57] + "..."


def _const(value):
    return ast.Constant(value=value)


def _is_docstring(parent, field) -> bool:
    return isinstance(parent, ast.Expr)


def _names_in(node) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _is_function_call(call: ast.Call) -> bool:
    """A call of a module's function (torch.softmax, math.sqrt, F.linear) or a plain name, not a method of a value."""
    func = call.func
    if isinstance(func, ast.Name):
        return True
    root = func
    while isinstance(root, ast.Attribute):
        root = root.value
    return isinstance(root, ast.Name) and root.id in MODULE_NAMES


def _differentiable(node) -> bool:
    """An expression whose value is a computed float tensor that can carry gradients."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.MatMult, ast.Div, ast.Mult, ast.Add)):
        return _differentiable(node.left) or _differentiable(node.right) or isinstance(node.op, ast.MatMult)
    if isinstance(node, ast.Call):
        name = _call_name(node)
        if name in DIFFERENTIABLE:
            return True
        func = node.func  # a submodule: self.query(x), self.attn(...)
        return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "self"
    return False


def mutations(node, parent, field):
    """(operator, change, replacement) for one node; the replacement is a node, a list of statements, or None to
    remove an expression statement (replaced by `pass`)."""
    out = []
    # arithmetic
    if isinstance(node, ast.BinOp):
        for op in BINOP_SWAPS.get(type(node.op), []):
            new = copy.deepcopy(node)
            new.op = op()
            out.append(("binary operator", f"{_src(node)} -> {_src(new)}", new))
        if isinstance(node.op, (ast.Add, ast.Mult)):
            out.append(("operand dropped", f"{_src(node)} -> {_src(node.left)}", copy.deepcopy(node.left)))
            out.append(("operand dropped", f"{_src(node)} -> {_src(node.right)}", copy.deepcopy(node.right)))
        elif isinstance(node.op, (ast.Sub, ast.Div, ast.FloorDiv, ast.MatMult)):
            out.append(("operand dropped", f"{_src(node)} -> {_src(node.left)}", copy.deepcopy(node.left)))
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            for swap in CMP_SWAPS.get(type(op), []):
                new = copy.deepcopy(node)
                new.ops[i] = swap()
                out.append(("comparison", f"{_src(node)} -> {_src(new)}", new))
    elif isinstance(node, ast.BoolOp):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        out.append(("boolean operator", f"{_src(node)} -> {_src(new)}", new))
    elif isinstance(node, ast.UnaryOp):
        if isinstance(node.operand, ast.Constant) and isinstance(node.op, ast.USub) and \
                isinstance(node.operand.value, (int, float)) and not isinstance(node.operand.value, bool):
            value = -node.operand.value
            for new_value in (value - 1, value + 1):
                out.append(("number", f"{_src(node)} -> {new_value!r}", _const(new_value)))
            out.append(("unary operator removed", f"{_src(node)} -> {_src(node.operand)}", copy.deepcopy(node.operand)))
        elif isinstance(node.op, (ast.Invert, ast.Not, ast.USub)):
            out.append(("unary operator removed", f"{_src(node)} -> {_src(node.operand)}", copy.deepcopy(node.operand)))
    elif isinstance(node, ast.Constant) and not isinstance(parent, ast.UnaryOp):
        value = node.value
        if isinstance(parent, ast.JoinedStr) or isinstance(parent, ast.FormattedValue) or _is_docstring(parent, field):
            return out
        if isinstance(value, bool):
            out.append(("boolean constant", f"{value!r} -> {not value!r}", _const(not value)))
        elif isinstance(value, (int, float)):
            for new_value in (value + 1, value - 1):
                out.append(("number", f"{value!r} -> {new_value!r}", _const(new_value)))
        elif isinstance(value, str) and not (isinstance(parent, ast.Call) and _call_name(parent) == "float"):
            out.append(("string", f"{value!r} -> {'XX' + value + 'XX'!r}", _const("XX" + value + "XX")))
    # calls
    if isinstance(node, ast.Call):
        name = _call_name(node)
        if name == "float" and len(node.args) == 1 and isinstance(node.args[0], ast.Constant) and \
                node.args[0].value in ("-inf", "inf"):
            out.append(("-inf -> 0", f"{_src(node)} -> 0.0", _const(0.0)))
        elif name == "Dropout":
            new = ast.Call(func=ast.Attribute(value=ast.Name(id="nn", ctx=ast.Load()), attr="Identity", ctx=ast.Load()),
                           args=[], keywords=[])
            out.append(("dropout removed", f"{_src(node)} -> nn.Identity()", new))
        for i, keyword in enumerate(node.keywords):
            if keyword.arg is None:
                continue
            new = copy.deepcopy(node)
            del new.keywords[i]
            out.append(("keyword removed", f"{_src(node)} -> {_src(new)}", new))
            if keyword.arg in SWAP:
                new = copy.deepcopy(node)
                new.keywords[i].arg = SWAP[keyword.arg]
                out.append(("name swap", f"{keyword.arg}= -> {SWAP[keyword.arg]}=", new))
        if name == "Linear" and not any(k.arg == "bias" for k in node.keywords):
            new = copy.deepcopy(node)
            new.keywords.append(ast.keyword(arg="bias", value=_const(False)))
            out.append(("bias removed", f"{_src(node)} -> {_src(new)}", new))
        user_function = isinstance(node.func, ast.Name) and node.func.id not in BUILTINS
        if len(node.args) >= 2 and (user_function or name in DIFFERENTIABLE or name in ("where",)):
            new = copy.deepcopy(node)
            del new.args[-1]
            out.append(("argument dropped", f"{_src(node)} -> {_src(new)}", new))
        if len(node.args) >= 2 and not all(isinstance(a, (ast.Constant, ast.UnaryOp)) for a in node.args[:2]) and \
                ast.dump(node.args[0]) != ast.dump(node.args[1]):
            new = copy.deepcopy(node)
            new.args[0], new.args[1] = new.args[1], new.args[0]
            out.append(("arguments swapped", f"{_src(node)} -> {_src(new)}", new))
        if _is_function_call(node):
            if node.args and name not in ("float", "int", "len", "range", "super", "enumerate", "isinstance"):
                out.append(("call skipped", f"{_src(node)} -> {_src(node.args[0])}", copy.deepcopy(node.args[0])))
        elif isinstance(node.func, ast.Attribute):
            receiver = node.func.value
            if isinstance(receiver, ast.Name) and receiver.id == "self":  # a submodule: self.dropout(x) -> x
                if node.args:
                    out.append(("call skipped", f"{_src(node)} -> {_src(node.args[0])}", copy.deepcopy(node.args[0])))
            elif not (isinstance(parent, ast.Expr)):  # a method of a value: x.masked_fill(...) -> x
                out.append(("method skipped", f"{_src(node)} -> {_src(receiver)}", copy.deepcopy(receiver)))
        if not _is_function_call(node) and isinstance(node.func, ast.Attribute) and len(node.args) == 1 and \
                not node.keywords and not (isinstance(node.func.value, ast.Name) and node.func.value.id == "self"):
            new = copy.deepcopy(node)  # a method's only argument removed: x.squeeze(-1) -> x.squeeze()
            new.args = []
            out.append(("only argument removed", f"{_src(node)} -> {_src(new)}", new))
        if name in REDUCTIONS and isinstance(node.func, ast.Attribute):
            method = not _is_function_call(node)  # x.sum(dim=-1) -> x.sum(); torch.sum(x, 1) -> torch.sum(x)
            new = copy.deepcopy(node)
            new.args = [] if method else new.args[:1]
            new.keywords = [k for k in new.keywords if k.arg not in AXIS_KEYWORDS]
            change = f"{_src(node)} -> {_src(new)}"
            if _src(new) != _src(node) and (method or node.args) and change not in {c for _, c, _ in out}:
                out.append(("reduction over all axes", change, new))
    # a cut made before the sort instead of after it: sorted(a, key=k)[:n] -> sorted(list(a)[:n], key=k)
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice) and isinstance(node.value, ast.Call) and \
            _call_name(node.value) in SORTS and node.value.args:
        new = copy.deepcopy(node.value)
        first = new.args[0]
        if _call_name(node.value) == "sorted":
            first = ast.Call(func=ast.Name(id="list", ctx=ast.Load()), args=[first], keywords=[])
        new.args[0] = ast.Subscript(value=first, slice=copy.deepcopy(node.slice), ctx=ast.Load())
        out.append(("cut before sort", f"{_src(node)} -> {_src(new)}", new))
    if isinstance(node, ast.Attribute) and node.attr in SWAP:
        new = copy.deepcopy(node)
        new.attr = SWAP[node.attr]
        out.append(("name swap", f".{node.attr} -> .{new.attr}", new))
    if isinstance(node, ast.Name) and node.id in SWAP and isinstance(node.ctx, ast.Load) and node.id not in ("sum", "min", "max"):
        out.append(("name swap", f"{node.id} -> {SWAP[node.id]}", ast.Name(id=SWAP[node.id], ctx=ast.Load())))
    # slices
    if isinstance(node, ast.Slice) and node.step is None and (node.lower is None) != (node.upper is None):
        new = ast.Slice(lower=copy.deepcopy(node.upper), upper=copy.deepcopy(node.lower), step=None)
        out.append(("slice bound moved", f"[{_src(node)}] -> [{_src(new)}]", new))
    # statements
    if isinstance(node, ast.Return) and node.value is not None and not (
            isinstance(node.value, ast.Constant) and node.value.value is None):
        out.append(("return None", f"return {_src(node.value)} -> return None", ast.Return(value=None)))
        if _differentiable(node.value):
            out.append(("detach added", f"{_src(node.value)} -> (...).detach()", ast.Return(value=_detached(node.value))))
    elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        out.append(("statement removed", f"{_src(node)} -> pass", None))
    elif isinstance(node, ast.Assign) and len(node.targets) == 1:
        target = node.targets[0]
        targets = _names_in(target)
        if isinstance(target, ast.Subscript) or (isinstance(target, ast.Name) and targets & _names_in(node.value)):
            out.append(("statement removed", f"{_src(node)} -> pass", None))
        if _differentiable(node.value):
            new = copy.deepcopy(node)
            new.value = _detached(node.value)
            out.append(("detach added", f"{_src(node.value)} -> (...).detach()", new))
    elif isinstance(node, ast.AugAssign):
        out.append(("statement removed", f"{_src(node)} -> pass", None))
        if type(node.op) in AUG_SWAPS:
            new = copy.deepcopy(node)
            new.op = AUG_SWAPS[type(node.op)]()
            out.append(("augmented assignment", f"{_src(node)} -> {_src(new)}", new))
        new = ast.Assign(targets=[copy.deepcopy(node.target)], value=copy.deepcopy(node.value), lineno=node.lineno)
        out.append(("augmented assignment", f"{_src(node)} -> {_src(new)}", new))
    elif isinstance(node, ast.Raise):
        out.append(("statement removed", f"{_src(node)} -> pass", None))
    elif isinstance(node, ast.Continue):
        out.append(("statement removed", "continue -> pass", None))
    elif isinstance(node, (ast.If, ast.While)):
        new = copy.deepcopy(node)
        new.test = ast.UnaryOp(op=ast.Not(), operand=new.test)
        out.append(("condition negated", f"if {_src(node.test)} -> if not ({_src(node.test)})", new))
    elif isinstance(node, ast.IfExp):
        new = copy.deepcopy(node)
        new.test = ast.UnaryOp(op=ast.Not(), operand=new.test)
        out.append(("condition negated", f"{_src(node.test)} -> not ({_src(node.test)})", new))
    elif isinstance(node, ast.With) and any("no_grad" in ast.unparse(item.context_expr) for item in node.items):
        out.append(("no_grad removed", "with torch.no_grad(): body -> body", copy.deepcopy(node.body)))
    return out


def _detached(value):
    return ast.Call(func=ast.Attribute(value=copy.deepcopy(value), attr="detach", ctx=ast.Load()), args=[], keywords=[])


def _mutable(node, parent, field, lines) -> bool:
    if not _inside(node, lines) and not isinstance(node, (ast.Slice, ast.keyword)):
        return False
    if isinstance(node, ast.Slice):  # slices have positions only since Python 3.9; check the subscript's line
        return parent is not None and _inside(parent, lines)
    return True


def find_mutants(name: str) -> dict[str, list[Mutant]]:
    """Every mutant of every question of the master `name`: {question: [Mutant]}."""
    master = masters.load(name)
    found: dict[str, list[Mutant]] = {q: [] for q in master.tests}
    seen: dict[tuple[str, str, str], int] = {}
    for cell_index, (source, question) in enumerate(zip(master.solution_cells, master.solution_questions)):
        lines = solution_lines(source)
        if question is None or not lines:
            continue
        tree = ast.parse(source)
        text_lines = source.splitlines()
        for index, (node, parent, field, _) in enumerate(_walk(tree)):
            if not _mutable(node, parent, field, lines):
                continue
            line_no = getattr(node, "lineno", None) or getattr(parent, "lineno", 1)
            line = text_lines[line_no - 1].strip()
            line = re.sub(r"\s*#\s*SOLUTION( NO PROMPT)?\s*$", "", line)
            for operator, change, _ in mutations(node, parent, field):
                occurrence = seen.get((question, line, change), 0)
                seen[(question, line, change)] = occurrence + 1
                found[question].append(Mutant(name, question, cell_index, index, operator, line, change, occurrence))
    return found


def mutated_source(mutant: Mutant) -> str:
    """The mutant's cell, unparsed (comments are lost; the code is the master's with one change)."""
    source = masters.load(mutant.assignment).solution_cells[mutant.cell]
    tree = ast.parse(source)
    lines = solution_lines(source)
    for index, (node, parent, field, position) in enumerate(_walk(tree)):
        if index != mutant.index:
            continue
        options = [m for m in mutations(node, parent, field) if m[1] == mutant.change and m[0] == mutant.operator]
        assert options and _mutable(node, parent, field, lines), mutant
        replacement = options[0][2]
        if replacement is None:
            replacement = ast.Pass()
        if position is None:
            setattr(parent, field, replacement)
        else:
            slot = getattr(parent, field)
            if isinstance(replacement, list):
                slot[position:position + 1] = replacement
            else:
                slot[position] = replacement
        ast.fix_missing_locations(tree)
        return ast.unparse(tree)
    raise LookupError(mutant)


# ---------------------------------------------------------------------------------------------------------------
# running them


def _run_mutant(mutant: Mutant, time_limit_s: float) -> dict:
    """In a forked child: the graded cells with the mutant's cell changed, then the question's tests."""
    master = masters.load(mutant.assignment)
    cells = list(master.solution_cells)
    cells[mutant.cell] = mutated_source(mutant)
    ns: dict = {"__name__": f"master_{mutant.assignment}"}
    exec_errors = []

    def alarm(signum, frame):
        raise TimeoutError(f"ran longer than {time_limit_s:g} s")

    signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, time_limit_s)
    sink = io.StringIO()
    try:
        with redirect_stdout(sink), redirect_stderr(sink):
            for i, source in enumerate(cells):
                try:
                    exec(compile(source, f"<{mutant.assignment} cell {i}>", "exec"), ns)
                except Exception as error:  # noqa: BLE001 - a failing cell, as in a notebook: the rest still runs
                    exec_errors.append(f"cell {i}: {type(error).__name__}: {error}")
            for test in master.tests[mutant.question]:
                if masters.reads_submitted_files(test):
                    continue
                try:
                    masters.run_test(test, ns)
                except TimeoutError as error:
                    return {"killed": True, "by": test.name, "error": f"timeout: {error}", "timeout": True}
                except Exception as error:  # noqa: BLE001 - any exception fails the test, as in otter
                    return {"killed": True, "by": test.name, "error": f"{type(error).__name__}: {error}"[:300],
                            "exec_errors": exec_errors}
    except TimeoutError as error:
        return {"killed": True, "by": None, "error": f"timeout: {error}", "timeout": True}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return {"killed": False, "exec_errors": exec_errors}


def run_mutants(mutants: list[Mutant], jobs: int, time_limit_s: float, progress=None) -> dict[Mutant, dict]:
    """Each mutant in a child forked from this process (torch imported once), `jobs` at a time."""
    import torch

    torch.set_num_threads(1)  # forked children must not inherit a thread pool
    results: dict[Mutant, dict] = {}
    pending = list(mutants)
    running: dict[int, tuple[Mutant, int, float, list[bytes]]] = {}  # pid -> (mutant, read fd, start, chunks)
    while pending or running:
        while pending and len(running) < jobs:
            mutant = pending.pop(0)
            read_fd, write_fd = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(read_fd)
                try:
                    result = _run_mutant(mutant, time_limit_s)
                except BaseException as error:  # noqa: BLE001
                    result = {"killed": True, "by": None, "error": f"mutant crashed: {type(error).__name__}: {error}"}
                os.write(write_fd, json.dumps(result).encode())
                os.close(write_fd)
                os._exit(0)
            os.close(write_fd)
            running[pid] = (mutant, read_fd, time.monotonic(), [])
        fds = {entry[1]: pid for pid, entry in running.items()}
        ready, _, _ = select.select(list(fds), [], [], 1.0)
        for fd in ready:
            pid = fds[fd]
            chunk = os.read(fd, 1 << 16)
            if chunk:
                running[pid][3].append(chunk)
                continue
            mutant, _, start, chunks = running.pop(pid)
            os.close(fd)
            os.waitpid(pid, 0)
            try:
                result = json.loads(b"".join(chunks) or b"null")
            except json.JSONDecodeError:
                result = None
            if result is None:  # the child died (a segfault in torch counts: grading would fail that test)
                result = {"killed": True, "by": None, "error": "the mutant's process died"}
            result["seconds"] = time.monotonic() - start
            results[mutant] = result
            if progress:
                progress(mutant, result)
        for pid, (mutant, fd, start, _) in list(running.items()):
            if time.monotonic() - start > time_limit_s + 15:  # ignored the alarm (stuck in C code)
                os.kill(pid, signal.SIGKILL)
    return results


# ---------------------------------------------------------------------------------------------------------------
# equivalents and the table


def load_equivalents(path: Path = EQUIVALENTS_FILE) -> dict[tuple[str, str], str]:
    """{(assignment, mutant key): reason}."""
    if not path.exists():
        return {}
    entries = yaml.safe_load(path.read_text()) or {}
    out = {}
    for assignment, items in entries.items():
        for item in items or []:
            key = f"{item['question']} | {item['line']} | {item['change']}" + (
                f" | #{item['occurrence']}" if item.get("occurrence", 1) > 1 else "")
            out[(assignment, key)] = item["reason"]
    return out


def sample(mutants: list[Mutant], limit: int | None) -> list[Mutant]:
    if limit is None or len(mutants) <= limit:
        return mutants
    ranked = sorted(mutants, key=lambda m: hashlib.sha1(m.key.encode()).hexdigest())
    chosen = set(ranked[:limit])
    return [m for m in mutants if m in chosen]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="assignments (default: all)")
    parser.add_argument("--question", action="append", help="only these questions")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--max-per-question", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=TIME_LIMIT_S)
    parser.add_argument("--threshold", type=float, default=THRESHOLD)
    parser.add_argument("--survivors", action="store_true", help="print every surviving mutant, equivalent or not")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    parser.add_argument("--show", help="print the mutated cell of the mutant whose key contains this text")
    args = parser.parse_args(argv)

    names = args.names or sorted(ASSIGNMENTS)
    equivalents = load_equivalents()
    chosen: list[Mutant] = []
    totals: dict[tuple[str, str], int] = {}
    for name in names:
        for question, mutants in find_mutants(name).items():
            if args.question and question not in args.question:
                continue
            totals[(name, question)] = len(mutants)
            chosen += sample(mutants, args.max_per_question)
    if args.show:
        for mutant in chosen:
            if args.show in mutant.key:
                print(f"# {mutant.assignment}: {mutant.key}\n{mutated_source(mutant)}\n")
        return 0
    if args.list:
        for mutant in chosen:
            print(f"{mutant.assignment}: {mutant.key}  [{mutant.operator}]")
        print(f"{len(chosen)} mutants")
        return 0

    start = time.monotonic()
    done = [0]

    def progress(mutant, result):
        done[0] += 1
        if done[0] % 50 == 0:
            print(f"  {done[0]}/{len(chosen)} mutants, {time.monotonic() - start:.0f} s", file=sys.stderr, flush=True)

    results = run_mutants(chosen, args.jobs, args.time_limit, progress)
    used = set()
    rows, failing, survivors = [], [], []
    for (name, question), total in totals.items():
        ran = [m for m in chosen if m.assignment == name and m.question == question]
        killed = [m for m in ran if results[m]["killed"]]
        alive = [m for m in ran if not results[m]["killed"]]
        equivalent = [m for m in alive if (name, m.key) in equivalents]
        used.update((name, m.key) for m in equivalent)
        survived = [m for m in alive if (name, m.key) not in equivalents]
        for m in ran:
            if results[m]["killed"] and (name, m.key) in equivalents:
                print(f"note: listed as equivalent but killed: {name}: {m.key}", file=sys.stderr)
        counted = len(ran) - len(equivalent)
        score = len(killed) / counted if counted else 1.0
        timeouts = sum(1 for m in killed if results[m].get("timeout"))
        rows.append((name, question, len(ran), total, len(killed), timeouts, len(survived), len(equivalent), score))
        if score < args.threshold:
            failing.append(f"{name} {question}")
        survivors += [(m, (name, m.key) in equivalents) for m in (alive if args.survivors else survived)]

    print(f"\n{'assignment':<18} {'question':<28} {'mutants':>8} {'killed':>7} {'survived':>9} {'equivalent':>11} {'score':>7}")
    for name, question, ran, total, killed, timeouts, survived, equivalent, score in rows:
        mutants = f"{ran}" if ran == total else f"{ran}/{total}"
        print(f"{name:<18} {question:<28} {mutants:>8} {killed:>7} {survived:>9} {equivalent:>11} {score:>7.1%}"
              + (f"  ({timeouts} by timeout)" if timeouts else ""))
    all_ran = sum(r[2] for r in rows)
    all_killed = sum(r[4] for r in rows)
    all_equivalent = sum(r[7] for r in rows)
    print(f"{'total':<47} {all_ran:>8} {all_killed:>7} {sum(r[6] for r in rows):>9} {all_equivalent:>11} "
          f"{all_killed / max(1, all_ran - all_equivalent):>7.1%}   ({time.monotonic() - start:.0f} s, {args.jobs} jobs)")
    if any(r[2] != r[3] for r in rows):
        print(f"(m/n: a deterministic sample of m of the question's n mutants, --max-per-question {args.max_per_question})")
    if survivors:
        print("\nsurviving mutants" + (" (= listed as equivalent)" if args.survivors else "") + ":")
        for m, is_equivalent in survivors:
            print(f"  {'=' if is_equivalent else '-'} {m.assignment}: {m.key}  [{m.operator}]")
    print("\nequivalent mutants (with why):")
    for (name, key), reason in sorted(equivalents.items()):
        if (name, key) in used:
            print(f"  {name}: {key}\n      {reason}")
    stale = [k for k in equivalents if k[0] in names and k not in used and
             (not args.question or k[1].split(" | ")[0] in args.question)]
    for name, key in stale:
        print(f"note: an equivalent listed in {EQUIVALENTS_FILE.name} was not among the survivors: {name}: {key}",
              file=sys.stderr)
    if failing:
        print(f"\nbelow {args.threshold:.0%}: {', '.join(failing)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
