"""One row of the teacher's table, and what each way of failing says in it.

`rule` is what a teacher sorts by: the rule the check named (`Wrong.rule`, "rule 2 (…)"), or one of the
plain words below when the notebook failed otherwise. `detail` is the message, for the learner.
"""
import re
from dataclasses import asdict, dataclass, fields

NOT_DONE = "not done (NotImplementedError)"
NO_RULE = "check failed, no rule named"
TIMED_OUT = "timed out"
DIED = "crashed: the kernel died"
CHECK_DELETED = "Check cell deleted"
KIT_CHANGED = "the kit was changed"
TASK_MISSING = "task cell missing"
NOT_A_NOTEBOOK = "not a notebook"
NOT_AN_EXERCISE = "not an exercise"
GRADER = "grader error (not the learner's)"
RULE = re.compile(r"^(rule \d+ \(.*?\)): ", re.S)


@dataclass
class Grade:
    learner: str
    exercise: str
    passed: bool
    rule: str
    seconds: float
    detail: str = ""
    notebook: str = ""

    def row(self) -> list[str]:
        """The table's cells and the CSV's, in `COLUMNS` order."""
        return [self.learner, self.exercise, "passed" if self.passed else "failed", self.rule,
                f"{self.seconds:.0f}", self.detail, self.notebook]

    def as_dict(self) -> dict:
        return asdict(self)


COLUMNS = [f.name for f in fields(Grade)]


def failed(ename: str, evalue: str, where: str, rules: tuple[str, ...] = ()) -> tuple[str, str]:
    """(rule, detail) for a cell that raised `ename: evalue` in `where` ("the Check cell", "task cell 1").

    A check's failure starts with its rule (`str(Wrong)` is "rule N (text): message"); `rules` are the
    exercise's own (str(Rule)), matched first, as a rule's text may hold parentheses of its own."""
    message = evalue.strip()
    if ename in ("Wrong", "AssertionError"):
        for rule in sorted(rules, key=len, reverse=True):
            if message.startswith(f"{rule}: "):
                return rule, message[len(rule) + 2:]
        named = RULE.match(message)
        if named:
            return named.group(1), message[named.end():]
        return NO_RULE, message
    if ename == "NotImplementedError":
        return NOT_DONE, f"{where}: {message}"
    return f"crashed: {ename}", f"{where}: {ename}: {message}"


def first_line(text: str, width: int = 300, tail: bool = False) -> str:
    """The text on one line, cut to `width`: its start, or its `tail` (where a server's log says what failed)."""
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    return "…" + line[1 - width:] if tail else line[: width - 1] + "…"
