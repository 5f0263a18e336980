"""Store-editable message templates, rendered in Jinja's immutable sandbox.

A store owner edits one :class:`TemplateContent` per (message type, channel): a subject, a
plain-text body, an HTML body for email, and for WhatsApp the name of a template Meta has
approved plus one Jinja expression per body parameter. :class:`TemplateRenderer` checks
them when they are saved (:meth:`TemplateRenderer.validate`) and fills them in for every
message (:meth:`TemplateRenderer.render`).

Context contract: the only names a template can use (``context.py`` builds them from the
store's own data as plain dicts, never ORM objects). A missing value renders empty, so a
typo never fails a delivery; ``order`` and ``fulfillment`` are empty for messages without
one. Amounts are decimal strings in major units (``"86.50"``); format them with
``{{ order.total|money(order.currency) }}``.

- ``store``: ``name``, ``url``, ``support_email``, ``postal_address`` (required in
  marketing email: :mod:`parley.messaging.postal_address`)
- ``customer``: ``first_name``, ``last_name``, ``email``, ``phone``
- ``order``: ``number`` (as the store shows it, ``"#1042"``), ``total``, ``currency``,
  ``status_url``, ``items`` (each ``title``, ``quantity``, ``price``, ``variant_title``),
  ``item_count``
- ``fulfillment``: ``tracking_company``, ``tracking_number``, ``tracking_url``,
  ``shipment_status``
- ``unsubscribe_url``: marketing messages only
- ``review_url``: the store's review page (Settings → General), empty when it has none
- ``body``: the agent's text, for replies

``order.items`` means the list even though dicts have an ``items`` method: keys win over
attributes here, so store owners never trip on Jinja's ``dict.items`` gotcha.

Rendering rules:

- Text fields (subject, text, WhatsApp parameters) are not escaped; HTML is autoescaped,
  so a customer named ``"><img src=x onerror=...>`` stays text in an email.
- The subject and each WhatsApp parameter are folded onto one line (no header injection;
  WhatsApp refuses parameters with newlines). Text bodies lose trailing whitespace and
  runs of blank lines.
- ``trim_blocks`` and ``lstrip_blocks`` are on: a block tag on a line of its own leaves no
  blank line, but a tag that ends a line of text also swallows that line's newline.
- ``{% include %}``, ``{% extends %}`` and ``{% import %}`` are refused: templates never
  name files (CVE-2024-56201).

Why so many limits: the Jinja sandbox stops attribute escapes, but not resource
exhaustion, and one store's template must not take a worker down for every store
(RELIABILITY.md I14). Output is streamed and cut at ``max_output_chars`` per field; loops,
calls and filters draw on a per-message step budget and a deadline; operators and the few
filters and string methods that can multiply a value's size check the result size before
computing it. No value may be larger than ``max_output_chars`` once walked, shared parts
counted each time they appear: a list nesting another twice, thirty levels deep, is
small in memory, but one ``==`` between two of them walks 2**30 leaves inside a single C
call, where neither the budget nor the deadline can look. So list, tuple and dict
literals, a call's arguments taken together and ``map``'s output are measured as they
are built, and every comparison, membership test, Jinja test, subscript and dict key
measures its operands and draws a step. Only reviewed filters and methods are
available, and none calls its
arguments (CVE-2024-56326); ``str.format`` is refused outright (CVE-2016-10745,
CVE-2019-10906, CVE-2025-27516).
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, MappingView
from contextlib import closing
from contextvars import ContextVar
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Self, cast

from jinja2 import (
    ChainableUndefined,
    Environment,
    Template,
    nodes,
    pass_context,
    pass_environment,
    pass_eval_context,
)
from jinja2 import exceptions as jinja_errors
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace
from jinja2.visitor import NodeTransformer

from parley.channels.base import TemplateRef
from parley.errors import Invalid

DEFAULT_MAX_OUTPUT_CHARS = 65_536
DEFAULT_CACHE_SIZE = 2_048
DEFAULT_MAX_STEPS = 100_000
DEFAULT_TIME_LIMIT = 1.0
# Integers from a template stay far below Python's 4300-digit str() limit.
MAX_INT_BITS = 4_096
# Text produced inside buffers (macros, set blocks) before it reaches the output.
_PRODUCED_CHARS_FACTOR = 16

_WHATSAPP_NAME = re.compile(r"[a-z0-9_]{1,512}")
_WHATSAPP_LANGUAGE = re.compile(r"[a-z]{2,3}(_[A-Za-z]{2,4})?")
_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d*)(?:\.(\*|\d*))?[hlL]?[a-zA-Z%]")
_BLANK_LINES = re.compile(r"\n{3,}")

# Filters a store template may use; each was read for calls on its arguments and for
# output that can outgrow its input. Left out: batch, center, indent, slice, wordwrap
# (size set by an argument), pprint, tojson, urlize, xmlattr (no use in a message),
# random (a message must render the same way twice).
_ALLOWED_FILTERS = frozenset(
    {
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape",
        "filesizeformat", "first", "float", "forceescape", "format", "groupby", "int",
        "items", "join", "last", "length", "list", "lower", "map", "max", "min", "reject",
        "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort",
        "string", "striptags", "sum", "title", "trim", "truncate", "unique", "upper",
        "urlencode", "wordcount",
    }
)  # fmt: skip

# Methods callable on plain values. Everything else on these types (ljust, zfill,
# translate, int.to_bytes, Decimal.scaleb...) could build huge values from small input.
_STR_METHODS = frozenset(
    {
        "capitalize", "casefold", "count", "endswith", "find", "index", "isalnum", "isalpha",
        "isascii", "isdecimal", "isdigit", "islower", "isnumeric", "isspace", "istitle",
        "isupper", "join", "lower", "lstrip", "partition", "removeprefix", "removesuffix",
        "replace", "rfind", "rindex", "rpartition", "rsplit", "rstrip", "split", "splitlines",
        "startswith", "strip", "swapcase", "title", "upper",
    }
)  # fmt: skip
_CALLABLE_ATTRIBUTES: tuple[tuple[type | tuple[type, ...], frozenset[str]], ...] = (
    (str, _STR_METHODS),
    ((list, tuple), frozenset({"count", "index"})),
    (dict, frozenset({"get", "items", "keys", "values"})),
    ((int, float, complex, Decimal, bytes, bytearray, set, frozenset, range), frozenset()),
)

_CURRENCY_SYMBOLS = {
    "AUD": "A$", "BRL": "R$", "CAD": "CA$", "EUR": "€", "GBP": "£", "INR": "₹", "JPY": "¥",
    "KRW": "₩", "MXN": "MX$", "NGN": "₦", "NZD": "NZ$", "PHP": "₱", "USD": "$", "ZAR": "R",
}  # fmt: skip
_CURRENCY_DECIMALS = {
    "BHD": 3, "CLP": 0, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3, "OMR": 3,
    "PYG": 0, "TND": 3, "UGX": 0, "VND": 0, "XAF": 0, "XOF": 0,
}  # fmt: skip
_MAX_MONEY_DIGITS = 15

_CLOCK_MASK = 15  # the deadline is checked on every sixteenth step
_LOOP_GUARD = "_parley_loop_guard"
_SIZE_GUARD = "_parley_size_guard"
_CONTEXT_KWARGS = frozenset({"_loop_vars", "_block_vars"})


class TemplateError(Invalid):
    """A template cannot be saved or rendered; ``reason`` is readable by a store owner."""

    def __init__(self, reason: str, *, field: str | None = None, line: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.line = line


@dataclass(frozen=True)
class TemplateContent:
    """The store-editable source of one (message type, channel)."""

    text: str
    subject: str | None = None
    html: str | None = None
    whatsapp_template: str | None = None
    whatsapp_language: str = "en"
    whatsapp_parameters: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-storable form."""
        return {
            "subject": self.subject,
            "text": self.text,
            "html": self.html,
            "whatsapp_template": self.whatsapp_template,
            "whatsapp_language": self.whatsapp_language,
            "whatsapp_parameters": list(self.whatsapp_parameters),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read the form :meth:`to_dict` wrote; raise :class:`TemplateError` if malformed."""
        text = data.get("text")
        if not isinstance(text, str):
            raise TemplateError("text must be a string", field="text")
        optional = {}
        for key in ("subject", "html", "whatsapp_template"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise TemplateError(f"{key} must be a string or null", field=key)
            optional[key] = value
        language = data.get("whatsapp_language", "en")
        if not isinstance(language, str):
            raise TemplateError("whatsapp_language must be a string", field="whatsapp_language")
        parameters = data.get("whatsapp_parameters") or []
        if not isinstance(parameters, list | tuple) or not all(
            isinstance(parameter, str) for parameter in parameters
        ):
            raise TemplateError(
                "whatsapp_parameters must be a list of strings", field="whatsapp_parameters"
            )
        return cls(
            text=text,
            subject=optional["subject"],
            html=optional["html"],
            whatsapp_template=optional["whatsapp_template"],
            whatsapp_language=language,
            whatsapp_parameters=tuple(parameters),
        )


@dataclass(frozen=True)
class RenderedContent:
    """A template filled in for one message."""

    text: str
    subject: str | None = None
    html: str | None = None
    template: TemplateRef | None = None


class _LimitError(Exception):
    """A template asked for more time, work or memory than one message may use."""


class _Budget:
    """What one message's rendering may spend; shared by all its fields."""

    def __init__(self, *, max_steps: int, max_chars: int, time_limit: float) -> None:
        self.max_steps = max_steps
        self.max_chars = max_chars
        self.time_limit = time_limit
        self.steps = 0
        self.chars = 0
        self.deadline = time.monotonic() + time_limit

    def spend(self, chars: int = 0) -> None:
        self.steps += 1
        self.chars += chars
        if self.steps > self.max_steps:
            raise _LimitError(f"template does too much work (over {self.max_steps} steps)")
        if self.chars > self.max_chars:
            raise _LimitError(f"template builds over {self.max_chars} characters of text")
        # A step's work is bounded by the size checks (a 64 KB replace is well under a
        # millisecond), so the clock is read every sixteenth step: most of a render's
        # steps are cheap, and a clock read cost as much as the rest of a step.
        if not self.steps & _CLOCK_MASK and time.monotonic() > self.deadline:
            raise _LimitError(f"template took longer than {self.time_limit:g} s to render")

    def iterate(self, iterable: Iterable[Any], chars_per_item: int) -> Iterator[Any]:
        for item in iterable:
            self.spend(chars_per_item)
            yield item


_BUDGET: ContextVar[_Budget | None] = ContextVar("parley_template_budget", default=None)


def _spend(chars: int = 0) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.spend(chars)


def _measure(value: Any, limit: int) -> int:
    """Size of ``value`` as text, roughly: characters plus one per container entry.

    Stops counting past ``limit``: a list nesting the same list twenty levels deep is tiny
    in memory yet a million times larger once turned into text, and this walk sees that.
    Every printed value, argument and comparison operand passes here, and a walk to the
    limit is one step, so the common types are told apart by exact type before the
    unions and abstract classes (``Mapping``...), which cost several times more.
    """
    kind = type(value)
    if kind is str:
        return len(value)
    if kind is int or kind is float or value is None:
        return 1
    total = 0
    pending = [value]
    while pending and total <= limit:
        item = pending.pop()
        kind = type(item)
        if kind is str:
            total += len(item)
        elif kind is list or kind is tuple:
            total += 1
            pending.extend(item)
        elif kind is dict:
            total += 1
            pending.extend(item.keys())
            pending.extend(item.values())
        elif kind is int or kind is float or item is None:
            total += 1
        else:
            total += _measure_other(item, pending)
    return total


def _measure_other(item: Any, pending: list[Any]) -> int:
    """:func:`_measure` for one item of a less common type; queues what it contains."""
    if isinstance(item, str):
        return len(item)
    if isinstance(item, list | tuple | set | frozenset | MappingView):
        pending.extend(cast("Iterable[Any]", item))
    elif isinstance(item, Mapping):
        pending.extend(item.keys())
        pending.extend(item.values())
    elif isinstance(item, Namespace):
        # A namespace hides its attributes from vars(); this is the one name it lets
        # through, and its repr shows every value.
        pending.extend(object.__getattribute__(item, "_Namespace__attrs").values())
    return 1


def _check_size(value: Any, limit: int) -> None:
    if _measure(value, limit) > limit:
        raise _LimitError(f"a value in the template is larger than {limit} characters")


def _check_arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any], limit: int) -> None:
    """Refuse a call or filter whose arguments are together larger than ``limit``.

    Together, not one by one: ``dict(a=x, b=x)``, ``cycler(x, x).items`` and a macro's
    ``varargs`` hold every argument in one value, which could otherwise be the limit times
    the number of arguments, and doubling that a few times builds by sharing a value no
    comparison finishes walking. Jinja adds the variables set in the enclosing loop or
    block to every call (``_loop_vars``, ``_block_vars``) for callables that read the
    context; they are not arguments and are left out.
    """
    total = 0
    arguments = (value for name, value in kwargs.items() if name not in _CONTEXT_KWARGS)
    for argument in (*args, *arguments):
        total += _measure(argument, limit - total)
        if total > limit:
            raise _LimitError(f"a value in the template is larger than {limit} characters")


def _check_estimate(size: int, limit: int) -> None:
    if size > limit:
        raise _LimitError(f"a value in the template would be larger than {limit} characters")


def _check_percent_format(fmt: str, limit: int) -> None:
    padding = 0
    for match in _PERCENT_SPEC.finditer(fmt):
        for number in match.group(1, 2):
            if number == "*":
                raise _LimitError("'*' widths are not allowed in format strings")
            padding += int(number or 0)
    _check_estimate(len(fmt) + padding, limit)


def _check_replace(text: str, old: str, new: str, count: Any, limit: int) -> None:
    hits = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    _check_estimate(len(text) + hits * max(len(new) - len(old), 0), limit)


def _check_join(items: list[Any], separator: str, limit: int) -> None:
    _check_estimate(_measure(items, limit) + len(separator) * max(len(items) - 1, 0), limit)


def _check_binop(operator: str, left: Any, right: Any, limit: int) -> None:
    if operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            _check_estimate(len(left) + len(right), limit)
        elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
            _check_estimate(_measure(left, limit) + _measure(right, limit), limit)
    elif operator == "*":
        if isinstance(left, int) and isinstance(right, int):
            if left.bit_length() + right.bit_length() > MAX_INT_BITS:
                raise _LimitError("a number in the template is too large")
            return
        sequence, times = (right, left) if isinstance(left, int) else (left, right)
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            _check_estimate(_measure(sequence, limit) * max(times, 0), limit)
    elif operator == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and abs(left) > 1
            and left.bit_length() * right > MAX_INT_BITS
        ):
            raise _LimitError("a number in the template is too large")
    elif operator == "%" and isinstance(left, str):
        _check_percent_format(left, limit)
        _check_size(right, limit)


def money(amount: Any, currency: Any = None) -> str:
    """Format an amount for customers: ``"1234.5"|money("EUR")`` is ``€1,234.50``.

    Takes decimal strings, ints, floats and Decimals; anything else (a missing value)
    renders empty. Reads its arguments as data only and never calls them.
    """
    try:
        if isinstance(amount, bool):
            return ""
        if isinstance(amount, Decimal):
            value = amount
        elif isinstance(amount, int):
            value = Decimal(amount)
        elif isinstance(amount, float):
            value = Decimal(repr(amount))
        elif isinstance(amount, str):
            value = Decimal(amount.strip().replace(",", ""))
        else:
            return ""
    except InvalidOperation:
        return ""
    if not value.is_finite() or value.adjusted() >= _MAX_MONEY_DIGITS:
        return ""
    code = currency.strip().upper() if isinstance(currency, str) else ""
    places = _CURRENCY_DECIMALS.get(code, 2)
    value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    digits = f"{abs(value):,.{places}f}"
    sign = "-" if value < 0 else ""
    symbol = _CURRENCY_SYMBOLS.get(code)
    if symbol is not None:
        return f"{sign}{symbol}{digits}"
    return f"{sign}{digits} {code}".rstrip()


def _loop_guard(iterable: Any, chars_per_item: Any = 0) -> Any:
    budget = _BUDGET.get()
    if budget is None:
        return iterable
    chars = chars_per_item if isinstance(chars_per_item, int) and chars_per_item > 0 else 0
    return budget.iterate(iterable, chars)


def _literal_chars(node: nodes.Node) -> int:
    total = 0
    for found in node.find_all((nodes.TemplateData, nodes.Const)):
        if isinstance(found, nodes.TemplateData):
            total += len(found.data)
        elif isinstance(found, nodes.Const) and isinstance(found.value, str):
            total += len(found.value)
    return total


def _size_guarded(node: nodes.Expr) -> nodes.Expr:
    # A constant's size is fixed by the source, which is itself capped.
    if isinstance(node, nodes.Const):
        return node
    return nodes.Filter(node, _SIZE_GUARD, [], [], None, None, lineno=node.lineno)


class _GuardInserter(NodeTransformer):
    """Make every loop draw on the budget and every value built or walked pass the guard.

    The size guard measures a value, shared parts counted each time they appear, and
    draws a step. It sees every list, tuple and dict literal as it is built, so a chain
    of ``{% set b = [a, a] %}`` is refused once it outgrows the limit; and every operand
    of ``~``, of a comparison or membership test (``==``, ``<``, ``in``...), every
    subscript and every dict key (each hashed), so a single Python operation never walks
    more than the limit. Walks under the limit still cost up to milliseconds, and a
    template can hold thousands without a loop, so each one also counts as a step.

    Method names follow Jinja's visitor, which dispatches on node class names.
    """

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        # Literal text repeated by a loop inside a macro or set block never passes the
        # output cap before it is joined, so each iteration is charged for it up front.
        literal = sum(_literal_chars(child) for child in node.body)
        node.iter = nodes.Filter(
            node.iter, _LOOP_GUARD, [nodes.Const(literal)], [], None, None, lineno=node.lineno
        )
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        node.nodes = [_size_guarded(operand) for operand in node.nodes]
        return node

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        node.expr = _size_guarded(node.expr)
        for operand in node.ops:
            operand.expr = _size_guarded(operand.expr)
        return node

    def visit_Getitem(self, node: nodes.Getitem) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        # A slice is compiled into Python's subscript syntax and takes only integers.
        if not isinstance(node.arg, nodes.Slice):
            node.arg = _size_guarded(node.arg)
        return node

    def visit_List(self, node: nodes.List) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return _size_guarded(node)

    def visit_Tuple(self, node: nodes.Tuple) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        # A tuple being assigned to ({% for key, value in ... %}) builds nothing.
        return _size_guarded(node) if node.ctx == "load" else node

    def visit_Dict(self, node: nodes.Dict) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        for pair in node.items:
            pair.key = _size_guarded(pair.key)
        return _size_guarded(node)


class _GuardedCodeGenerator(CodeGenerator):
    def visit_Template(  # noqa: N802
        self, node: nodes.Template, frame: Frame | None = None
    ) -> None:
        _GuardInserter().visit(node)
        node.set_environment(self.environment)
        super().visit_Template(node, frame)


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, closed further: see the module docstring."""

    code_generator_class = _GuardedCodeGenerator
    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, autoescape: bool, max_value_chars: int) -> None:
        super().__init__(
            autoescape=autoescape,
            undefined=ChainableUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=self._finalize,
            auto_reload=False,
        )
        self.max_value_chars = max_value_chars
        self.globals.pop("lipsum", None)
        self.filters = self._reviewed_filters()
        # Tests are called like filters: ``a is eq b`` and ``a is in b`` compare their
        # arguments as ``==`` and ``in`` do.
        tests = cast("dict[str, Callable[..., Any]]", self.tests)
        self.tests = {name: self._metered(test) for name, test in tests.items()}

    def _reviewed_filters(self) -> dict[str, Callable[..., Any]]:
        limit = self.max_value_chars
        join, replace, percent_format, map_, sum_ = (
            JINJA_FILTERS["join"],
            JINJA_FILTERS["replace"],
            JINJA_FILTERS["format"],
            JINJA_FILTERS["map"],
            JINJA_FILTERS["sum"],
        )

        @pass_eval_context
        def guarded_join(
            eval_ctx: EvalContext, value: Any, d: Any = "", attribute: Any = None
        ) -> Any:
            items = list(value)
            _check_join(items, str(d), limit)
            return join(eval_ctx, items, d, attribute)

        @pass_eval_context
        def guarded_replace(
            eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: Any = None
        ) -> Any:
            _check_replace(str(s), str(old), str(new), count, limit)
            return replace(eval_ctx, s, old, new, count)

        def guarded_format(value: Any, *args: Any, **kwargs: Any) -> Any:
            _check_percent_format(str(value), limit)
            return percent_format(value, *args, **kwargs)

        @pass_context
        def guarded_map(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
            # The one filter that repeats an argument once per item (default=, or the
            # arguments of the filter it applies), so its output can be the limit times
            # the item count: it is built and measured as it goes (counted as _measure
            # counts a list) instead of handed on lazily.
            items = []
            size = 1
            for item in map_(context, value, *args, **kwargs):
                size += _measure(item, limit - size)
                if size > limit:
                    raise _LimitError(f"a value in the template is larger than {limit} characters")
                items.append(item)
            return items

        def guarded_sum(
            environment: Environment, iterable: Any, attribute: Any = None, start: Any = 0
        ) -> Any:
            # Summed from a list or a tuple, ``sum`` copies the running total at every
            # item: a few thousand items took seconds inside one call, where neither the
            # step budget nor the deadline looks. A message adds numbers.
            if not isinstance(start, int | float | Decimal):
                raise _LimitError("sum adds numbers; it cannot start from a list or text")
            return sum_(environment, iterable, attribute, start)

        reviewed: dict[str, Callable[..., Any]] = {
            name: JINJA_FILTERS[name] for name in sorted(_ALLOWED_FILTERS)
        }
        reviewed.update(
            join=guarded_join,
            replace=guarded_replace,
            format=guarded_format,
            map=guarded_map,
            sum=pass_environment(guarded_sum),
            money=money,
        )
        filters = {name: self._metered(func) for name, func in reviewed.items()}
        filters[_LOOP_GUARD] = _loop_guard
        filters[_SIZE_GUARD] = self._size_guard
        return filters

    def _metered(self, func: Callable[..., Any]) -> Callable[..., Any]:
        limit = self.max_value_chars
        # Jinja passes its context, eval context or environment first to a function marked
        # for it (map, select, sort...). That is not template data, and a context holds
        # every variable, so measuring it refused map() in any template with a large one.
        first = 0 if getattr(func, "jinja_pass_arg", None) is None else 1

        @functools.wraps(func)  # keeps Jinja's pass_context/pass_eval_context marker
        def metered(*args: Any, **kwargs: Any) -> Any:
            _spend()
            _check_arguments(args[first:], kwargs, limit)
            return func(*args, **kwargs)

        return metered

    def _size_guard(self, value: Any) -> Any:
        _spend()
        _check_size(value, self.max_value_chars)
        return value

    def _finalize(self, value: Any) -> Any:
        size = _measure(value, self.max_value_chars)
        if size > self.max_value_chars:
            raise _LimitError(
                f"a value in the template is larger than {self.max_value_chars} characters"
            )
        _spend(size)
        return value

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if callable(value):
            for types, allowed in _CALLABLE_ATTRIBUTES:
                if isinstance(obj, types):
                    return attr in allowed
        return True

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        # The stock sandbox returns an undefined that only fails when called or printed;
        # with a lenient undefined it would print as "" and hide the attempt.
        raise jinja_errors.SecurityError(
            f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe"
        )

    def wrap_str_format(self, value: Any) -> None:
        if super().wrap_str_format(value) is not None:
            raise jinja_errors.SecurityError(
                "str.format is not allowed in templates; use the format filter"
            )

    def getattr(self, obj: Any, attribute: str) -> Any:
        # The context is plain dicts: a dict is told apart before the abstract Mapping,
        # whose isinstance check costs several times more.
        if type(obj) is dict or isinstance(obj, Mapping):
            try:
                return obj[attribute]
            except (KeyError, TypeError):
                pass
        return super().getattr(obj, attribute)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        # The size checks walk lists, so each operator is a step, as each walk is.
        _spend()
        _check_binop(operator, left, right, self.max_value_chars)
        return super().call_binop(context, operator, left, right)

    def call(
        __self,  # noqa: N805 - mirrors the sandbox: keyword arguments may be named "self"
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        limit = __self.max_value_chars
        _spend()
        _check_arguments(args, kwargs, limit)
        owner = getattr(__obj, "__self__", None)
        name = getattr(__obj, "__name__", None)
        if isinstance(owner, str) and name == "join" and args:
            items = list(args[0])
            _check_join(items, owner, limit)
            args = (items, *args[1:])
        elif isinstance(owner, str) and name == "replace" and len(args) >= 2:
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            _check_replace(owner, str(args[0]), str(args[1]), count, limit)
        return super().call(__context, __obj, *args, **kwargs)


_FORBIDDEN_TAGS: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.Extends, "extends"),
    (nodes.Include, "include"),
    (nodes.Import, "import"),
    (nodes.FromImport, "from ... import"),
)

_RUNTIME_ERRORS = (
    jinja_errors.TemplateError,
    TypeError,
    ValueError,
    ArithmeticError,
    LookupError,
    AttributeError,
    RecursionError,
)


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _tidy_text(value: str) -> str:
    lines = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return _BLANK_LINES.sub("\n\n", "\n".join(line.rstrip() for line in lines)).strip()


class TemplateRenderer:
    """Validates and renders :class:`TemplateContent`; build one and keep it.

    Thread-safe. Compiled templates are cached by source (LRU), one cache per
    environment. Limits apply per message: ``max_output_chars`` to each rendered field,
    ``max_steps`` (loop iterations, calls, filters) and ``time_limit`` (seconds) to all
    fields together.
    """

    def __init__(
        self,
        *,
        max_output_chars: int = DEFAULT_MAX_OUTPUT_CHARS,
        cache_size: int = DEFAULT_CACHE_SIZE,
        max_steps: int = DEFAULT_MAX_STEPS,
        time_limit: float = DEFAULT_TIME_LIMIT,
    ) -> None:
        self.max_output_chars = max_output_chars
        self.max_steps = max_steps
        self.time_limit = time_limit
        self._text_env = _Sandbox(autoescape=False, max_value_chars=max_output_chars)
        self._html_env = _Sandbox(autoescape=True, max_value_chars=max_output_chars)
        self._compile_text = functools.lru_cache(maxsize=cache_size)(
            functools.partial(self._compile, self._text_env)
        )
        self._compile_html = functools.lru_cache(maxsize=cache_size)(
            functools.partial(self._compile, self._html_env)
        )

    def validate(
        self, content: TemplateContent, *, sample_context: Mapping[str, Any] | None = None
    ) -> None:
        """Raise :class:`TemplateError` if ``content`` cannot be saved.

        Checks syntax (the reason names the field and line), refused tags, unknown filters
        and the WhatsApp template name and language. With ``sample_context`` it also
        renders once, so sandbox violations and limits surface at save time.
        """
        for field, source, html in self._fields(content):
            self._template(field, source, html=html)
        if content.whatsapp_template is not None:
            if not _WHATSAPP_NAME.fullmatch(content.whatsapp_template):
                raise TemplateError(
                    "whatsapp_template must be lowercase letters, digits and underscores",
                    field="whatsapp_template",
                )
            if not _WHATSAPP_LANGUAGE.fullmatch(content.whatsapp_language):
                raise TemplateError(
                    "whatsapp_language must be a language code such as en or en_US",
                    field="whatsapp_language",
                )
        if sample_context is not None:
            self.render(content, sample_context)

    def render(self, content: TemplateContent, context: Mapping[str, Any]) -> RenderedContent:
        """Fill ``content`` in with ``context``; raise :class:`TemplateError` if it fails."""
        variables = dict(context)
        budget = _Budget(
            max_steps=self.max_steps,
            max_chars=self.max_output_chars * _PRODUCED_CHARS_FACTOR,
            time_limit=self.time_limit,
        )
        token = _BUDGET.set(budget)
        try:
            subject = None
            if content.subject is not None:
                subject = _one_line(self._render_field("subject", content.subject, variables))
            text = _tidy_text(self._render_field("text", content.text, variables))
            html = None
            if content.html is not None:
                html = self._render_field("html", content.html, variables, html=True)
            template = None
            if content.whatsapp_template is not None:
                parameters = tuple(
                    _one_line(
                        self._render_field(f"whatsapp_parameters[{index}]", source, variables)
                    )
                    for index, source in enumerate(content.whatsapp_parameters)
                )
                template = TemplateRef(
                    name=content.whatsapp_template,
                    language=content.whatsapp_language,
                    body_parameters=parameters,
                )
        finally:
            _BUDGET.reset(token)
        return RenderedContent(text=text, subject=subject, html=html, template=template)

    @staticmethod
    def _fields(content: TemplateContent) -> Iterator[tuple[str, str, bool]]:
        if content.subject is not None:
            yield "subject", content.subject, False
        yield "text", content.text, False
        if content.html is not None:
            yield "html", content.html, True
        for index, source in enumerate(content.whatsapp_parameters):
            yield f"whatsapp_parameters[{index}]", source, False

    def _compile(self, env: _Sandbox, source: str) -> Template:
        if len(source) > self.max_output_chars:
            raise TemplateError(f"template source exceeds {self.max_output_chars} characters")
        tree = env.parse(source)
        for node_type, tag in _FORBIDDEN_TAGS:
            found = tree.find(node_type)
            if found is not None:
                raise jinja_errors.TemplateSyntaxError(
                    f"{{% {tag} %}} is not supported in message templates", found.lineno
                )
        template = env.from_string(tree)
        # A template's globals are a ChainMap over the environment's, which every render
        # copies key by key in Python (about half the time of a one-line field). Nothing
        # changes an environment's globals after it is made, so a plain dict reads the same.
        template.globals = dict(template.globals)
        return template

    def _template(self, field: str, source: str, *, html: bool) -> Template:
        compile_source = self._compile_html if html else self._compile_text
        try:
            return compile_source(source)
        except TemplateError as exc:
            raise TemplateError(f"{field}: {exc.reason}", field=field) from exc
        except jinja_errors.TemplateSyntaxError as exc:
            raise TemplateError(
                f"{field}, line {exc.lineno}: {exc.message}", field=field, line=exc.lineno
            ) from exc
        except (RecursionError, SyntaxError, _LimitError) as exc:
            raise TemplateError(f"{field}: template is too complex", field=field) from exc

    def _render_field(
        self, field: str, source: str, variables: dict[str, Any], *, html: bool = False
    ) -> str:
        template = self._template(field, source, html=html)
        parts: list[str] = []
        size = 0
        try:
            # generate() is a generator; closing it stops the render at the output cap.
            with closing(
                cast("Generator[str, None, None]", template.generate(variables))
            ) as chunks:
                for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_output_chars:
                        raise TemplateError(
                            f"template output exceeds {self.max_output_chars} characters",
                            field=field,
                        )
                    parts.append(chunk)
        except _LimitError as exc:
            raise TemplateError(f"{field}: {exc}", field=field) from exc
        except jinja_errors.SecurityError as exc:
            raise TemplateError(
                f"{field}: not allowed in a template: {exc.message}", field=field
            ) from exc
        except _RUNTIME_ERRORS as exc:
            raise TemplateError(f"{field}: {exc}", field=field) from exc
        return "".join(parts)
