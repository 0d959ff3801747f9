"""The options of one data build (``bench data build-spa``, a run's ``build_data`` stage): typed and printable,
layered like recipe configs (defaults < ``--config FILE`` < ``--set KEY=VALUE`` < named flags)."""

from __future__ import annotations

from dataclasses import dataclass, field


def _help(text: str, default):
    return field(default=default, metadata={"help": text})


@dataclass
class SpaConfig:
    """Rollout -> reward -> revise -> filter -> write; every field is recorded in the build's report."""

    prompts: str = _help("data spec whose prompts are answered (revision pairs: their initial; preference "
                         "pairs in edit mode: their rejected response)", "alpaca_libre")
    limit: int = _help("use the first N prompts (0 = all)", 200)
    model: str = _help("the model to be trained: it answers the prompts (rollout)", "smollm2-135m-instruct")
    mode: str = _help("'spa': the model's own subpar answers are revised; 'edit': the rejected response of each "
                      "preference pair is minimally edited (token reward model data)", "spa")
    backend: str = _help("rollout backend: auto (vLLM if installed), vllm or hf", "auto")
    max_new_tokens: int = _help("rollout: longest answer in tokens", 256)
    temperature: float = _help("rollout sampling temperature (0 = greedy)", 0.7)
    top_p: float = _help("rollout nucleus sampling", 0.95)
    seed: int = _help("rollout sampling seed (recorded with every answer)", 0)
    scorer: str = _help("'judge:NAME' (a validated judge against the prompt's reference; e.g. judge:mimic-gpt4) "
                        "or 'rm:PATH' (a trained reward-model checkpoint)", "judge:mimic-gpt4")
    subpar_threshold: float | None = _help("keep answers scoring below this (None: use subpar_quantile)", None)
    subpar_quantile: float = _help("keep the lowest-scoring fraction of answers", 0.5)
    base_url: str | None = _help("reviser: any OpenAI-compatible endpoint (default $OPENAI_BASE_URL; none: "
                                 "`bench serve` of reviser_model)", None)
    reviser_model: str | None = _help("reviser: the endpoint's model name (default: the first it lists), or with "
                                      "no endpoint the local checkpoint that `bench serve` starts", None)
    api_key_env: str = _help("environment variable holding the endpoint's API key", "OPENAI_API_KEY")
    template: str = _help("revision prompt template (a file in bench/spa/templates/ or a path); its name and "
                          "hash are recorded", "")
    revise_max_tokens: int = _help("reviser: longest revision in tokens", 512)
    concurrency: int = _help("reviser: requests in flight at once", 4)
    retries: int = _help("reviser: attempts per item after a network error or a garbage answer", 4)
    timeout: float = _help("reviser: seconds per request (a 135M reviser on 2 busy cores can take minutes)", 600.0)
    min_edit_ratio: float = _help("filter: smallest token-level edit ratio kept (Levenshtein distance / "
                                  "longer length)", 0.02)
    max_edit_ratio: float = _help("filter: largest token-level edit ratio kept (beyond it is a rewrite)", 0.6)
    min_gain: float | None = _help("filter: the revision must score higher than the original, by at least this "
                            "(None: no score check)", 0.0)
    out: str = _help("output directory (spa.jsonl, report.json, each step's files and caches)", "results/spa")
