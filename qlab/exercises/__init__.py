"""Self-check functions for the lessons' exercises, one module per lesson.

``qlab.exercises.lessonNN`` holds lesson NN's exercises. Each exercise has a ``grade_*``
function that takes the answer and every parameter of the exercise and returns a
:class:`Feedback`, and a ``check_*`` twin that takes only the answer, fills in the
exercise's own parameters (module constants, shown in the notebook) and prints the
feedback. The expected answer always comes from qlab's own functions, never from a
hard-coded number, and each known wrong answer (computed the same way, with the typical
slip applied) gets a specific hint.

A notebook exercise cell holds a working reference solution, so nbval checks that it
prints "Correct!"; the learner replaces it with their own code.
"""

from __future__ import annotations

from qlab.exercises._grading import Feedback

__all__ = ["Feedback"]
