"""Input and output guards: prompt injection, secrets and PII, groundedness, review."""
