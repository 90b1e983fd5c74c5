#!/usr/bin/env python3
"""Renders chat templates with real Jinja2 (3.1.x), set up as transformers' apply_chat_template sets it up
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, its tojson, raise_exception,
strftime_now), and writes reference.json for ChatTemplateReferenceTests. The clock is fixed at 2025-03-14 09:26:53.

    python3 make-reference.py   (from this folder; needs only the jinja2 package)
"""
import json
from datetime import datetime
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.exceptions import TemplateError

NOW = datetime(2025, 3, 14, 9, 26, 53)

class TemplateRaised(Exception):
    pass

def raise_exception(message):
    raise TemplateRaised(message)

def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

def strftime_now(fmt):
    return NOW.strftime(fmt)

class Generation(Extension):
    """transformers' AssistantTracker without the tracking: {% generation %}...{% endgeneration %} renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)

env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

def msg(role, content, **kw):
    return {"role": role, "content": content, **kw}

CONVERSATIONS = {
    "user-assistant-user": [msg("user", "Hello!"), msg("assistant", "Hi, how can I help?"), msg("user", "What is 2+2?")],
    "system-user-assistant-user": [msg("system", "You are terse."), msg("user", "Hello!"),
                                   msg("assistant", "Hi."), msg("user", "Name a colour.")],
    "user": [msg("user", "  Tell me a joke.\n")],
    "tools": [msg("system", "Use tools."), msg("user", "Weather in Paris?"),
              {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function",
                  "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
              {"role": "tool", "content": "{\"temp\": 18}", "tool_call_id": "call_1"}],
}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city, in °C",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                         "required": ["city"]}}}]

def render(source, conv, agp, extra):
    try:
        t = env.from_string(source)
    except TemplateError as e:
        return {"error": "syntax", "message": str(e)}
    try:
        return {"output": t.render(messages=CONVERSATIONS[conv], add_generation_prompt=agp, **extra)}
    except TemplateRaised as e:
        return {"error": "raised", "message": str(e)}
    except Exception as e:  # noqa: BLE001 - any failure of the template is an error case
        return {"error": "runtime", "message": f"{type(e).__name__}: {e}"}

def main():
    corpus = json.load(open("ollama-utils-templates.json"))
    cases = []
    for index, entry in enumerate(corpus):
        for conv, agp in [("user-assistant-user", True), ("system-user-assistant-user", False), ("tools", True)]:
            extra = {"bos_token": "<s>", "eos_token": "</s>", "tools": TOOLS if conv == "tools" else None, "documents": None}
            r = render(entry["template"], conv, agp, extra)
            cases.append({"template": index, "model": entry["model"], "conversation": conv, "add_generation_prompt": agp, **r})
    json.dump({"conversations": CONVERSATIONS, "tools": TOOLS, "now": NOW.isoformat(), "cases": cases},
              open("reference.json", "w"), ensure_ascii=False, indent=1)
    print(len(cases), "cases;", sum("output" in c for c in cases), "with output")

if __name__ == "__main__":
    main()
