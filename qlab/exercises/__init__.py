"""Self-check functions for the lessons' exercises, one module per lesson.

``qlab.exercises.lessonNN`` holds lesson NN's exercises and predictions. Each has a ``check_*``
function that takes ONLY the answer, grades it against the module's own constants (which the
notebook imports and prints in the task) and prints the feedback, and a ``grade_*`` twin that takes
the answer and every parameter explicitly and returns a :class:`Feedback` (what the tests call).
The expected answer always comes from qlab's own functions or results files, never from a
hard-coded number; each known wrong answer (computed the same way, with the typical slip applied)
gets a specific hint; ``None`` (the blank answer) is "Not answered yet", and text where a number is
expected gets a "give a number" message, never an exception.

Exercise and prediction cells are nbgrader *solution* cells (``metadata.nbgrader``):

    # Exercise 2: <what to compute>
    my_bytes = None
    ### BEGIN SOLUTION
    my_bytes = ...  # the reference solution
    ### END SOLUTION
    check_model_size(my_bytes)

``notebooks/`` holds the lessons with their reference solutions, checked by nbval (every check
prints "Correct!"). Students work in their own copies in ``lessons/``, written by ``make student``
(``qlab.student``; ``make lab`` runs it and opens them): the region between the markers becomes
``# YOUR CODE HERE``, and the outputs that would give an answer away are cleared, so the blank
cells run and every check prints "Not answered yet" until the student fills in the answer. A
prediction's check sits in a later cell, after the cells that reveal the outcome.
"""

from __future__ import annotations

from qlab.exercises._grading import Feedback

__all__ = ["Feedback"]
