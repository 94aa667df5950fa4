// The chat's loop guard (rag/answer/guard.py), for the answer generated in this page: the same three
// rules, so the page stops a repeating answer where the chat would (tests/test_browser_guard.py feeds
// both the same streams and compares what they keep).
//  - a sentence of four words or more that was already written;
//  - a run of `ngram` words seen more than `maxRepeats` times;
//  - one word making up half of the last `window` words (a made-up table, "A A A A" rows).
// The answer is then the text before the repetition (`kept`), ended at its last complete sentence.

const WORD = /[\p{L}\p{N}_]+/gu;
// the end of a sentence: . ! ? (optionally closed by a quote/bracket/citation) then whitespace
const SENTENCE_END = /[.!?](?:["')\]]|\s*\[\d{1,2}(?:\s*,\s*\d{1,2})*\])*(?=\s|$)/gu;

function key(text) {
  return (text.match(WORD) || []).map((w) => w.toLowerCase()).join(" ");
}

export function endAtSentence(text) {
  let last = null;
  SENTENCE_END.lastIndex = 0;
  for (let m; (m = SENTENCE_END.exec(text)); ) last = m;
  return last ? text.slice(0, last.index + last[0].length).trimEnd() : "";
}

export class LoopGuard {
  constructor({ ngram = 8, maxRepeats = 2, minSentenceWords = 4, window = 40 } = {}) {
    Object.assign(this, { ngram, maxRepeats, minWords: minSentenceWords, window });
    this.text = "";
    this.looped = false;
    this.kept = "";
    this.sentences = new Set();
    this.done = 0; // characters of this.text already split into sentences
    this.counted = 0; // words of this.text already counted into n-grams
    this.grams = new Map(); // n-gram -> end offsets of its occurrences
  }

  // Add a streamed piece; true once the answer loops (then `kept` is the text to keep).
  feed(piece) {
    if (this.looped) return true;
    this.text += piece;
    SENTENCE_END.lastIndex = this.done;
    for (let m; (m = SENTENCE_END.exec(this.text)); ) {
      const end = m.index + m[0].length;
      const k = key(this.text.slice(this.done, end));
      if (k.split(" ").filter(Boolean).length >= this.minWords && this.sentences.has(k)) return this.loop(this.done);
      this.sentences.add(k);
      this.done = end;
      SENTENCE_END.lastIndex = end;
    }
    return this.ngramLoop();
  }

  ngramLoop() {
    const words = [...this.text.matchAll(WORD)].map((m) => [m[0].toLowerCase(), m.index, m.index + m[0].length]);
    const complete = words.length - (words.length && words[words.length - 1][2] === this.text.length ? 1 : 0);
    const n = this.ngram, win = this.window;
    while (this.counted < complete) {
      const i = this.counted++;
      if (i + 1 >= win) {
        const word = dominant(words.slice(i - win + 1, i + 1));
        if (word !== null) return this.loop(this.runStart(words.slice(0, i + 1), word));
      }
      if (i + 1 < n) continue;
      const gram = words.slice(i - n + 1, i + 1).map((w) => w[0]).join("\u0000");
      const ends = this.grams.get(gram) || [];
      ends.push(words[i][2]);
      this.grams.set(gram, ends);
      if (ends.length > this.maxRepeats) return this.loop(ends[0]);
    }
    return false;
  }

  // Where a degenerate run began: the start of the line (or of the sentence, if one ends later on
  // that line) holding its earliest `word` from which on that word is still 60 % of the text.
  runStart(words, word) {
    let start = words[words.length - 1][1], seen = 0;
    for (let k = words.length - 1; k >= 0; k--) {
      if (words[k][0] === word) {
        seen++;
        if (5 * seen >= 3 * (words.length - k)) start = words[k][1];
      }
    }
    const line = start > 0 ? this.text.lastIndexOf("\n", start - 1) + 1 : 0;
    return Math.max(line, endAtSentence(this.text.slice(0, start)).length);
  }

  loop(cut) {
    this.looped = true;
    const head = this.text.slice(0, cut);
    this.kept = endAtSentence(head) || head.trimEnd();
    return true;
  }
}

// The word that is at least half of the window's words, if one is (ties: the one seen first).
function dominant(window) {
  const counts = new Map();
  for (const [w] of window) counts.set(w, (counts.get(w) || 0) + 1);
  let best = null, most = 0;
  for (const [w, c] of counts) if (c > most) [best, most] = [w, c];
  return 2 * most >= window.length ? best : null;
}
