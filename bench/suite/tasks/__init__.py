"""The FIGA benchmark suite as lm-eval task YAMLs (a TaskManager ``include_path``); hooks in kit.py."""
