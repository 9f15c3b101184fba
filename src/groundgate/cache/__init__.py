"""Response caching: the canonical form of a question (``normalize``), the false-hit guard
(``guard``) and the decision whether a semantically similar cached question may answer a new
one (``semantic``). Precision comes first: a cache that answers a different question is worse
than no cache at all."""
