"""The loop guard stops a repeating stream for any engine, and answers end at a sentence."""
from __future__ import annotations

from rag.answer.guard import LoopGuard, end_at_sentence, finish, tidy_fences


def feed(guard: LoopGuard, text: str, step: int = 3) -> bool:
    for i in range(0, len(text), step):
        if guard.feed(text[i:i + step]):
            return True
    return False


def test_a_repeated_sentence_stops_the_stream_and_keeps_what_came_before():
    g = LoopGuard()
    looped = feed(g, "The shell exits after the first Ctrl-D press. Type q() to quit. "
                     "The shell exits after the first Ctrl-D press. The shell exits")
    assert looped
    assert g.kept == "The shell exits after the first Ctrl-D press. Type q() to quit."


def test_a_phrase_loop_without_sentence_ends_is_caught():
    g = LoopGuard()
    assert feed(g, "Set it to the folder and " * 6)
    assert g.kept.count("Set it to the folder and") <= 2


def test_an_answer_that_does_not_repeat_passes_untouched():
    g = LoopGuard()
    text = ("Use --enable-R-shlib to build R as a shared library [1]. The library is libR.so [1]. "
            "Then run make install [2]. Check it with R CMD config [2].")
    assert not feed(g, text)
    assert not g.looped and g.text == text


def test_short_repeated_sentences_are_not_a_loop():
    assert not feed(LoopGuard(), "Yes. It works. Yes. It does.")


def test_end_at_sentence_drops_a_cut_tail():
    assert end_at_sentence("First one [1]. Second is cut mid-wo") == "First one [1]."
    assert end_at_sentence("no end at all") == ""
    assert end_at_sentence('He said "stop." Then') == 'He said "stop."'


def test_fences_are_moved_to_the_line_start_and_an_open_block_closed():
    text = "1. Run it:\n   ```bash\npython -c 'import os'\n```\nDone."
    assert tidy_fences(text) == "1. Run it:\n```bash\npython -c 'import os'\n```\nDone."
    assert tidy_fences("Try:\n```\nmake").endswith("make\n```")


def test_an_answer_always_ends_cleanly():
    assert finish("Use make install [1].") == "Use make install [1]."
    assert finish("Use make install [1]. Then run the comm") == "Use make install [1]."
    assert finish("The build should use a toolchain such as gcc-x86_64-mingw32") == \
        "The build should use a toolchain such as gcc-x86_64-mingw32 …"
    assert finish("The build should use a toolchain such as gcc-x86_6", cut=True) == \
        "The build should use a toolchain such as …"
    assert finish("```bash\nmake\n```") == "```bash\nmake\n```"
    # a length limit that stopped right after a list number leaves no empty item behind
    assert finish("Types:\n1. PDF (.pdf)\n2. Markdown (.md)\n3.", cut=True) == "Types:\n1. PDF (.pdf)\n2. Markdown (.md)"
    assert finish("Steps:\n- Unpack it.\n- ") == "Steps:\n- Unpack it."
    # the model's own short length ended it: the last full sentence, however short (a chosen limit: the ellipsis)
    long_tail = "Run make [1]. Then, when the configuration has been written to the build folder, run the inst"
    assert finish(long_tail, cut=True) == long_tail.rsplit(" ", 1)[0] + " …"
    assert finish(long_tail, cut=True, whole=True) == "Run make [1]."
    assert finish("No full sentence before the lim", cut=True, whole=True) == "No full sentence before the …"
    # ... and a list number that the trimming leaves last is dropped with what followed it (seen in the chat: "2.")
    assert finish("It includes [1]:\n\n1. The file is read [1].\n\n2. The sys", cut=True, whole=True) == \
        "It includes [1]:\n\n1. The file is read [1]."
    # inline code the limit left open ends at a full stop inside a path, not at a sentence's end (seen: "`~/.")
    assert finish("You can set it in your config [3]. Here's how:\n\n1. Open the `~/.", cut=True, whole=True) == \
        "You can set it in your config [3]."
    assert finish("Run `make` then `make install`.") == "Run `make` then `make install`."
    assert finish("```\nmake\n```\nThen run `make inst", cut=True) == "```\nmake\n```\nThen run …"
    assert finish("```bash\necho `date\n```") == "```bash\necho `date\n```"  # a backtick in a block is code
    # a code block the limit left empty, and its lead-in, go (seen on zlib's how-to: "Here's a simple example:"
    # above an empty block, each marked as not found); a block with code in it stays, to be closed when shown
    assert finish("It frees the state [5]. Here's a simple example:\n```c\n", cut=True) == "It frees the state [5]."
    assert finish("It frees the state [5]. Here's an example:\n\n```") == "It frees the state [5]."
    assert finish("Here's an example:\n```c\nfree(s);", cut=True) == "Here's an example:\n```c\nfree(s);"
    assert finish("Code:\n```c\nx\n```") == "Code:\n```c\nx\n```"
    # ... as the answer reaches it: tidy_fences has closed the block the limit left open
    assert finish(tidy_fences("It frees the state [5]. Here's a simple example:\n```c\n"), cut=True) == \
        "It frees the state [5]."
    assert finish("```\nmake\n```\n```") == "```\nmake\n```"  # a closed block, then an empty one left open


def test_a_degenerate_table_is_a_loop_though_no_phrase_repeats():
    """Rows that differ in one cell ("B C A A A A A", "C D A A A A A", ...) repeat no 8-word run,
    but one word fills half of the recent text: the stream stops before the rows."""
    rows = "".join(f"{a}   {b}   A     A      A      A       A\n" for a, b in zip("BCDEFGHIJKLMNOPQ", "CDEFGHIJKLMNOPQU"))
    g = LoopGuard()
    assert feed(g, "Here is how to print to a CSV file. This will output something like:\n```\n" + rows)
    assert g.kept == "Here is how to print to a CSV file."


def test_a_degenerate_run_keeps_the_sentence_that_led_into_it_on_the_same_line():
    g = LoopGuard()
    assert feed(g, "The rows are listed below. " + "".join(f"Row {c}: A A A A.\n" for c in "BCDEFGHIJKLMNOPQ"))
    assert g.kept == "The rows are listed below."


def test_prose_and_a_list_of_similar_paths_are_not_dominated():
    text = ("Install the libraries into /opt/R/arm64/lib and the tools into /opt/R/arm64/bin [1]. "
            "Add /opt/R/arm64/bin to your PATH, then run ./configure with --prefix=/opt/R/arm64 and make. "
            "The library is libR.dylib under /opt/R/arm64/lib/R/lib [2]. Keep the Fortran compiler in "
            "/opt/gfortran and check the build with make check before installing it [2].")
    assert not feed(LoopGuard(), text)
