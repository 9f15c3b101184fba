"""Input and output guards: structured PII and secret detectors, reversible redaction, and
the prompt-injection classifier (more to come: groundedness, review).

The detectors are plain functions over text (no I/O, no state): the pipeline's guard stages
decide what to do with what they find.
"""
