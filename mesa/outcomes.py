"""The outcome of an OOD episode or sample: which goal it reached (or answered) first.

Codes index :data:`OUTCOMES`. They live apart from tasks and environments because both use them
(an environment records them as episodes end; evaluation counts them).
"""

#: Outcome names, indexed by code.
OUTCOMES = ("neither", "true", "spurious")
NEITHER, TRUE, SPURIOUS = 0, 1, 2
