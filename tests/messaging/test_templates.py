"""Store-editable templates: exact output, escaping, leniency, limits and the sandbox."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from parley.channels.base import ChannelKind, TemplateRef
from parley.messaging.default_templates import DEFAULT_TEMPLATES, default_template
from parley.messaging.templates import (
    RenderedContent,
    TemplateContent,
    TemplateError,
    TemplateRenderer,
    money,
)
from parley.messaging.types import MessageType

XSS_NAME = '"><img src=x onerror=alert(1)>'


def sample_context() -> dict[str, Any]:
    return {
        "store": {
            "name": "Juniper & Pine",
            "url": "https://juniperandpine.example",
            "support_email": "hello@juniperandpine.example",
        },
        "customer": {
            "first_name": "Maya",
            "last_name": "Okafor",
            "email": "maya@example.com",
            "phone": "+447911123456",
        },
        "order": {
            "number": "#1042",
            "total": "86.50",
            "currency": "EUR",
            "status_url": "https://juniperandpine.example/orders/1042",
            "items": [
                {
                    "title": "Linen Throw Blanket",
                    "quantity": 1,
                    "price": "64.00",
                    "variant_title": "Sage",
                },
                {"title": "Beeswax Candle", "quantity": 2, "price": "11.25", "variant_title": None},
            ],
            "item_count": 3,
        },
        "fulfillment": {
            "tracking_company": "DHL Express",
            "tracking_number": "JD014600006281",
            "tracking_url": "https://www.dhl.com/track?id=JD014600006281",
            "shipment_status": "in_transit",
        },
        "review_url": "https://juniperandpine.example/reviews/1042",
    }


@pytest.fixture(scope="module")
def renderer() -> TemplateRenderer:
    return TemplateRenderer()


def render_text(
    renderer: TemplateRenderer, source: str, context: dict[str, Any] | None = None
) -> str:
    return renderer.render(
        TemplateContent(text=source), sample_context() if context is None else context
    ).text


def test_order_confirmation_email_renders_exact_subject_and_items(renderer):
    # Given the built-in order confirmation email and a typical order
    content = DEFAULT_TEMPLATES[(MessageType.ORDER_CONFIRMATION, ChannelKind.EMAIL)]

    # When it is rendered
    rendered = renderer.render(content, sample_context())

    # Then the subject is exact and the text lists each line with its line total
    assert rendered.subject == "Your Juniper & Pine order #1042 is confirmed"
    assert rendered.text == (
        "Hi Maya,\n\n"
        "Thank you for your order! We've received order #1042 and we're getting it ready. "
        "We'll let you know as soon as it's on its way.\n\n"
        "- Linen Throw Blanket (Sage) x 1: €64.00\n"
        "- Beeswax Candle x 2: €22.50\n\n"
        "Total: €86.50\n\n"
        "View your order: https://juniperandpine.example/orders/1042\n\n"
        "Questions? Just reply to this email or write to hello@juniperandpine.example.\n\n"
        "Juniper & Pine\n"
        "https://juniperandpine.example"
    )
    assert rendered.template is None
    assert rendered.html is not None
    assert '<div style="font-weight:600;">Beeswax Candle</div>' in rendered.html
    assert "Juniper &amp; Pine" in rendered.html


def test_dispatch_sms_renders_exact_text(renderer):
    content = DEFAULT_TEMPLATES[(MessageType.DISPATCH, ChannelKind.SMS)]

    rendered = renderer.render(content, sample_context())

    assert rendered == RenderedContent(
        text=(
            "Juniper & Pine: Hi Maya, your order #1042 is on its way with DHL Express! "
            "Track it: https://www.dhl.com/track?id=JD014600006281"
        )
    )


def test_dispatch_sms_without_tracking_link_gives_the_number(renderer):
    context = sample_context()
    context["fulfillment"]["tracking_url"] = ""
    content = DEFAULT_TEMPLATES[(MessageType.DISPATCH, ChannelKind.SMS)]

    rendered = renderer.render(content, context)

    assert rendered.text == (
        "Juniper & Pine: Hi Maya, your order #1042 is on its way with DHL Express! "
        "Tracking number: JD014600006281"
    )


def test_whatsapp_parameters_render_in_order_into_template_ref(renderer):
    content = DEFAULT_TEMPLATES[(MessageType.DISPATCH, ChannelKind.WHATSAPP)]

    rendered = renderer.render(content, sample_context())

    assert rendered.template == TemplateRef(
        name="order_dispatched",
        language="en",
        body_parameters=(
            "Maya",
            "#1042",
            "DHL Express",
            "https://www.dhl.com/track?id=JD014600006281",
        ),
    )


def test_whatsapp_parameters_fold_whitespace_and_fall_back_when_empty(renderer):
    # WhatsApp refuses parameters with newlines and empty ones.
    context = sample_context()
    context["customer"]["first_name"] = ""
    context["fulfillment"]["tracking_company"] = "DHL\n  Express"
    content = DEFAULT_TEMPLATES[(MessageType.DISPATCH, ChannelKind.WHATSAPP)]

    rendered = renderer.render(content, context)

    assert rendered.template is not None
    assert rendered.template.body_parameters[:3] == ("there", "#1042", "DHL Express")


def test_html_escapes_customer_name_while_text_keeps_it_verbatim(renderer):
    context = sample_context()
    context["customer"]["first_name"] = XSS_NAME
    content = TemplateContent(
        subject="Hi {{ customer.first_name }}",
        text="Hi {{ customer.first_name }}",
        html="<p>Hi {{ customer.first_name }}</p>",
    )

    rendered = renderer.render(content, context)

    assert rendered.html == "<p>Hi &#34;&gt;&lt;img src=x onerror=alert(1)&gt;</p>"
    assert rendered.text == f"Hi {XSS_NAME}"
    assert rendered.subject == f"Hi {XSS_NAME}"


def test_subject_is_folded_onto_one_line(renderer):
    # A newline in a subject would let customer data add mail headers.
    context = sample_context()
    context["customer"]["first_name"] = "Maya\r\nBcc: someone@example.com"

    rendered = renderer.render(
        TemplateContent(subject="Hello {{ customer.first_name }}", text="x"), context
    )

    assert rendered.subject == "Hello Maya Bcc: someone@example.com"


def test_missing_variables_render_empty(renderer):
    source = "Hi {{ customer.nickname }}{{ nothing.at.all }}|{{ order.items|length }}|{{ gone[0] }}"

    assert render_text(renderer, source) == "Hi |2|"
    assert render_text(renderer, "Order {{ order.number }} for {{ customer.first_name }}.", {}) == (
        "Order  for ."
    )


def test_order_items_means_the_list_not_the_dict_method(renderer):
    source = "{% for item in order.items %}{{ item.title }};{% endfor %}"

    assert render_text(renderer, source) == "Linen Throw Blanket;Beeswax Candle;"


def test_text_loses_trailing_whitespace_and_extra_blank_lines(renderer):
    source = "Hello   \n\n\n\n\nWorld \t\n\n\n"

    assert render_text(renderer, source) == "Hello\n\nWorld"


def test_syntax_error_names_the_field_and_line(renderer):
    content = TemplateContent(text="Hello\n\n{{ customer.first_name }\n")

    with pytest.raises(TemplateError) as excinfo:
        renderer.validate(content)

    assert excinfo.value.reason == "text, line 3: unexpected '}'"
    assert excinfo.value.field == "text"
    assert excinfo.value.line == 3


def test_unknown_filter_fails_validation_with_line(renderer):
    content = TemplateContent(text="ok", html="<p>\n{{ customer.first_name|center(80) }}</p>")

    with pytest.raises(TemplateError) as excinfo:
        renderer.validate(content)

    assert excinfo.value.reason == "html, line 2: No filter named 'center'."


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("{% include 'secrets.txt' %}", id="include_case"),
        pytest.param("{% extends 'base.html' %}", id="extends_case"),
        pytest.param("{% import 'macros.html' as m %}", id="import_case"),
    ],
)
def test_templates_cannot_name_files(renderer, source):
    with pytest.raises(TemplateError) as excinfo:
        renderer.validate(TemplateContent(text=source))

    assert excinfo.value.reason.startswith("text, line 1: {% ")
    assert excinfo.value.reason.endswith(" %} is not supported in message templates")


def test_output_cap_stops_rendering_early():
    # Given a renderer with the default cap and a context that counts how far it is read
    renderer = TemplateRenderer()
    consumed = 0

    def chunks() -> Iterator[str]:
        nonlocal consumed
        for _ in range(1_000):
            consumed += 1
            yield "x" * 1_000

    # When a template would produce 1,000,000 characters
    with pytest.raises(TemplateError) as excinfo:
        render_text(
            renderer, "{% for chunk in chunks %}{{ chunk }}{% endfor %}", {"chunks": chunks()}
        )

    # Then it fails with the cap, having read only as far as the cap
    assert excinfo.value.reason == "template output exceeds 65536 characters"
    assert consumed == 66


def test_output_cap_is_configurable():
    renderer = TemplateRenderer(max_output_chars=100)

    assert render_text(renderer, "{{ 'x' * 100 }}") == "x" * 100
    with pytest.raises(TemplateError) as excinfo:
        render_text(renderer, "{{ 'x' * 50 }}{{ 'y' * 51 }}")
    assert excinfo.value.reason == "template output exceeds 100 characters"


def test_templates_see_the_sandbox_globals_without_lipsum_however_often_rendered():
    renderer = TemplateRenderer()
    source = "{{ range(3)|list }}|{{ joiner is defined }}|{{ lipsum is defined }}"

    # The first render compiles; the second reuses the cached template and its globals.
    assert [render_text(renderer, source) for _ in range(2)] == ["[0, 1, 2]|True|False"] * 2
    with pytest.raises(TemplateError) as excinfo:
        render_text(renderer, "{{ lipsum(1) }}")
    assert excinfo.value.reason == "text: 'lipsum' is undefined"


def test_work_inside_a_template_is_bounded():
    # One step to call range(), one per iteration.
    renderer = TemplateRenderer(max_steps=11)

    assert render_text(renderer, "{% for i in range(10) %}{% endfor %}done") == "done"
    with pytest.raises(TemplateError) as excinfo:
        render_text(renderer, "{% for i in range(11) %}{% endfor %}done")
    assert excinfo.value.reason == "text: template does too much work (over 11 steps)"


def test_render_time_is_bounded():
    renderer = TemplateRenderer(time_limit=0.05)
    source = (
        "{% set s = 'x' * 60000 %}"
        "{% for i in range(100000) %}{% set t = s|replace('x', 'y')|upper %}{% endfor %}"
    )

    with pytest.raises(TemplateError) as excinfo:
        render_text(renderer, source)

    assert excinfo.value.reason == "text: template took longer than 0.05 s to render"


def test_text_built_inside_set_blocks_is_bounded(renderer):
    source = "{% set x %}{% for i in range(100000) %}" + "y" * 20 + "{% endfor %}{% endset %}ok"

    with pytest.raises(TemplateError) as excinfo:
        render_text(renderer, source)

    assert excinfo.value.reason == "text: template builds over 1048576 characters of text"


UNSAFE = "text: not allowed in a template: "
TOO_LARGE = "text: a value in the template would be larger than 65536 characters"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        pytest.param(
            "{{ ''.__class__.__mro__[1].__subclasses__() }}",
            UNSAFE + "access to attribute '__class__' of 'str' object is unsafe",
            id="subclasses_case",
        ),
        pytest.param(
            "{{ ''.__class__ }}",
            UNSAFE + "access to attribute '__class__' of 'str' object is unsafe",
            id="bare_dunder_is_not_silently_empty_case",
        ),
        pytest.param(
            '{{ "{0.__class__}".format(1) }}',
            UNSAFE + "str.format is not allowed in templates; use the format filter",
            id="str_format_case",
        ),
        pytest.param(
            "{{ ''|attr('format') }}",
            UNSAFE + "str.format is not allowed in templates; use the format filter",
            id="attr_format_case",
        ),
        pytest.param(
            "{{ (''|attr('format'))('{0.__class__.__init__.__globals__}', 1) }}",
            UNSAFE + "str.format is not allowed in templates; use the format filter",
            id="attr_format_call_case",
        ),
        pytest.param(
            "{{ ''|attr('format_map') }}",
            UNSAFE + "str.format is not allowed in templates; use the format filter",
            id="attr_format_map_case",
        ),
        pytest.param(
            "{{ cycler.__init__.__globals__ }}",
            UNSAFE + "access to attribute '__init__' of 'type' object is unsafe",
            id="cycler_globals_case",
        ),
        pytest.param(
            "{{ order['items'].append(1) }}",
            UNSAFE + "access to attribute 'append' of 'list' object is unsafe",
            id="list_append_case",
        ),
        pytest.param(
            "{{ (1).to_bytes(10**9, 'big') }}",
            UNSAFE + "access to attribute 'to_bytes' of 'int' object is unsafe",
            id="int_to_bytes_case",
        ),
        pytest.param(
            "{{ 'x'.ljust(10**9) }}",
            UNSAFE + "access to attribute 'ljust' of 'str' object is unsafe",
            id="str_padding_case",
        ),
        pytest.param(
            "{{ range(10**9)|list }}",
            "text: Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).",
            id="max_range_case",
        ),
        pytest.param("{{ 'x' * 10**9 }}", TOO_LARGE, id="string_repeat_case"),
        pytest.param("{{ 'abc'|replace('', 'y' * 60000) }}", TOO_LARGE, id="replace_case"),
        pytest.param("{{ '%999999999s'|format(1) }}", TOO_LARGE, id="format_width_case"),
        pytest.param("{{ '%999999999s' % 1 }}", TOO_LARGE, id="percent_width_case"),
        pytest.param("{{ range(100000)|join('x' * 100) }}", TOO_LARGE, id="join_case"),
        pytest.param(
            "{{ 7 ** 100000 }}", "text: a number in the template is too large", id="power_case"
        ),
        pytest.param(
            "{% set a = [1, 2, 3, 4] %}{% set b = [a, a, a, a] %}{% set c = [b, b, b, b] %}"
            "{% set d = [c, c, c, c] %}{% set e = [d, d, d, d] %}{% set f = [e, e, e, e] %}"
            "{% set g = [f, f, f, f] %}{% set h = [g, g, g, g] %}{{ '' ~ h }}",
            "text: a value in the template is larger than 65536 characters",
            id="nested_list_to_text_case",
        ),
        pytest.param("{{ lipsum(1000000) }}", "text: 'lipsum' is undefined", id="no_lipsum_case"),
    ],
)
def test_sandbox_breakouts_and_bombs_raise_template_error(renderer, source, reason):
    with pytest.raises(TemplateError) as excinfo:
        render_text(renderer, source)

    assert excinfo.value.reason == reason
    assert excinfo.value.field == "text"


def test_sandbox_violation_fails_validation_with_a_sample_context(renderer):
    content = TemplateContent(text="Hi {{ customer.__class__ }}")

    renderer.validate(content)  # the syntax is fine
    with pytest.raises(TemplateError) as excinfo:
        renderer.validate(content, sample_context=sample_context())

    assert excinfo.value.reason == (
        UNSAFE + "access to attribute '__class__' of 'dict' object is unsafe"
    )


# A value built by sharing: each level holds the level below twice, so it is tiny in memory
# and 2**depth leaves long once walked. Comparing two equal ones built apart walks every leaf
# inside one C call (identical objects short-circuit, so the sinks get separate builds). At
# depth 21 an unguarded walk takes about a tenth of a second, so these tests stay quick even
# against a sandbox without the guards, and only the refusal can make them pass.
SHARING_DEPTH = 21
TOO_BIG = "text: a value in the template is larger than 65536 characters"


def doubled(depth: int, *, pair: Any = list) -> Any:
    value = pair(("x",))
    for _ in range(depth):
        value = pair((value, value))
    return value


def doubling_chain(name: str, pair: str, depth: int = SHARING_DEPTH) -> str:
    """``{% set a1 = [a0, a0] %}``... ``pair`` is the literal with ``{}`` for the previous level."""
    levels = "".join(
        f"{{% set {name}{level + 1} = {pair.format(f'{name}{level}')} %}}" for level in range(depth)
    )
    return f"{{% set {name}0 = ['x'] %}}{levels}"


def chain_sink(sink: str) -> str:
    return sink.replace("{a}", f"a{SHARING_DEPTH}").replace("{b}", f"b{SHARING_DEPTH}")


@pytest.mark.parametrize(
    "source",
    [
        pytest.param(
            "{% set ns = namespace(a=['x'], b=['x']) %}"
            f"{{% for i in range({SHARING_DEPTH}) %}}"
            "{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}"
            "{{ ns.a == ns.b }}",
            id="namespace_loop_case",
        ),
        pytest.param(
            doubling_chain("a", "[{0}, {0}]")
            + doubling_chain("b", "[{0}, {0}]")
            + chain_sink("{{ {a} == {b} }}"),
            id="list_literal_chain_case",
        ),
        pytest.param(
            doubling_chain("a", "({0}, {0})")
            + doubling_chain("b", "({0}, {0})")
            + chain_sink("{{ {a} in ({b},) }}"),
            id="tuple_literal_chain_case",
        ),
        pytest.param(
            doubling_chain("a", "{{'l': {0}, 'r': {0}}}")
            + doubling_chain("b", "{{'l': {0}, 'r': {0}}}")
            + chain_sink("{{ {a} != {b} }}"),
            id="dict_literal_chain_case",
        ),
        pytest.param(
            doubling_chain("a", "dict(l={0}, r={0})")
            + doubling_chain("b", "dict(l={0}, r={0})")
            + chain_sink("{{ {a} is eq {b} }}"),
            id="dict_call_chain_case",
        ),
        pytest.param(
            "{% set ns = namespace(a=['x'], b=['x']) %}"
            "{% macro keep(side) %}{% if side == 'a' %}{% set ns.a = varargs %}"
            "{% else %}{% set ns.b = varargs %}{% endif %}{% endmacro %}"
            f"{{% for i in range({SHARING_DEPTH}) %}}"
            "{{ keep('a', ns.a, ns.a) }}{{ keep('b', ns.b, ns.b) }}{% endfor %}"
            "{{ ns.a < ns.b }}",
            id="macro_varargs_case",
        ),
        pytest.param(
            # 14 levels stay under the limit; 2,000 copies of them do not.
            doubling_chain("a", "({0}, {0})", depth=14) + "{% set ns = namespace(x=a14) %}"
            "{{ range(2000)|map(attribute='missing', default=ns.x)|unique|first|length }}",
            id="map_default_repeats_a_value_case",
        ),
    ],
)
def test_a_comparison_of_values_built_by_sharing_is_refused_not_hung(renderer, source):
    # Given a template that builds two equal values by sharing and then walks them
    # When it is rendered
    with pytest.raises(TemplateError) as excinfo:
        render_text(renderer, source)

    # Then the value is refused where it is built, long before anything walks it
    assert excinfo.value.reason == TOO_BIG
    assert excinfo.value.field == "text"


@pytest.mark.parametrize(
    ("source", "context"),
    [
        pytest.param(
            "{{ a == b }}", {"a": doubled(SHARING_DEPTH), "b": doubled(SHARING_DEPTH)}, id="eq_case"
        ),
        pytest.param(
            "{{ a != b }}", {"a": doubled(SHARING_DEPTH), "b": doubled(SHARING_DEPTH)}, id="ne_case"
        ),
        pytest.param(
            "{{ 'x' < a <= b }}",
            {"a": doubled(SHARING_DEPTH), "b": doubled(SHARING_DEPTH)},
            id="chained_case",
        ),
        pytest.param(
            "{{ a in b }}",
            {"a": doubled(SHARING_DEPTH), "b": [doubled(SHARING_DEPTH)]},
            id="in_case",
        ),
        pytest.param(
            "{{ a is eq b }}",
            {"a": doubled(SHARING_DEPTH), "b": doubled(SHARING_DEPTH)},
            id="eq_test_case",
        ),
        pytest.param(
            "{{ a is in b }}",
            {"a": doubled(SHARING_DEPTH), "b": [doubled(SHARING_DEPTH)]},
            id="in_test_case",
        ),
        pytest.param(
            "{% set d = {a: 1} %}built",
            {"a": doubled(SHARING_DEPTH, pair=tuple)},
            id="dict_key_hash_case",
        ),
        pytest.param(
            "{{ d[a] }}",
            {"a": doubled(SHARING_DEPTH, pair=tuple), "d": {}},
            id="subscript_hash_case",
        ),
        pytest.param(
            "{{ pair|sort|length }}",
            {"pair": [doubled(SHARING_DEPTH), doubled(SHARING_DEPTH)]},
            id="sort_case",
        ),
        pytest.param(
            "{{ pair|unique|list|length }}",
            {"pair": [doubled(SHARING_DEPTH, pair=tuple), doubled(SHARING_DEPTH, pair=tuple)]},
            id="unique_case",
        ),
        pytest.param(
            "{% for i in range(2) %}{{ loop.changed(a if loop.first else b) }}{% endfor %}",
            {"a": doubled(SHARING_DEPTH), "b": doubled(SHARING_DEPTH)},
            id="loop_changed_case",
        ),
    ],
)
def test_a_value_too_large_to_walk_is_refused_wherever_it_would_be_compared(
    renderer, source, context
):
    # Given a value whose walk is 2**21 leaves long, however it got into the template
    # When a comparison, membership test, hash or sorting filter would walk it
    with pytest.raises(TemplateError) as excinfo:
        render_text(renderer, source, context)

    # Then the operand is refused before the walk starts
    assert excinfo.value.reason == TOO_BIG


@pytest.mark.parametrize(
    "walk",
    [
        pytest.param("{% set x = a == b %}", id="comparison_case"),
        pytest.param("{% set x = a is eq b %}", id="test_case"),
        pytest.param("{% set x = [a] %}", id="literal_case"),
        pytest.param("{% set x = {t: 1} %}", id="dict_key_case"),
        pytest.param("{% set x = d[t] %}", id="subscript_case"),
        pytest.param("{% set x = a ~ '' %}", id="concat_case"),
        pytest.param("{% set x = a + b %}", id="list_concatenation_case"),
    ],
)
def test_every_walk_of_a_value_draws_on_the_step_budget(walk):
    # Given small values built by sharing
    renderer = TemplateRenderer(max_steps=100)
    context = {"a": doubled(6), "b": doubled(6), "t": doubled(6, pair=tuple), "d": {}}

    # When a template walks them 101 times without a loop, filter or call
    with pytest.raises(TemplateError) as excinfo:
        render_text(renderer, walk * 101, context)

    # Then the walks count as steps: a walk of a value under the limit still takes
    # milliseconds, and a 64 KB template holds thousands of them

    assert excinfo.value.reason == "text: template does too much work (over 100 steps)"


def test_a_template_that_builds_by_sharing_fails_validation(renderer):
    content = TemplateContent(
        text="Hi {{ customer.first_name }}"
        + doubling_chain("a", "[{0}, {0}]")
        + doubling_chain("b", "[{0}, {0}]")
        + chain_sink("{% if {a} == {b} %}!{% endif %}")
    )

    renderer.validate(content)  # the syntax is fine
    with pytest.raises(TemplateError) as excinfo:
        renderer.validate(content, sample_context=sample_context())

    assert excinfo.value.reason == TOO_BIG


def test_a_namespace_counter_works_alongside_map_and_lists(renderer):
    # The namespace is measured through when passed on, and map() no longer measures the
    # whole context (which holds the namespace) as if it were an argument.
    source = (
        "{% set ns = namespace(total=0) %}"
        "{% for item in order.items %}{% set ns.total = ns.total + item.quantity %}{% endfor %}"
        "{{ order.items|map(attribute='title')|join(', ') }}: {{ ns.total }}"
        "|{{ [ns]|length }}|{{ ns }}"
    )

    assert render_text(renderer, source) == (
        "Linen Throw Blanket, Beeswax Candle: 3|1|<Namespace {'total': 3}>"
    )


def test_comparisons_sorts_and_literals_in_ordinary_templates_still_render(renderer):
    source = (
        "{% if order.items|length > 1 %}{{ order.items|length }} items:{% endif %}"
        "{% for item in order.items|sort(attribute='title') %} {{ item.title }}{% endfor %}"
        "|{{ order.currency in ['EUR', 'GBP'] }}"
        "|{% for label, key in [('Total', 'total'), ('No.', 'number')] %}"
        "{{ label }} {{ order[key] }};{% endfor %}"
        "|{{ {'EUR': 'euro'}[order.currency] }}"
        "|{{ order.items|map(attribute='quantity')|list }}"
        "|{{ order.items|map(attribute='missing', default=0)|sum }}"
        "|{{ [order.number] + [customer.first_name] }}"
    )

    assert render_text(renderer, source) == (
        "2 items: Beeswax Candle Linen Throw Blanket"
        "|True"
        "|Total 86.50;No. #1042;"
        "|euro"
        "|[1, 2]"
        "|0"
        "|['#1042', 'Maya']"
    )


@pytest.mark.parametrize(
    ("name", "language", "field"),
    [
        pytest.param("Order Dispatched", "en", "whatsapp_template", id="bad_name_case"),
        pytest.param("order_dispatched", "english", "whatsapp_language", id="bad_language_case"),
    ],
)
def test_whatsapp_template_name_and_language_are_checked(renderer, name, language, field):
    content = TemplateContent(text="x", whatsapp_template=name, whatsapp_language=language)

    with pytest.raises(TemplateError) as excinfo:
        renderer.validate(content)

    assert excinfo.value.field == field


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        pytest.param("86.50", "EUR", "€86.50", id="string_eur_case"),
        pytest.param(1234567.891, "usd", "$1,234,567.89", id="float_usd_case"),
        pytest.param(5, "JPY", "¥5", id="zero_decimals_case"),
        pytest.param("-3.5", "CHF", "-3.50 CHF", id="code_without_symbol_case"),
        pytest.param("2.005", None, "2.01", id="no_currency_rounds_half_up_case"),
        pytest.param(None, "EUR", "", id="missing_amount_case"),
        pytest.param("n/a", "EUR", "", id="not_a_number_case"),
        pytest.param("1e999999", "EUR", "", id="absurd_amount_case"),
    ],
)
def test_money(amount, currency, expected):
    assert money(amount, currency) == expected


def test_money_filter_in_a_template(renderer):
    assert render_text(renderer, "{{ order.total|money(order.currency) }}") == "€86.50"


def test_content_round_trips_through_dict():
    content = DEFAULT_TEMPLATES[(MessageType.DISPATCH, ChannelKind.WHATSAPP)]

    data = content.to_dict()

    assert data["whatsapp_parameters"] == list(content.whatsapp_parameters)
    assert TemplateContent.from_dict(data) == content


def test_from_dict_refuses_malformed_data():
    with pytest.raises(TemplateError) as excinfo:
        TemplateContent.from_dict({"text": "x", "whatsapp_parameters": "{{ order.number }}"})

    assert excinfo.value.reason == "whatsapp_parameters must be a list of strings"


@pytest.mark.parametrize(
    "key",
    [pytest.param(key, id=f"{key[0].value}_{key[1].value}_case") for key in DEFAULT_TEMPLATES],
)
def test_default_template_validates_and_renders(renderer, key):
    message_type, channel = key
    content = DEFAULT_TEMPLATES[key]

    renderer.validate(content, sample_context=sample_context())
    rendered = renderer.render(content, {**sample_context(), "body": "Thanks, it's sorted!"})

    assert default_template(message_type, channel) is content
    assert rendered.text
    if message_type is MessageType.REPLY:
        assert rendered == RenderedContent(text="Thanks, it's sorted!")
    elif channel is ChannelKind.EMAIL:
        assert rendered.subject
        assert rendered.html is not None
        assert rendered.html.startswith("<!DOCTYPE html>")
        assert "Juniper &amp; Pine" in rendered.html
    elif channel is ChannelKind.SMS:
        assert len(rendered.text) < 320
        assert rendered.text.startswith("Juniper & Pine: ")
        assert rendered.text.isascii()
    elif channel is ChannelKind.WHATSAPP:
        assert rendered.template is not None
        assert rendered.template.body_parameters
        assert all(rendered.template.body_parameters)


def test_default_templates_cover_the_brief():
    assert set(DEFAULT_TEMPLATES) >= {
        (MessageType.ORDER_CONFIRMATION, ChannelKind.EMAIL),
        *(
            (message_type, channel)
            for message_type in (
                MessageType.DISPATCH,
                MessageType.OUT_FOR_DELIVERY,
                MessageType.DELIVERED,
            )
            for channel in (ChannelKind.WHATSAPP, ChannelKind.SMS, ChannelKind.EMAIL)
        ),
        (MessageType.SATISFACTION_CHECK, ChannelKind.EMAIL),
        (MessageType.SATISFACTION_CHECK, ChannelKind.WHATSAPP),
        *((MessageType.REPLY, channel) for channel in ChannelKind),
    }
    assert default_template(MessageType.PROMOTION, ChannelKind.SMS) is None


def test_whatsapp_template_names_are_the_approved_ones(renderer):
    names = {
        message_type: DEFAULT_TEMPLATES[(message_type, ChannelKind.WHATSAPP)].whatsapp_template
        for message_type in (
            MessageType.DISPATCH,
            MessageType.OUT_FOR_DELIVERY,
            MessageType.DELIVERED,
        )
    }

    assert names == {
        MessageType.DISPATCH: "order_dispatched",
        MessageType.OUT_FOR_DELIVERY: "order_out_for_delivery",
        MessageType.DELIVERED: "order_delivered",
    }


@pytest.mark.parametrize("start", ["[]", "()"])
def test_sum_adds_numbers_only_so_a_long_list_is_not_copied_at_every_item(renderer, start):
    # Given lists summed into one: each step copies the total, so 12,000 of them are
    # seconds of work inside one call the deadline cannot look into
    source = f"{{{{ (range(50)|map('string')|map('list')|list|sum(start={start}))|length }}}}"

    # When it is rendered
    with pytest.raises(TemplateError) as excinfo:
        render_text(renderer, source)

    # Then it is refused before the first copy, saying what sum is for
    assert excinfo.value.reason == "text: sum adds numbers; it cannot start from a list or text"


def test_sum_still_adds_an_orders_quantities(renderer):
    context = {"items": [{"quantity": 2}, {"quantity": 3}], "prices": [Decimal("1.50"), 2]}

    assert render_text(renderer, "{{ items|sum(attribute='quantity') }}", context) == "5"
    assert render_text(renderer, "{{ prices|sum(start=1) }}", context) == "4.50"
