"""Input and output guards: structured PII and secret detectors, and reversible redaction.

The detectors are plain functions over text (no I/O, no state): the pipeline's guard stages
decide what to do with the spans they return.
"""
