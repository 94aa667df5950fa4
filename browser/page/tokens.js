// Token ids -> text for a byte-level BPE tokenizer (SmolLM2's tokenizer.json), one token at a time.
//
// The server encodes the prompt (the in-process engine's own tokenizer); the page only has to turn the
// ids it generates back into text, as they come. A byte-level BPE token is a string whose characters
// each stand for one byte (GPT-2's byte <-> character table); the bytes of consecutive tokens form UTF-8
// text, and one character may span two tokens, so the bytes go through a streaming TextDecoder.

// GPT-2's table: printable Latin-1 bytes stand for themselves, the other 68 bytes are moved to 256 + n.
function byteTable() {
  const printable = (b) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  const table = new Map();
  let moved = 0;
  for (let b = 0; b < 256; b++) {
    const code = printable(b) ? b : 256 + moved++;
    table.set(String.fromCodePoint(code), b);
  }
  return table;
}

export class Vocabulary {
  // tokenizer: the parsed tokenizer.json
  constructor(tokenizer) {
    const vocab = tokenizer?.model?.vocab;
    if (!vocab || tokenizer.model.type !== "BPE") {
      throw new Error("tokenizer.json is not a byte-level BPE tokenizer this page can decode");
    }
    this.pieces = [];
    for (const [piece, id] of Object.entries(vocab)) this.pieces[id] = piece;
    this.special = new Set();
    for (const added of tokenizer.added_tokens || []) {
      this.pieces[added.id] = added.content;
      if (added.special) this.special.add(added.id);
    }
    this.bytes = byteTable();
  }

  // The bytes token `id` stands for (none for a special token such as <|im_end|>).
  tokenBytes(id) {
    if (this.special.has(id)) return [];
    const piece = this.pieces[id];
    if (piece === undefined) return [];
    const out = [];
    for (const ch of piece) {
      const b = this.bytes.get(ch);
      if (b === undefined) out.push(...new TextEncoder().encode(ch)); // an added, non-byte-level token
      else out.push(b);
    }
    return out;
  }

  // A decoder for one answer: push(id) returns the text that became complete with this token.
  stream() {
    const decoder = new TextDecoder("utf-8", { fatal: false });
    return {
      push: (id) => decoder.decode(new Uint8Array(this.tokenBytes(id)), { stream: true }),
      end: () => decoder.decode(),
    };
  }
}
