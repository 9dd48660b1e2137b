"""The label names a PromQL expression uses, checked against the labels its metrics carry.

    problems, result = label_check(expr, series_labels)

`series_labels(name)` answers the labels a series of that metric carries (its own and the
scrape's target labels), or None for a metric whose labels are unknown (then nothing about
it is checked). The expression is parsed (the PromQL of Prometheus 2 and 3: selectors,
ranges and subqueries, functions, aggregations with by/without, binary operators with
on/ignoring/group_left/group_right) and each step's labels are followed:

* a selector's label matchers must name labels of its metric;
* `by (...)`, `without (...)`, `on (...)`, `group_left (...)`/`group_right (...)` must name
  labels of the series they apply to (after inner aggregations: `sum by (a) (…)` keeps `a`
  only);
* `histogram_quantile` needs the `le` label on its argument.

`result` is the label set of the whole expression's series (None when unknown), for the
`{{ $labels.x }}` of an alert or the `{{x}}` of a Grafana legend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}
# Aggregations whose first argument is a parameter, not the aggregated vector.
PARAMETRIC = {"count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
# Aggregations that return the input series themselves (with all their labels).
SELECTING = {"bottomk", "topk", "limitk", "limit_ratio"}
# Functions whose result is a scalar, or a vector without labels.
SCALAR_FUNCTIONS = {"scalar", "time", "pi"}
NO_LABEL_FUNCTIONS = {"vector"}
UNKNOWN_FUNCTIONS = {"absent", "absent_over_time"}  # labels from the selector's equalities

PRECEDENCE = {
    "or": 1,
    "and": 2, "unless": 2,
    "==": 3, "!=": 3, "<=": 3, "<": 3, ">=": 3, ">": 3,
    "+": 4, "-": 4,
    "*": 5, "/": 5, "%": 5, "atan2": 5,
    "^": 6,
}
COMPARISONS = {"==", "!=", "<=", "<", ">=", ">"}
SET_OPERATORS = {"and", "or", "unless"}

TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<duration>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*(?![A-Za-z0-9_]))
  | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<variable>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\[\[[^\]]*\]\])
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>(),@])
  | (?P<open>[\[{])
    """,
    re.VERBOSE,
)
MATCHER = re.compile(
    r"""\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<quoted>"(?:[^"\\]|\\.)*"))\s*
        (?:(?P<op>=~|!~|!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`))?\s*(?:,|$)""",
    re.VERBOSE,
)


class PromQLError(ValueError):
    """The expression cannot be parsed."""


@dataclass
class Value:
    """What an expression yields: a scalar, or series with these labels (None: unknown)."""

    scalar: bool = False
    labels: frozenset[str] | None = None
    # Where the labels come from, for messages: the metric, or the clause that set them.
    origin: str = ""
    # Whether `origin` is a metric (then its labels include the scrape's target labels).
    metric: bool = False


@dataclass
class Token:
    kind: str
    text: str
    pos: int


@dataclass
class Checker:
    expr: str
    series_labels: Callable[[str], frozenset[str] | None]
    scrape_labels: frozenset[str] = frozenset()
    problems: list[str] = field(default_factory=list)
    tokens: list[Token] = field(default_factory=list)
    i: int = 0

    # -- tokens

    def tokenize(self) -> None:
        pos = 0
        text = self.expr
        while pos < len(text):
            if text[pos] == "#":  # a comment, to the end of the line
                end = text.find("\n", pos)
                pos = len(text) if end < 0 else end
                continue
            m = TOKEN.match(text, pos)
            if not m:
                raise PromQLError(f"unexpected {text[pos]!r} at {pos}")
            kind = m.lastgroup or ""
            if kind == "open":
                close = "]" if m.group() == "[" else "}"
                end = self._closing(pos, m.group(), close)
                self.tokens.append(Token("range" if close == "]" else "braces", text[pos + 1:end], pos))
                pos = end + 1
                continue
            if kind != "ws":
                self.tokens.append(Token(kind, m.group(), pos))
            pos = m.end()
        self.tokens.append(Token("end", "", len(text)))

    def _closing(self, start: int, open_: str, close: str) -> int:
        depth, pos, quote = 0, start, None
        text = self.expr
        while pos < len(text):
            ch = text[pos]
            if quote:
                if ch == "\\" and quote != "`":
                    pos += 1
                elif ch == quote:
                    quote = None
            elif ch in "\"'`":
                quote = ch
            elif ch == open_:
                depth += 1
            elif ch == close:
                depth -= 1
                if depth == 0:
                    return pos
            pos += 1
        raise PromQLError(f"unclosed {open_!r} at {start}")

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def take(self, text: str | None = None) -> Token:
        t = self.peek()
        if text is not None and t.text != text:
            raise PromQLError(f"expected {text!r} at {t.pos}, found {t.text or 'the end'!r}")
        self.i += 1
        return t

    def label_list(self) -> list[str]:
        self.take("(")
        names: list[str] = []
        while self.peek().text != ")":
            t = self.take()
            if t.kind == "ident":
                names.append(t.text)
            elif t.kind == "string":
                names.append(t.text[1:-1])
            elif t.kind == "variable":  # a Grafana variable: any label, not checked
                names.append(t.text)
            else:
                raise PromQLError(f"expected a label name at {t.pos}, found {t.text!r}")
            if self.peek().text == ",":
                self.take()
        self.take(")")
        return names

    # -- checks

    def need(self, names: list[str], value: Value, clause: str) -> None:
        if value.labels is None or value.scalar:
            return
        for name in names:
            if name not in value.labels and not name.startswith(("$", "[[")):
                if value.metric:
                    own = sorted(value.labels - self.scrape_labels)
                    has = f"{value.origin} has {', '.join(own) or 'no label of its own'}, " \
                          "besides the scrape's target labels"
                else:
                    has = f"{value.origin} keeps {', '.join(sorted(value.labels)) or 'no label'}"
                self.problems.append(f"`{clause}`: label `{name}` is not on the series it applies to ({has})")

    # -- grammar

    def parse(self) -> Value:
        self.tokenize()
        value = self.expression(0)
        if self.peek().kind != "end":
            raise PromQLError(f"unexpected {self.peek().text!r} at {self.peek().pos}")
        return value

    def expression(self, min_precedence: int) -> Value:
        left = self.unary()
        while True:
            t = self.peek()
            op = t.text.lower() if t.kind == "ident" else t.text
            if t.kind not in ("op", "ident") or op not in PRECEDENCE or PRECEDENCE[op] < min_precedence:
                return left
            self.take()
            bool_modifier = False
            matching: tuple[str, list[str]] | None = None
            grouping: tuple[str, list[str]] | None = None
            while self.peek().kind == "ident" and self.peek().text.lower() in (
                "bool", "on", "ignoring", "group_left", "group_right"
            ):
                word = self.take().text.lower()
                if word == "bool":
                    bool_modifier = True
                elif word in ("on", "ignoring"):
                    matching = (word, self.label_list())
                else:
                    grouping = (word, self.label_list() if self.peek().text == "(" else [])
            precedence = PRECEDENCE[op]
            right = self.expression(precedence if op == "^" else precedence + 1)
            left = self.binary(op, left, right, bool_modifier, matching, grouping)

    def binary(self, op, left: Value, right: Value, bool_modifier, matching, grouping) -> Value:
        if left.scalar and right.scalar:
            return Value(scalar=True)
        if left.scalar or right.scalar:
            return right if left.scalar else left
        if any(n.startswith(("$", "[[")) for n in (matching or ("", []))[1] + (grouping or ("", []))[1]):
            return Value()  # a Grafana variable among the labels: not known here
        if matching:
            word, names = matching
            if word == "on":
                self.need(names, left, f"on ({', '.join(names)})")
                self.need(names, right, f"on ({', '.join(names)})")
        if grouping:
            word, extra = grouping
            one, many = (right, left) if word == "group_left" else (left, right)
            self.need(extra, one, f"{word} ({', '.join(extra)})")
            labels = None if many.labels is None else many.labels | frozenset(extra)
            return Value(labels=labels, origin=many.origin)
        if op in SET_OPERATORS:
            if op == "or":
                if left.labels is None or right.labels is None:
                    return Value(origin=left.origin)
                return Value(labels=left.labels | right.labels, origin=f"{left.origin} or {right.origin}")
            return left
        if op in COMPARISONS and not bool_modifier:
            return left
        if matching and matching[0] == "on":
            return Value(labels=frozenset(matching[1]), origin=f"on ({', '.join(matching[1])})")
        if matching and left.labels is not None:
            return Value(labels=left.labels - frozenset(matching[1]), origin=left.origin)
        return left

    def unary(self) -> Value:
        if self.peek().text in ("-", "+"):
            self.take()
            return self.unary()
        return self.postfix(self.primary())

    def postfix(self, value: Value) -> Value:
        while True:
            t = self.peek()
            if t.kind == "range":
                self.take()
            elif t.kind == "ident" and t.text.lower() == "offset":
                self.take()
                if self.peek().text == "-":
                    self.take()
                self.take()
            elif t.text == "@":
                self.take()
                if self.peek().kind == "ident":  # start() / end()
                    self.take()
                    self.take("(")
                    self.take(")")
                else:
                    self.take()
            else:
                return value

    def primary(self) -> Value:
        t = self.peek()
        if t.kind in ("number", "duration", "string", "variable"):
            self.take()
            return Value(scalar=True)
        if t.text == "(":
            self.take()
            value = self.expression(0)
            self.take(")")
            return value
        if t.kind == "braces":
            self.take()
            return self.selector(None, t.text)
        if t.kind != "ident":
            raise PromQLError(f"unexpected {t.text or 'end'!r} at {t.pos}")
        name = t.text
        lowered = name.lower()
        if lowered in ("inf", "nan"):
            self.take()
            return Value(scalar=True)
        after = self.peek(1)
        if lowered in AGGREGATIONS and (
            after.text == "(" or (after.kind == "ident" and after.text.lower() in ("by", "without"))
        ):
            return self.aggregation()
        if after.text == "(":
            return self.call()
        self.take()
        if self.peek().kind == "braces":
            return self.selector(name, self.take().text)
        return self.selector(name, "")

    def selector(self, name: str | None, matchers: str) -> Value:
        names: list[str] = []
        pos = 0
        while pos < len(matchers) and matchers[pos:].strip():
            m = MATCHER.match(matchers, pos)
            if not m or m.end() == pos:
                raise PromQLError(f"cannot read the label matchers {{{matchers}}}")
            if m.group("op") is None:  # {"metric_name"} of Prometheus 3
                name = name or (m.group("quoted") or "")[1:-1] or m.group("name")
            elif m.group("name") and m.group("name") != "__name__":
                names.append(m.group("name"))
            elif m.group("quoted"):
                names.append(m.group("quoted")[1:-1])
            pos = m.end()
        if not name:
            return Value()
        labels = self.series_labels(name)
        value = Value(labels=labels, origin=name, metric=True)
        if names:
            self.need(names, value, f"{name}{{{matchers.strip()}}}")
        return value

    def arguments(self) -> list[Value]:
        self.take("(")
        args: list[Value] = []
        while self.peek().text != ")":
            args.append(self.expression(0))
            if self.peek().text == ",":
                self.take()
            elif self.peek().text != ")":
                raise PromQLError(f"expected ',' or ')' at {self.peek().pos}")
        self.take(")")
        return args

    def call(self) -> Value:
        name = self.take().text
        start = self.i
        args = self.arguments()
        vectors = [a for a in args if not a.scalar]
        lowered = name.lower()
        if lowered in SCALAR_FUNCTIONS:
            return Value(scalar=True)
        if lowered in NO_LABEL_FUNCTIONS:
            return Value(labels=frozenset(), origin=f"{name}()")
        if lowered in UNKNOWN_FUNCTIONS:
            return Value()
        if lowered == "histogram_quantile" and vectors:
            v = vectors[0]
            self.need(["le"], v, "histogram_quantile")
            labels = None if v.labels is None else v.labels - {"le"}
            return Value(labels=labels, origin=v.origin, metric=v.metric)
        if lowered in ("label_replace", "label_join"):
            strings = [t.text[1:-1] for t in self.tokens[start:self.i] if t.kind == "string"]
            v = vectors[0] if vectors else Value()
            if v.labels is None or not strings:
                return Value(origin=v.origin)
            return Value(labels=v.labels | {strings[0]}, origin=f"{name}(…)")
        if not vectors:
            return Value(scalar=True) if args else Value()
        return vectors[0]

    def aggregation(self) -> Value:
        op = self.take().text.lower()
        clause: tuple[str, list[str]] | None = None
        if self.peek().kind == "ident" and self.peek().text.lower() in ("by", "without"):
            clause = (self.take().text.lower(), self.label_list())
        start = self.i
        args = self.arguments()
        if self.peek().kind == "ident" and self.peek().text.lower() in ("by", "without"):
            clause = (self.take().text.lower(), self.label_list())
        if not args:
            raise PromQLError(f"{op}() without an argument")
        value = args[-1]
        extra: list[str] = []
        if op == "count_values":
            extra = [t.text[1:-1] for t in self.tokens[start:self.i] if t.kind == "string"][:1]
        if clause:
            word, names = clause
            text = f"{op} {word} ({', '.join(names)})"
            self.need(names, value, text)
            if op in SELECTING:
                return value
            if any(n.startswith(("$", "[[")) for n in names):
                return Value(origin=text)  # a variable: the labels are not known here
            if word == "by":
                return Value(labels=frozenset(names) | frozenset(extra), origin=text)
            if value.labels is None:
                return Value(origin=value.origin)
            return Value(labels=(value.labels - frozenset(names)) | frozenset(extra), origin=text)
        if op in SELECTING:
            return value
        return Value(labels=frozenset(extra), origin=f"{op}(…)")


def label_check(
    expr: str,
    series_labels: Callable[[str], frozenset[str] | None],
    scrape_labels: frozenset[str] = frozenset(),
) -> tuple[list[str], frozenset[str] | None]:
    """The problems of `expr` and the labels of its result (None: unknown). Raises
    PromQLError when it cannot be parsed. `scrape_labels` (the target labels every scraped
    series carries) are left out of the messages."""
    checker = Checker(expr, series_labels, scrape_labels)
    value = checker.parse()
    return checker.problems, (None if value.scalar else value.labels)
