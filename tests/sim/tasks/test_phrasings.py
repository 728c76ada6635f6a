"""The composed training phrasings: each group is one task and colour, keeps the task's own training phrasings
first, is the same wording for every colour, and leaves the held-out phrasings (and their words) unseen."""

import pytest

from sim import tasks as T
from sim.tasks.phrasings import HELD_OUT_ONLY, PER_GROUP, uses_held_out_words
from sim.tasks.registry import composed_phrasings


@pytest.mark.parametrize("task", sorted(T.TASKS))
def test_composed_phrasings_extend_the_training_ones_and_never_say_a_held_out_one(task):
    definition = T.get_task(task)
    held_out = {t for c in T.COLORS for t in definition.instructions(c, "held_out")}
    every = {p for other in T.TASKS.values() for c in T.COLORS for p in composed_phrasings(other.name, c)}
    for color in T.COLORS:
        group = composed_phrasings(task, color)
        base = definition.instructions(color, "train")
        assert group[: len(base)] == tuple(base)
        assert len(group) == len(base) + PER_GROUP and len(set(group)) == len(group)
        assert not set(group) & held_out
        for text in group[len(base) :]:
            assert color in text and "{" not in text
            assert not uses_held_out_words(text), text
            assert [c for c in T.COLORS if c in text] == [color]
    red, blue = composed_phrasings(task, "red"), composed_phrasings(task, "blue")
    assert [t.replace("red", "blue") for t in red] == list(blue)  # the same wordings for every colour
    assert composed_phrasings(task, "red") == red  # a fixed choice
    # a held-out phrasing's own words are caught: what keeps them out of the composed set is this check
    for text in held_out:
        assert uses_held_out_words(text), text
    assert len(every) == sum(len(composed_phrasings(t, c)) for t in T.TASKS for c in T.COLORS)  # groups are disjoint


def test_held_out_word_check_matches_words_not_parts_of_words():
    assert uses_held_out_words("go and touch it") and uses_held_out_words("the cube that is red")
    assert not uses_held_out_words("touch the red cube gently")  # "together"-style substrings are not words
    assert not uses_held_out_words("grab the red block and lift it")  # "get" is not "target", "go" not "good"
    assert "go" in HELD_OUT_ONLY and not uses_held_out_words("a good grip on the red cube")


def test_paraphrase_groups_composed_are_the_composed_phrasings_in_the_groups_order():
    plain, composed = T.paraphrase_groups(), T.paraphrase_groups(composed=True)
    assert len(plain) == len(composed)
    for few, many in zip(plain, composed, strict=True):
        assert many[: len(few)] == few and len(many) == len(few) + PER_GROUP
    with pytest.raises(ValueError, match="training phrasings"):
        T.paraphrase_groups("held_out", composed=True)
