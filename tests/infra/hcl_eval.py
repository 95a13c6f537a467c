"""A small evaluator of Terraform (HCL2) expressions, enough to check terraform/ offline.

The google provider cannot be downloaded here, so `terraform plan` is out of reach. This
walks python-hcl2's parse tree instead and evaluates the expressions of one module: locals,
variable defaults, `for_each`, `each.key`/`each.value`, for-expressions, conditionals and the
functions the configuration uses. Anything only known after apply (resource attributes,
module outputs, data sources) evaluates to a `Ref`, e.g. ``module.service["analyze"].uri``,
and is rendered as ``${module.service["analyze"].uri}`` inside strings, so a test can assert
exactly which resource an argument points at.

An unsupported construct raises `Unsupported` rather than guessing.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import hcl2
from lark import Token, Tree


@cache
def _parse(text: str) -> Tree:
    """One parse per distinct file text (the evaluator only reads trees): the mutation test
    re-parses only the file it changed."""
    return hcl2.parses_to_tree(text)


class Unsupported(Exception):
    """The evaluator does not handle this construct (extend it, don't guess)."""


class EvalError(Exception):
    """The expression fails, as it would in Terraform (e.g. a missing attribute)."""


@dataclass(frozen=True)
class Ref:
    """A reference whose value is only known after apply."""

    path: tuple

    def attr(self, name: str) -> Ref:
        return Ref(self.path + (("attr", name),))

    def index(self, key: Any) -> Ref:
        return Ref(self.path + (("index", key),))

    def __str__(self) -> str:
        out = ""
        for kind, value in self.path:
            if kind == "root":
                out = value
            elif kind == "attr":
                out += f".{value}"
            else:
                out += f"[{json.dumps(value)}]"
        return out


def ref(root: str, *steps: Any) -> Ref:
    """ref("module", "service", ["analyze"], "uri") -> module.service["analyze"].uri"""
    r = Ref((("root", root),))
    for step in steps:
        r = r.index(step[0]) if isinstance(step, list) else r.attr(step)
    return r


def _trees(node: Tree) -> list[Tree]:
    return [c for c in node.children if isinstance(c, Tree) and c.data != "new_line_or_comment"]


def _name(node: Tree) -> str:
    """identifier / keyword / string label -> its text."""
    if node.data in ("identifier", "keyword", "literal_value"):
        return str(node.children[0])
    if node.data == "string":
        return "".join(str(p.children[0]) for p in node.children if isinstance(p, Tree))
    raise Unsupported(f"name from {node.data}")


_ESCAPES = {'\\"': '"', "\\\\": "\\", "\\n": "\n", "\\t": "\t", "\\r": "\r"}


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        two = text[i:i + 2]
        if two in _ESCAPES:
            out.append(_ESCAPES[two])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _to_str(value: Any) -> str:
    if isinstance(value, Ref):
        return "${" + str(value) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (str, int, float)):
        return str(value)
    raise EvalError(f"cannot convert {type(value).__name__} to string")


def _known(*values: Any) -> None:
    for v in values:
        if isinstance(v, Ref):
            raise EvalError(f"{v} is only known after apply")


def _num(value: Any) -> float | int:
    _known(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EvalError(f"not a number: {value!r}")
    return value


def _flatten(value: list) -> list:
    out = []
    for item in value:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _distinct(value: list) -> list:
    out = []
    for item in value:
        if item not in out:
            out.append(item)
    return out


def _merge(*maps: dict) -> dict:
    out: dict = {}
    for m in maps:
        _known(m)
        out.update(m)
    return out


def _setproduct(*lists: list) -> list:
    out: list = [[]]
    for lst in lists:
        out = [prefix + [item] for prefix in out for item in lst]
    return out


def _lookup(m: dict, key: str, *default: Any) -> Any:
    _known(m)
    if key in m:
        return m[key]
    if default:
        return default[0]
    raise EvalError(f"lookup: no key {key!r}")


@dataclass
class Module:
    """One Terraform module directory: its locals, variables, resources and module calls."""

    directory: Path
    var_values: dict[str, Any] = field(default_factory=dict)
    locals: dict[str, Tree] = field(default_factory=dict)
    variables: dict[str, dict[str, Tree]] = field(default_factory=dict)
    resources: dict[tuple[str, str], Tree] = field(default_factory=dict)
    data: dict[tuple[str, str], Tree] = field(default_factory=dict)
    modules: dict[str, Tree] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)
    _local_cache: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path, var_values: dict[str, Any] | None = None) -> Module:
        mod = cls(Path(directory), dict(var_values or {}))
        for path in sorted(mod.directory.glob("*.tf")):
            text = path.read_text()
            mod.comments += [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
            body = _trees(_parse(text))[0]
            for block in _trees(body):
                if block.data != "block":
                    continue
                kind, labels, inner = _block_parts(block)
                if kind == "locals":
                    for attr in _trees(inner):
                        if attr.data == "attribute":
                            mod.locals[_name(attr.children[0])] = _attr_expr(attr)
                elif kind == "variable":
                    mod.variables[labels[0]] = _attributes(inner)
                elif kind == "resource":
                    mod.resources[(labels[0], labels[1])] = inner
                elif kind == "data":
                    mod.data[(labels[0], labels[1])] = inner
                elif kind == "module":
                    mod.modules[labels[0]] = inner
        return mod

    # -- evaluation ---------------------------------------------------------------------
    def local(self, name: str) -> Any:
        if name not in self._local_cache:
            if name not in self.locals:
                raise EvalError(f"no local {name!r}")
            self._local_cache[name] = self.eval(self.locals[name], {})
        return self._local_cache[name]

    def var(self, name: str) -> Any:
        if name in self.var_values:
            return self.var_values[name]
        spec = self.variables.get(name)
        if spec is None:
            raise EvalError(f"no variable {name!r}")
        if "default" in spec:
            return self.eval(spec["default"], {})
        return ref("var", name)

    def instances(self, body: Tree) -> dict[Any, dict[str, Any]]:
        """The instances of a resource/module block: key -> scope with `each`."""
        attrs = _attributes(body)
        if "for_each" in attrs:
            collection = self.eval(attrs["for_each"], {})
            _known(collection)
            if isinstance(collection, list):  # toset()
                collection = {item: item for item in collection}
            return {k: {"each": {"key": k, "value": v}} for k, v in collection.items()}
        if "count" in attrs:
            n = _num(self.eval(attrs["count"], {}))
            return {i: {"count": {"index": i}} for i in range(int(n))}
        return {None: {}}

    def render(self, body: Tree, scope: dict[str, Any]) -> dict[str, Any]:
        """A block body with every argument evaluated; nested blocks become lists of dicts
        (dynamic blocks are expanded)."""
        out: dict[str, Any] = {}
        for node in _trees(body):
            if node.data == "attribute":
                out[_name(node.children[0])] = self.eval(_attr_expr(node), scope)
            elif node.data == "block":
                kind, labels, inner = _block_parts(node)
                if kind == "dynamic":
                    name = labels[0]
                    attrs = _attributes(inner)
                    collection = self.eval(attrs["for_each"], scope)
                    items = collection.items() if isinstance(collection, dict) else enumerate(collection)
                    content = next(b for b in _trees(inner) if b.data == "block" and _block_parts(b)[0] == "content")
                    for k, v in items:
                        inner_scope = {**scope, name: {"key": k, "value": v}}
                        out.setdefault(name, []).append(self.render(_block_parts(content)[2], inner_scope))
                else:
                    out.setdefault(kind, []).append(self.render(inner, scope))
        return out

    def eval(self, node: Tree | Token, scope: dict[str, Any]) -> Any:
        if isinstance(node, Token):
            raise Unsupported(f"token {node.type}")
        handler = getattr(self, f"_e_{node.data}", None)
        if handler is None:
            raise Unsupported(f"expression {node.data}")
        return handler(node, scope)

    def _e_expr_term(self, node: Tree, scope: dict) -> Any:
        inner = _trees(node)
        if len(inner) != 1:
            raise Unsupported(f"expr_term with {len(inner)} parts")
        return self.eval(inner[0], scope)

    def _e_int_lit(self, node: Tree, scope: dict) -> Any:
        return int(str(node.children[0]))

    def _e_float_lit(self, node: Tree, scope: dict) -> Any:
        return float(str(node.children[0]))

    def _e_literal_value(self, node: Tree, scope: dict) -> Any:
        return {"true": True, "false": False, "null": None}[str(node.children[0])]

    def _e_string(self, node: Tree, scope: dict) -> Any:
        parts = [p for p in node.children if isinstance(p, Tree)]
        values = []
        for part in parts:
            child = part.children[0]
            if isinstance(child, Token):
                if child.type != "STRING_CHARS":
                    raise Unsupported(f"string part {child.type}")
                values.append(_unescape(str(child)))
            elif child.data == "interpolation":
                values.append(self.eval(_trees(child)[0], scope))
            else:
                raise Unsupported(f"template directive {child.data}")
        if len(values) == 1 and len(parts) == 1 and isinstance(parts[0].children[0], Tree):
            return values[0]  # "${x}" is x itself
        return "".join(_to_str(v) for v in values)

    def _e_tuple(self, node: Tree, scope: dict) -> Any:
        return [self.eval(c, scope) for c in _trees(node)]

    def _e_object(self, node: Tree, scope: dict) -> Any:
        out = {}
        for elem in _trees(node):
            key_node, value_node = _trees(elem)
            key_expr = _trees(key_node)[0]
            bare = _trees(key_expr)
            if key_expr.data == "keyword" or (key_expr.data == "expr_term" and len(bare) == 1 and bare[0].data == "identifier"):
                key = _name(bare[0] if key_expr.data == "expr_term" else key_expr)
            else:
                key = self.eval(key_expr, scope)
            out[_to_str(key)] = self.eval(value_node, scope)
        return out

    def _e_identifier(self, node: Tree, scope: dict) -> Any:
        name = str(node.children[0])
        if name in scope:
            return scope[name]
        if name == "local":
            return _Namespace(self.local)
        if name == "var":
            return _Namespace(self.var)
        if name == "path":
            return {"module": str(self.directory), "root": str(self.directory), "cwd": str(self.directory)}
        return ref(name)

    def _e_get_attr_expr_term(self, node: Tree, scope: dict) -> Any:
        base_node, get_attr = _trees(node)
        base = self.eval(base_node, scope)
        return _getattr(base, _name(_trees(get_attr)[0]))

    def _e_index_expr_term(self, node: Tree, scope: dict) -> Any:
        base_node, index = _trees(node)
        base = self.eval(base_node, scope)
        if index.data == "braces_index":
            key = self.eval(_trees(index)[0], scope)
        else:
            key = int(str(index.children[1]))
        _known(key)
        if isinstance(base, Ref):
            return base.index(key)
        try:
            return base[key]
        except (KeyError, IndexError, TypeError) as exc:
            raise EvalError(f"no element {key!r}") from exc

    def _e_conditional(self, node: Tree, scope: dict) -> Any:
        cond, yes, no = _trees(node)
        test = self.eval(cond, scope)
        _known(test)
        return self.eval(yes if test else no, scope)

    def _e_unary_op(self, node: Tree, scope: dict) -> Any:
        op = str(node.children[0])
        value = self.eval(_trees(node)[0], scope)
        _known(value)
        return (not value) if op == "!" else -_num(value)

    def _e_binary_op(self, node: Tree, scope: dict) -> Any:
        lhs_node, term = _trees(node)[:2]
        operator, rhs_node = _trees(term)
        op = str(operator.children[0])
        lhs = self.eval(lhs_node, scope)
        if op == "&&" and lhs is False:
            return False
        if op == "||" and lhs is True:
            return True
        rhs = self.eval(rhs_node, scope)
        _known(lhs, rhs)
        if op in ("&&", "||"):
            return bool(rhs)
        if op == "==":
            return lhs == rhs
        if op == "!=":
            return lhs != rhs
        a, b = _num(lhs), _num(rhs)
        ops = {
            "+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b, "%": lambda: a % b,
            "<": lambda: a < b, ">": lambda: a > b, "<=": lambda: a <= b, ">=": lambda: a >= b,
        }
        return ops[op]()

    def _for(self, node: Tree, scope: dict):
        children = _trees(node)
        intro = children[0]
        names = [str(c.children[0]) for c in _trees(intro) if c.data == "identifier"]
        collection = self._expand(self.eval([c for c in _trees(intro) if c.data != "identifier"][0], scope))
        _known(collection)
        cond = next((c for c in children if c.data == "for_cond"), None)
        items = collection.items() if isinstance(collection, dict) else enumerate(collection)
        for k, v in items:
            inner = dict(scope)
            if len(names) == 2:
                inner[names[0]], inner[names[1]] = k, v
            else:
                inner[names[0]] = v
            if cond is not None:
                test = self.eval(_trees(cond)[0], inner)
                _known(test)
                if not test:
                    continue
            yield inner

    def _expand(self, value: Any) -> Any:
        """`google_x.y` / `module.m` with for_each, iterated: key -> reference to the instance."""
        if isinstance(value, Ref) and len(value.path) in (1, 2):
            kinds = [step[1] for step in value.path]
            if kinds[0] == "module" and len(kinds) == 2 and kinds[1] in self.modules:
                body = self.modules[kinds[1]]
            elif len(kinds) == 2 and tuple(kinds) in self.resources:
                body = self.resources[tuple(kinds)]
            else:
                return value
            return {key: value.index(key) for key in self.instances(body)}
        return value

    def _e_for_tuple_expr(self, node: Tree, scope: dict) -> Any:
        value_node = _trees(node)[1]
        return [self.eval(value_node, inner) for inner in self._for(node, scope)]

    def _e_for_object_expr(self, node: Tree, scope: dict) -> Any:
        if any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in node.children):
            raise Unsupported("grouping for-expression (...)")
        key_node, value_node = _trees(node)[1:3]
        out = {}
        for inner in self._for(node, scope):
            key = _to_str(self.eval(key_node, inner))
            if key in out:
                raise EvalError(f"duplicate key {key!r} in for-expression")
            out[key] = self.eval(value_node, inner)
        return out

    def _e_function_call(self, node: Tree, scope: dict) -> Any:
        name = _name(_trees(node)[0])
        args_node = next((c for c in _trees(node) if c.data == "arguments"), None)
        arg_nodes = _trees(args_node) if args_node is not None else []
        expand = args_node is not None and any(isinstance(c, Token) and c.type == "ELLIPSIS" for c in args_node.children)
        if name in ("can", "try"):
            for i, arg in enumerate(arg_nodes):
                try:
                    value = self.eval(arg, scope)
                    _known(value)
                    return True if name == "can" else value
                except EvalError:
                    if name == "try" and i == len(arg_nodes) - 1:
                        raise
            return False
        args = [self.eval(a, scope) for a in arg_nodes]
        if expand:
            _known(args[-1])
            args = args[:-1] + list(args[-1])
        fn = self.FUNCTIONS.get(name)
        if fn is None:
            raise Unsupported(f"function {name}()")
        return fn(self, *args)

    FUNCTIONS = {
        "file": lambda self, p: Path(p).read_text(),
        "jsondecode": lambda self, s: json.loads(s),
        "keys": lambda self, m: list(m.keys()),
        "values": lambda self, m: list(m.values()),
        "contains": lambda self, c, v: v in c,
        "distinct": lambda self, lst: _distinct(lst),
        "flatten": lambda self, lst: _flatten(lst),
        "merge": lambda self, *m: _merge(*m),
        "concat": lambda self, *lists: [x for part in lists for x in part],
        "join": lambda self, sep, lst: _to_str(sep).join(_to_str(x) for x in lst),
        "setproduct": lambda self, *lists: _setproduct(*lists),
        "toset": lambda self, lst: sorted(_distinct(lst), key=str),
        "tostring": lambda self, v: _to_str(v),
        "length": lambda self, v: len(v),
        "lookup": lambda self, m, k, *d: _lookup(m, k, *d),
        "max": lambda self, *v: max(_num(x) for x in v),
        "min": lambda self, *v: min(_num(x) for x in v),
        "floor": lambda self, v: math.floor(_num(v)),
        "ceil": lambda self, v: math.ceil(_num(v)),
        "upper": lambda self, s: _to_str(s).upper() if not isinstance(s, Ref) else s,
        "lower": lambda self, s: _to_str(s).lower() if not isinstance(s, Ref) else s,
        "alltrue": lambda self, lst: all(lst),
        "base64encode": lambda self, s: __import__("base64").b64encode(_to_str(s).encode()).decode(),
    }


class _Namespace:
    def __init__(self, getter):
        self.getter = getter


def _getattr(base: Any, name: str) -> Any:
    if isinstance(base, Ref):
        return base.attr(name)
    if isinstance(base, _Namespace):
        return base.getter(name)
    if isinstance(base, dict):
        if name not in base:
            raise EvalError(f"no attribute {name!r}")
        return base[name]
    raise EvalError(f"cannot read .{name} of {type(base).__name__}")


def _block_parts(block: Tree) -> tuple[str, list[str], Tree]:
    parts = _trees(block)
    return _name(parts[0]), [_name(p) for p in parts[1:-1]], parts[-1]


def _attr_expr(attr: Tree) -> Tree:
    return _trees(attr)[-1]


def _attributes(body: Tree) -> dict[str, Tree]:
    return {_name(a.children[0]): _attr_expr(a) for a in _trees(body) if a.data == "attribute"}
