# Two commands do all set-up on a fresh machine: `make train` and `make test`.
# Both create .venv (if missing) and install the package with every extra into it.
# constraints.txt pins torch to the CPU build available on the team's machines.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CONFIG ?= conf/pong.yaml

.PHONY: train test install clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[play,video,plots,test,minari]"
	touch $(STAMP)

train: $(STAMP)
	$(VENV)/bin/visual-iq fit --config $(CONFIG)

test: $(STAMP)
	SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy $(PY) -m pytest -q

clean-venv:
	rm -rf $(VENV)
