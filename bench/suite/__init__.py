"""FIGA's benchmark suite (MMLU, TruthfulQA MC1/MC2, CrowS-Pairs, WinoGender) run by lm-evaluation-harness.

tasks/ holds the lm-eval task YAMLs for the offline data kit (usable with plain lm-eval too:
``lm_eval --include_path bench/suite/tasks --tasks figa_mmlu,...``); runner.py calls
``lm_eval.simple_evaluate`` with the chosen backend (backends.py) and caches each entry's lm-eval results
JSON; summary.py turns the stored results into one normalised summary with FIGA's average.

Chat template: off by default for these tasks. All four are log-likelihood comparisons of fixed
continuations; the FIGA paper, lm-eval's defaults and the SmolLM2 model card all score them on the raw
prompt, and CrowS-Pairs scores whole sentences with an empty context, which a chat turn would turn into
a different question. ``--chat-template`` applies it anyway (for generative lm-eval tasks, or to study the
effect): lm-eval then renders each prompt with the tokenizer's own template and the generation prompt,
which is exactly ``bench.chat.render_prompt`` (tested), and few-shot examples become turns. Either way
the template's hash (``bench.chat.template_hash``) and whether it was applied go into every result.
"""

from .runner import SUITES, TASKS_DIR, SuiteConfig, SuiteRunner, run_suite
from .summary import figa_average

__all__ = ["SUITES", "TASKS_DIR", "SuiteConfig", "SuiteRunner", "figa_average", "run_suite"]
