"""The texts every benchmark sends: a fixed, reproducible mix from search queries to long documents.

One repeated string would hit a single sequence bucket and make batching look better than it
is. Real embedding traffic mixes short search queries, single sentences, paragraphs and documents
longer than the encoder's 256-token window (truncated by the tokenizer). The generator below
composes such texts from a small hand-written corpus with a seeded random generator, so the data
set is the same on every machine and nothing has to be downloaded.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from python_backend.contract import TEXT

DEFAULT_SEED = 20241127
DEFAULT_SIZE = 256

# Share of each kind of text in the data set, decided before any tuning and kept fixed: a
# benchmark whose data set follows the results measures nothing.
KIND_SHARES = (
    ("query", 0.35),
    ("sentence", 0.30),
    ("paragraph", 0.25),
    ("document", 0.10),
)

SENTENCES = (
    "The invoice from last month lists two charges for the same subscription renewal.",
    "After the firmware update the router drops the connection every few minutes.",
    "Please reset my password because the recovery email never arrives in my inbox.",
    "The warehouse in Rotterdam ships orders placed before noon on the same day.",
    "Our team migrated the billing database to a managed service without downtime.",
    "The hiking trail along the ridge is closed in winter because of avalanche risk.",
    "Mix the flour and butter until the dough holds together, then chill it for an hour.",
    "The central bank kept interest rates unchanged and signalled one cut next year.",
    "Patients with mild symptoms recovered within a week without any medication.",
    "A cold front will bring heavy rain and strong winds to the coast on Thursday.",
    "The new library opens at eight and offers free workshops on digital skills.",
    "Engineers traced the memory leak to a cache that never evicted expired entries.",
    "The quarterly report shows revenue growth driven by subscriptions in Asia.",
    "Solar panels on the school roof now cover most of its electricity demand.",
    "The museum's collection of medieval manuscripts is digitised and searchable online.",
    "Customers can return unworn shoes within thirty days for a full refund.",
    "The train to the airport runs every fifteen minutes from the central station.",
    "Researchers measured how quickly the enzyme breaks down plastic at room temperature.",
    "The contract renews automatically unless either party cancels in writing.",
    "Latency rose sharply when the load balancer sent all traffic to a single zone.",
    "Water the seedlings every morning and keep them out of direct afternoon sun.",
    "The city council approved a budget for new cycle lanes along the river.",
    "Our support chat answers common questions in English, Spanish and German.",
    "The telescope captured the faint glow of a galaxy formed soon after the big bang.",
    "Shares of the chip maker climbed after it raised its forecast for data centres.",
    "The recipe works with oat milk, although the sauce will be slightly thinner.",
    "Backups run every night and are kept for ninety days in a second region.",
    "The orchestra rehearsed the symphony for weeks before the opening concert.",
    "Delivery was delayed because the parcel was held at customs for inspection.",
    "The language model was evaluated on questions it had never seen in training.",
    "Vaccination rates in rural districts improved after mobile clinics were introduced.",
    "The apartment has two bedrooms, a balcony facing south, and a shared garden.",
    "Our API returns a rate-limit error when a client sends more than fifty requests a second.",
    "The glacier has retreated by almost a kilometre over the past three decades.",
    "Students who slept eight hours before the exam scored noticeably higher.",
    "The insurance policy covers water damage but not gradual wear of the pipes.",
    "A small configuration change halved the build time of the mobile app.",
    "The ferry crossing takes ninety minutes and is often rough in autumn.",
    "The startup raised its first round to build sensors for precision farming.",
    "Our records show the package was signed for by a neighbour at the same address.",
)

QUERIES = (
    "refund policy",
    "reset password",
    "how to cancel my subscription",
    "router keeps disconnecting",
    "best hiking trails near me",
    "interest rate forecast",
    "train times to the airport",
    "return shoes without receipt",
    "memory leak in cache",
    "cheap flights to lisbon in may",
    "why is my parcel held at customs",
    "vegan butter substitute for pastry",
    "solar panel output in winter",
    "api rate limit error 429",
    "symptoms of mild flu",
    "apartment with balcony and garden",
    "how long are backups kept",
    "glacier retreat statistics",
    "does insurance cover water damage",
    "ferry schedule autumn",
    "speed up mobile app build",
    "digitised medieval manuscripts",
    "library opening hours",
    "language model evaluation benchmark",
)


@dataclass(frozen=True)
class Text:
    kind: str
    text: str


def _sentences(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(SENTENCES) for _ in range(count))


def _make(kind: str, rng: random.Random) -> str:
    if kind == "query":
        return rng.choice(QUERIES)
    if kind == "sentence":
        return rng.choice(SENTENCES)
    if kind == "paragraph":
        return _sentences(rng, rng.randint(3, 7))
    # 20 to 28 sentences of about 16 tokens each: past the 256-token window, so truncated.
    return _sentences(rng, rng.randint(20, 28))


def generate_texts(size: int = DEFAULT_SIZE, seed: int = DEFAULT_SEED) -> list[Text]:
    """`size` texts in the shares of KIND_SHARES, shuffled; the same for the same arguments."""
    if size <= 0:
        raise ValueError(f"the data set needs at least one text, got size={size}")
    rng = random.Random(seed)
    kinds: list[str] = []
    for kind, share in KIND_SHARES:
        kinds.extend([kind] * round(share * size))
    # Rounding can leave the list a text short or long: trim or pad with the commonest kind.
    kinds = (kinds + [KIND_SHARES[0][0]] * size)[:size]
    rng.shuffle(kinds)
    return [Text(kind, _make(kind, rng)) for kind in kinds]


def triton_input_data(texts: Sequence[Text], input_name: str = TEXT) -> dict:
    """perf_analyzer's --input-data JSON: one batch-1 request per text, in order."""
    return {"data": [{input_name: {"content": [t.text], "shape": [1]}} for t in texts]}


def openai_input_data(texts: Sequence[Text], model: str) -> dict:
    """perf_analyzer's --input-data JSON for `--service-kind openai`: the request bodies as sent."""
    return {"data": [{"payload": [{"model": model, "input": [t.text]}]} for t in texts]}


def write_json(document: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Sorted keys and a fixed indent: the bytes depend on the texts alone (a test compares them).
    path.write_text(json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
    return path
