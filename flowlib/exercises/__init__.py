"""Exercise checks: one module per notebook, ``nb01`` ... ``nb11``, each holding that notebook's reference answers
and automatic checks, and ``runner``, which runs a check and says what differs.

The notebook imports the checks from here, so a learner sees no solution until they ask for it (the collapsed
cells of the notebook's "Reference solutions" section); ``tests/exercises/`` proves that every check accepts the
reference answer and rejects plausible wrong ones. Each ``check_*`` prints what it found and returns whether the
answer is right; a ``NotImplementedError`` (the unfilled template) counts as "not yet".
"""
