using Memory3.Engine.Tokenization.ChatTemplates;

namespace Memory3.Engine.Tests.Tokenization.ChatTemplates;

/// <summary>
/// The expression language, statements and whitespace control, one small template at a time. Every expected string
/// was also produced by Python's Jinja2 in transformers' configuration.
/// </summary>
public class ChatTemplateLanguageTests
{
    static string Render(string template)
    {
        var extra = new Dictionary<string, object?>
        {
            ["d"] = new Dictionary<string, object?> { ["a"] = 1, ["b"] = new List<object?> { 1, 2 } },
            ["s"] = "  Hi There  ",
            ["msgs"] = new[] { new ChatMessage("user", "u1"), new ChatMessage("assistant", "a1"), new ChatMessage("user", "u2") },
        };
        return ChatTemplate.Parse(template)
            .WithTimeProvider(new FixedTime(new DateTimeOffset(2025, 3, 14, 9, 26, 53, TimeSpan.Zero)))
            .Render([], false, extra);
    }

    [Theory]
    [InlineData("{{ 1 + 2 * 3 }}", "7")]
    [InlineData("{{ (1 + 2) * 3 }}", "9")]
    [InlineData("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }}", "3 -4 1 2 1024")]
    [InlineData("{{ 7 / 2 }} {{ 4 / 2 }} {{ 1.5 + 1 }} {{ 0.1 + 0.2 }}", "3.5 2.0 2.5 0.30000000000000004")]
    [InlineData("{{ 'a' ~ 1 ~ none ~ true }}", "a1NoneTrue")]
    [InlineData("{{ 'ab' + 'cd' }} {{ [1] + [2, 3] }}", "abcd [1, 2, 3]")]
    [InlineData("{{ 'it\\'s' }} {{ \"tab\\there\" }} {{ 'a\\nb' | length }} {{ '\\u00e9' }}", "it's tab\there 3 é")]
    [InlineData("{{ 'x' * 3 }}", "xxx")]
    [InlineData("{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 2 >= 3 }}", "True True True False")]
    [InlineData("{{ 'b' in 'abc' }} {{ 2 in [1, 2] }} {{ 'a' in d }} {{ 3 not in [1] }}", "True True True True")]
    [InlineData("{{ not true or false and true }}", "False")]
    [InlineData("{{ 'yes' if 1 > 0 else 'no' }}|{{ 'yes' if false }}|", "yes||")]
    [InlineData("{{ [1, 2, 3][1:] }} {{ [1, 2, 3][::-1] }} {{ 'hello'[1:3] }} {{ 'hello'[-1] }} {{ [1, 2, 3][-2:] }}", "[2, 3] [3, 2, 1] el o [2, 3]")]
    [InlineData("{{ d.a }} {{ d['a'] }} {{ d.b[1] }} {{ d.missing is defined }} {{ d.get('a') }} {{ d.get('zz', 5) }}", "1 1 2 False 1 5")]
    [InlineData("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}", "a=1;b=[1, 2];")]
    [InlineData("{{ d.keys() | list }} {{ d | length }}", "['a', 'b'] 2")]
    [InlineData("{{ {'x': 1, 'y': 'z'} }} {{ (1, 2) }} {{ (1,) }} {{ none }} {{ [true, 'q'] }}", "{'x': 1, 'y': 'z'} (1, 2) (1,) None [True, 'q']")]
    [InlineData("{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxaxx'.strip('x') }}", "Hi There|Hi There  |  Hi There|a")]
    [InlineData("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a-b-c'.split('-', 1) }}", "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b-c']")]
    [InlineData("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith('bc') }} {{ 'abc'.startswith(('x', 'a')) }}", "True True True")]
    [InlineData("{{ 'aXbX'.replace('X', '-') }} {{ 'hi'.upper() }} {{ 'HI'.lower() }} {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }}", "a-b- HI hi Hello World Hello")]
    [InlineData("{{ s | trim }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ [3, 1, 2] | first }}|{{ [3, 1, 2] | last }}|{{ [1, 2] | join(', ') }}", "Hi There|ABC|abc|3|2|1, 2")]
    [InlineData("{{ missing | default('dflt') }} {{ '' | default('e', true) }} {{ 0 | default(5) }} {{ none | string }}", "dflt e 0 None")]
    [InlineData("{{ '42' | int + 1 }} {{ 'x' | int }} {{ 3.9 | int }} {{ 2 | string ~ '!' }} {{ [3, 1, 2] | sort }} {{ [1, 2, 2] | unique | list }}", "43 0 3 2! [1, 2, 3] [1, 2]")]
    [InlineData("{{ 'abc' | reverse }} {{ [1, 2] | reverse | list }} {{ 'a b' | replace(' ', '_') }} {{ 'hi' | capitalize }} {{ '<b>' | e }} {{ 'x' | safe }}", "cba [2, 1] a_b Hi &lt;b&gt; x")]
    [InlineData("{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join('+') }}", "u1+u2")]
    [InlineData("{{ msgs | rejectattr('role', 'equalto', 'user') | list | length }} {{ msgs | map(attribute='role') | first }} {{ [0, 1, '', 'a'] | select | list }}", "1 user [1, 'a']")]
    [InlineData("{{ {'b': [1, 'é', none, true, 1.5], 'a': '\"q\"\\n'} | tojson }}", "{\"b\": [1, \"é\", null, true, 1.5], \"a\": \"\\\"q\\\"\\n\"}")]
    [InlineData("{{ {'b': 1, 'a': [2]} | tojson(indent=2) }}", "{\n  \"b\": 1,\n  \"a\": [\n    2\n  ]\n}")]
    [InlineData("{{ '</script>&' | tojson }}", "\"</script>&\"")]
    [InlineData("{{ x is defined }} {{ none is none }} {{ 'a' is string }} {{ d is mapping }} {{ [1] is iterable }} {{ 1 is number }} {{ 3 is odd }} {{ 4 is divisibleby 2 }} {{ false is false }} {{ 0 is false }}", "False True True True True True True True True False")]
    [InlineData("{{ 1 is not none }} {{ missing is undefined }} {{ 'ab' is lower }} {{ d.a is integer }} {{ 1.0 is float }} {{ 'x' is sequence }}", "True True True True True True")]
    [InlineData("{% set ns = namespace(n=0, last=none) %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% set ns.last = i %}{% endfor %}{{ ns.n }},{{ ns.last }}", "6,3")]
    [InlineData("{% set x = 1 %}{% for i in [1] %}{% set x = 2 %}{% endfor %}{{ x }}{% if true %}{% set x = 3 %}{% endif %}{{ x }}", "13")]
    [InlineData("{% for i in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }} {% endfor %}", "10TrueFalse33 21FalseFalse32 32FalseTrue31 ")]
    [InlineData("{% for i in [1, 2, 3] %}{{ loop.previtem | default('-') }}{{ i }}{{ loop.nextitem | default('-') }} {% endfor %}", "-12 123 23- ")]
    [InlineData("{% for i in [] %}x{% else %}empty{% endfor %}|{% for i in range(5) if i is odd %}{{ i }}{% endfor %}|{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}", "empty|13|135")]
    [InlineData("{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", "013")]
    [InlineData("{% if 0 %}a{% elif [] %}b{% elif 'x' %}c{% else %}d{% endif %}", "c")]
    [InlineData("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bo') }} {{ greet('Al', punct='?') }}", "Hi Bo! Hi Al?")]
    [InlineData("{% macro box() %}[{{ caller() }}]{% endmacro %}{% call box() %}in{% endcall %}", "[in]")]
    [InlineData("{% set t %}a{{ 1 + 1 }}b{% endset %}{{ t }}|{% filter upper %}up{% endfilter %}", "a2b|UP")]
    [InlineData("{% set a, b = 1, 2 %}{{ a }}{{ b }} {{ messages | length }} {{ add_generation_prompt }}", "12 0 False")]
    [InlineData("{{ 'a' 'b' }}{# comment #}{{ '{{' }}{% raw %}{{ not parsed }}{% endraw %}", "ab{{{{ not parsed }}")]
    [InlineData("{{ strftime_now('%Y-%m-%d %d %b %Y %B %H:%M') }}", "2025-03-14 14 Mar 2025 March 09:26")]
    [InlineData("{{ 1e3 }} {{ 1_000 }} {{ -3 | abs }} {{ 2.5 | round }} {{ [1, 5, 3] | max }} {{ [1, 5, 3] | min }} {{ [1, 2] | sum }}", "1000.0 1000 3 2.0 5 1 3")]
    [InlineData("{{ 'a\nb' | indent(2) }}|{{ 'hi' | center(6) }}|{{ 'one two' | wordcount }}", "a\n  b|  hi  |2")]
    public void Expressions_and_statements(string template, string expected) => Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("a\n{% if true %}\nb\n{% endif %}\nc", "a\nb\nc")]
    [InlineData("a\n    {% if true %}\n    b\n    {% endif %}\nc", "a\n    b\nc")]
    [InlineData("a  {%- if true -%}  b  {%- endif -%}  c", "abc")]
    [InlineData("a\n{{- 'x' -}}\nb", "axb")]
    [InlineData("a\n  {{ 'x' }}\nb", "a\n  x\nb")]
    [InlineData("  {%+ if true %}x{% endif %}", "  x")]
    [InlineData("{% if true +%}\nx{% endif %}", "\nx")]
    [InlineData("x {% if true %}y{% endif %}", "x y")]
    [InlineData("a\n  {# c #}\nb", "a\nb")]
    [InlineData("line\n", "line")]
    [InlineData("line\n\n", "line\n")]
    [InlineData("{% for m in [1, 2] %}\n  {{ m }}\n{% endfor %}\n", "  1\n  2\n")]
    [InlineData("a\r\nb", "a\nb")]
    public void Whitespace_control_as_transformers_configures_jinja(string template, string expected) => Assert.Equal(expected, Render(template));

    [Theory]
    [InlineData("{{ x", 1, "not closed")]
    [InlineData("{{ x }", 1, "unexpected '}'")]
    [InlineData("a\nb {% if %}", 2, "unexpected end of tag")]
    [InlineData("line one\n{% include 'other.j2' %}", 2, "unsupported tag 'include'")]
    [InlineData("{% for m in messages %}\n{{ m }}\n", 2, "expected 'endfor'")]
    [InlineData("x\n\n{{ a b }}", 3, "unexpected 'b'")]
    [InlineData("{% extends 'base' %}", 1, "unsupported tag 'extends'")]
    [InlineData("{% for x in y recursive %}{% endfor %}", 1, "recursive")]
    [InlineData("{{ f(*args) }}", 1, "*args")]
    [InlineData("{% endif %}", 1, "unexpected 'endif'")]
    [InlineData("{{ 'abc }}", 1, "string literal is not closed")]
    public void Unsupported_or_bad_syntax_names_the_line(string template, int line, string what)
    {
        var ex = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template));
        Assert.Equal(line, ex.Line);
        Assert.Contains(what, ex.Message);
        Assert.Contains($"line {line}", ex.Message);
        Assert.False(ex.RaisedByTemplate);
    }

    [Fact]
    public void Runtime_errors_are_chat_template_exceptions_with_a_line()
    {
        var ex = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse("ok\n{{ missing.attr }}").Render([], false));
        Assert.Equal(2, ex.Line);
        Assert.Contains("'missing' is undefined", ex.Message);

        ex = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse("{{ 'a' + 1 }}").Render([], false));
        Assert.Contains("unsupported operand", ex.Message);

        ex = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse("{{ messages[0]['content'] }}").Render([], false));
        Assert.False(ex.RaisedByTemplate);
    }

    [Fact]
    public void Raise_exception_keeps_the_templates_message()
    {
        var ex = Assert.Throws<ChatTemplateException>(() =>
            ChatTemplate.Parse("{% if messages | length == 0 %}\n  {{ raise_exception('No messages: ' ~ 0) }}\n{% endif %}").Render([], true));
        Assert.True(ex.RaisedByTemplate);
        Assert.Equal("No messages: 0", ex.Message);
    }

    [Fact]
    public void Undefined_and_optional_message_fields_behave_like_jinja()
    {
        var t = ChatTemplate.Parse("{{ nothing }}|{{ messages[0].name is defined }}|{{ messages[1].name }}|{{ messages[0].tool_calls is defined }}|{{ tools is none }}|{{ nothing | length }}|{% for x in nothing %}x{% endfor %}");
        var msgs = new[] { new ChatMessage("user", "a"), new ChatMessage("user", "b") { Name = "bob" } };
        Assert.Equal("|False|bob|False|True|0|", t.Render(msgs, false));
    }

    [Fact]
    public void Extra_values_accept_json_and_dotnet_collections()
    {
        var json = System.Text.Json.JsonDocument.Parse("""{"n": 2, "f": 0.5, "list": ["x", true, null]}""").RootElement;
        var t = ChatTemplate.Parse("{{ j.n + 1 }} {{ j.f }} {{ j.list }} {{ j | tojson }} {{ arr | join('-') }}");
        Assert.Equal("3 0.5 ['x', True, None] {\"n\": 2, \"f\": 0.5, \"list\": [\"x\", true, null]} 1-2",
            t.Render([], false, new Dictionary<string, object?> { ["j"] = json, ["arr"] = new[] { 1, 2 } }));
    }

    [Fact]
    public void Tool_call_arguments_reach_the_template_parsed()
    {
        var t = ChatTemplate.Parse("{% for c in messages[0].tool_calls %}{{ c.function.name }} {{ c.function.arguments.x }} {{ c.function.arguments | tojson }} {{ c.id }}{% endfor %}");
        var m = new ChatMessage("assistant", null) { ToolCalls = [new ChatToolCall("call_9", "f", """{"x": 1, "y": [true]}""")] };
        Assert.Equal("f 1 {\"x\": 1, \"y\": [true]} call_9", t.Render([m], false));
        // Arguments that are not a JSON object stay a string.
        var m2 = new ChatMessage("assistant", null) { ToolCalls = [new ChatToolCall("c", "f", "not json")] };
        Assert.Equal("f  \"not json\" c", t.Render([m2], false));
    }
}
