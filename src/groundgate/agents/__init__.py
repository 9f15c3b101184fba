"""Agent runs: the bounded tool loop (``loop.py``) and runs paused for approval (``state.py``)."""
