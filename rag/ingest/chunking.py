"""Document -> chunks that fit the embedder's window, with source, page, offsets and heading.

Token counts come from the embedder's own tokenizer (word pieces, not words). A chunk never
crosses a heading: each section (the text under one heading) is cut into as few chunks as fit
the window, of even size, at sentence boundaries where possible, with a small overlap. What is
embedded is the section's heading path followed by the chunk text ("context prefix"), and the
prefix is counted in the window too, so nothing is silently cut by the model.

One way to build one, in any process: ``Chunker.for_model(model_path, window)`` counts with the
model's own tokenizer files (``rag.embedder.token_counter``; no torch needed, so the loader
processes chunk exactly as the embedding process would).

all-MiniLM-L6-v2 was trained on inputs of up to 128 word pieces: vectors of longer texts are
measurably worse (pyfaq dense nDCG@10: 128-token pieces .872, 192: .856, 254: .862, 96: .846).
So a passage (up to the window, what the chat reads and cites) is embedded as one or more "views"
of at most ``view_tokens`` (LRC_VIEW_TOKENS), each with the heading prefix; the passage scores as
its best view. The passage size aimed at is ``LRC_CHUNK_TOKENS``.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from rag.config import settings
from rag.embedder import CountTokens, token_counter
from rag.ingest.loaders.base import Block, Document
from rag.schema import stored_heading
from rag.text import is_code, sentence_spans



@dataclass
class ChunkDraft:
    text: str  # the passage shown, cited and sent to the model
    embed_text: str  # context prefix + text: what is embedded and indexed lexically
    page: int | None
    start: int
    end: int
    heading: str  # as stored: marked when read by OCR (rag.schema.stored_heading)
    tokens: int = 0  # word pieces of embed_text
    views: list[str] = field(default_factory=list)  # what is embedded: prefix + parts of <= view_tokens

    @property
    def vector_texts(self) -> list[str]:
        """The texts embedded for this passage, one vector each, in order."""
        return self.views or [self.embed_text]


@dataclass
class _Unit:
    text: str
    page: int | None
    start: int
    end: int
    block: int  # index of the block it came from
    tokens: int = 0


def _sentences(block: Block, bi: int) -> list[_Unit]:
    return [_Unit(block.text[a:b], block.page, block.start + a, block.start + b, bi)
            for a, b in sentence_spans(block.text)]


class Chunker:
    def __init__(self, count_tokens: CountTokens, window: int = 254, overlap: int = 24,
                 context_tokens: int = 48, target: int | None = None, view_tokens: int | None = None):
        self.count = count_tokens
        self.window = window  # word pieces available for text (model max less [CLS]/[SEP])
        s = settings()
        self.target = min(window, target or s.chunk_tokens)  # chunk size aimed at (prefix included)
        self.overlap = overlap
        self.view_tokens = min(self.target, view_tokens or s.view_tokens)
        self.context_tokens = context_tokens

    @classmethod
    def for_model(cls, model_path: str, window: int, **options) -> "Chunker":
        """The chunker for an embedding model: its folder (``Embedder.path``) and window
        (``Embedder.window``). Loader processes and the embedding process build it the same way."""
        return cls(token_counter(model_path), window, **options)

    # ------------------------------------------------------------------ public
    def chunk(self, doc: Document) -> list[ChunkDraft]:
        sections = self._sections(doc.blocks)
        units_all: list[_Unit] = []
        for _, units in sections:
            units_all.extend(units)
        counts = self.count([u.text for u in units_all]) if units_all else []
        for u, c in zip(units_all, counts):
            u.tokens = c
        prefixes = [self._prefix(path) for path, _ in sections]
        prefix_tokens = self.count([p for p in prefixes]) if prefixes else []
        drafts: list[ChunkDraft] = []
        for (path, units), prefix, ptok in zip(sections, prefixes, prefix_tokens):
            if not units:
                continue
            if ptok > self.context_tokens:  # keep only the nearest heading, cut to fit
                prefix = self._fit(prefix, self.context_tokens)
                ptok = self.count([prefix])[0]
            budget = self.target - ptok - (1 if prefix else 0)
            units = self._split_long(units, budget)
            heading = path[-1] if path else ""
            vbudget = self.view_tokens - ptok - (1 if prefix else 0)
            for group in self._pack(units, budget):
                d = self._draft(group, prefix, heading, doc)
                if sum(u.tokens for u in group) > vbudget and vbudget > 16:
                    parts = self._pack(self._split_long(group, vbudget), vbudget, overlap=0)
                    d.views = [(f"{prefix}\n" if prefix else "") + " ".join(u.text for u in part) for part in parts]
                else:
                    d.views = [d.embed_text]
                drafts.append(d)
        return self._verify(drafts)

    # ------------------------------------------------------------------ steps
    def _sections(self, blocks: list[Block]) -> list[tuple[list[str], list[_Unit]]]:
        """(heading path, units) for each run of text under one heading."""
        stack: list[tuple[int, str]] = []
        sections: list[tuple[list[str], list[_Unit]]] = []
        current: list[_Unit] = []

        def close():
            nonlocal current
            if current:
                sections.append(([t for _, t in stack], current))
            current = []

        for bi, b in enumerate(blocks):
            if b.kind == "heading":
                close()
                level = max(1, b.level)
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, " ".join(b.text.split())))
            elif b.text.strip():
                current.extend(_sentences(b, bi))
        close()
        return sections

    def _prefix(self, path: list[str]) -> str:
        return " > ".join(path[-2:]) if path else ""

    def _fit(self, text: str, limit: int) -> str:
        words = text.split()
        while words and self.count([" ".join(words)])[0] > limit:
            words = words[: max(1, int(len(words) * 0.8))] if len(words) > 1 else []
        return " ".join(words)

    def _split_long(self, units: list[_Unit], budget: int) -> list[_Unit]:
        """Units longer than the budget are cut at line breaks, then between words."""
        out: list[_Unit] = []
        for u in units:
            if u.tokens <= budget:
                out.append(u)
                continue
            words = list(re.finditer(r"\S+", u.text))
            wcounts = self.count([w.group(0) for w in words])
            piece_start = 0
            acc = 0
            for i, (w, c) in enumerate(zip(words, wcounts)):
                if acc + c > budget and i > piece_start:
                    out.append(self._sub(u, words[piece_start].start(), words[i - 1].end(), acc))
                    piece_start, acc = i, 0
                acc += c
            if piece_start < len(words):
                out.append(self._sub(u, words[piece_start].start(), words[-1].end(), acc))
        return out

    @staticmethod
    def _sub(u: _Unit, a: int, b: int, tokens: int) -> _Unit:
        return _Unit(u.text[a:b], u.page, u.start + a, u.start + b, u.block, tokens)

    def _pack(self, units: list[_Unit], budget: int, overlap: int | None = None) -> list[list[_Unit]]:
        overlap = self.overlap if overlap is None else overlap
        total = sum(u.tokens for u in units)
        if total <= budget:
            return [units]
        n = math.ceil(total / (budget - overlap)) if budget > overlap else math.ceil(total / budget)
        target = math.ceil(total / max(n, 1)) + overlap
        groups: list[list[_Unit]] = []
        cur: list[_Unit] = []
        cur_tok = 0
        i = 0
        while i < len(units):
            u = units[i]
            if cur and (cur_tok + u.tokens > budget or cur_tok >= target):
                groups.append(cur)
                # overlap: carry the last units (up to `overlap` tokens) into the next chunk
                carry: list[_Unit] = []
                ctok = 0
                for prev in reversed(cur):
                    if ctok + prev.tokens > overlap or len(carry) + 1 >= len(cur):
                        break
                    carry.insert(0, prev)
                    ctok += prev.tokens
                if ctok + u.tokens > budget:
                    carry, ctok = [], 0
                cur, cur_tok = carry, ctok
            cur.append(u)
            cur_tok += u.tokens
            i += 1
        if cur:
            # a tiny tail joins the previous chunk when it fits, else stays
            if groups and cur_tok < 0.25 * budget:
                prev = groups[-1]
                extra = [u for u in cur if u not in prev]
                if sum(x.tokens for x in prev) + sum(x.tokens for x in extra) <= budget:
                    prev.extend(extra)
                    return groups
            groups.append(cur)
        return groups

    def _draft(self, group: list[_Unit], prefix: str, heading: str, doc: Document) -> ChunkDraft:
        parts: list[str] = []
        blocks = doc.blocks
        run: list[_Unit] = []

        def flush():
            if run:
                b = blocks[run[0].block]
                part = b.text[run[0].start - b.start: run[-1].end - b.start]
                if is_code(b.text):  # a piece of a long code block keeps its fences: the chunk stays Markdown
                    opened, closed = run[0].start > b.start, run[-1].end < b.start + len(b.text.rstrip())
                    part = ("```\n" if opened else "") + part + ("\n```" if closed else "")
                parts.append(part)

        for u in group:
            if run and u.block != run[-1].block:
                flush()
                run = []
            run.append(u)
        flush()
        text = "\n".join(p.strip() for p in parts if p.strip())
        embed = f"{prefix}\n{text}" if prefix else text
        ocr = any(blocks[u.block].ocr for u in group)
        return ChunkDraft(text, embed, group[0].page, group[0].start, group[-1].end, stored_heading(heading, ocr))

    def _verify(self, drafts: list[ChunkDraft]) -> list[ChunkDraft]:
        """Exact token count of every embedded text; anything over the window is split again."""
        if not drafts:
            return drafts
        counts = self.count([d.embed_text for d in drafts])
        out: list[ChunkDraft] = []
        for d, c in zip(drafts, counts):
            d.tokens = c
            if c <= self.window:
                out.append(d)
            else:
                out.extend(self._halve(d))
        views = [(d, v) for d in out for v in d.views]
        vcounts = self.count([v for _, v in views])
        redo = {id(d) for (d, v), c in zip(views, vcounts) if c > self.view_tokens}
        for d in out:
            if id(d) in redo:  # rare (a chunk split again above): cut its text between words
                d.views = self._word_views(d)
        return out

    def _word_views(self, d: ChunkDraft) -> list[str]:
        prefix = d.embed_text[: len(d.embed_text) - len(d.text)]
        limit = self.view_tokens - (self.count([prefix])[0] if prefix else 0) - 1
        words = d.text.split()
        counts = self.count(words)
        views, cur, acc = [], [], 0
        for w, c in zip(words, counts):
            if cur and acc + c > limit:
                views.append(prefix + " ".join(cur))
                cur, acc = [], 0
            cur.append(w)
            acc += c
        if cur:
            views.append(prefix + " ".join(cur))
        return views

    def _halve(self, d: ChunkDraft) -> list[ChunkDraft]:
        prefix = d.embed_text[: len(d.embed_text) - len(d.text)]
        words = d.text.split(" ")
        if len(words) < 2:
            cut = self._fit(d.text, self.window - self.count([prefix])[0] - 1)
            return [ChunkDraft(cut, prefix + cut, d.page, d.start, d.start + len(cut), d.heading,
                               self.count([prefix + cut])[0], [prefix + cut])]
        mid = len(words) // 2
        a, b = " ".join(words[:mid]), " ".join(words[mid:])
        if a.count("```") % 2:  # cut inside a code block: each half keeps it fenced
            a, b = a + "\n```", "```\n" + b
        parts = [ChunkDraft(a, prefix + a, d.page, d.start, d.start + len(a), d.heading, views=[prefix + a]),
                 ChunkDraft(b, prefix + b, d.page, d.start + len(a) + 1, d.end, d.heading, views=[prefix + b])]
        return self._verify(parts)
