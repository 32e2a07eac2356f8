"""Contrast: model-written "vs alternatives" lines, checked against both tools' evidence.

``counterparts`` finds each capability's closest capabilities in the other tools of the store,
``task`` builds the fenced prompt context and the Instructor task, ``checker`` refuses lines
the evidence does not support (names, numbers, comparatives, marketing words), ``run`` writes
lines incrementally and ``lines`` reads and reviews them.
"""
