.PHONY: setup test test-fast demo
setup:
	./setup.sh
test:
	.venv/bin/python -m pytest -q -ra
test-fast:
	.venv/bin/python -m pytest -q -ra -m "not integration and not vllm and not distributed and not ray"
